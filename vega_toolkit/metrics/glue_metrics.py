"""GLUE metrics and the GLUE score, in percent (as fairseq's sentence_prediction criterion logs them).

    from vega_toolkit.metrics.glue_metrics import task_metrics, task_score, glue_score
    m = task_metrics("MRPC", preds, labels)      # {'f1': ..., 'accuracy': ..., 'acc_and_f1': ...}
    glue_score({"CoLA": task_score("CoLA", m_cola), "MNLI": (s_m + s_mm) / 2, ...})

The standard implementations, as HF evaluate's glue metric uses them: scikit-learn's matthews_corrcoef/f1_score
and scipy's pearsonr/spearmanr (both are dependencies already: fairseq's sentence_prediction criterion calls them),
imported on first use (vega_toolkit/fairseq_fixes/deferred_metric_imports.py says why),
scaled to percent. GLUE score (Wang et al. 2019): each task scores the
unweighted mean of its metrics, MNLI averages matched and mismatched, and the score is the mean over the nine tasks;
AX is excluded.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from vega_toolkit.data.glue_tasks import GlueTaskSpec, get_glue_task

ArrayLike = Sequence | np.ndarray


def _pair(preds: ArrayLike, labels: ArrayLike, dtype=None):
    p, t = np.asarray(preds, dtype=dtype), np.asarray(labels, dtype=dtype)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"predictions {p.shape} and labels {t.shape} must be 1-D arrays of the same length")
    if p.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    return p, t


def accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    p, t = _pair(preds, labels)
    return 100.0 * float(np.mean(p == t))


def f1(preds: ArrayLike, labels: ArrayLike, positive=1) -> float:
    """Binary F1 of the positive class (MRPC: paraphrase, QQP: duplicate); 0 when there is no true positive."""
    from sklearn.metrics import f1_score  # on first use: 1.0-1.6 CPU s of every command's start-up otherwise

    p, t = _pair(preds, labels)
    return 100.0 * float(f1_score(t, p, pos_label=positive, average="binary", zero_division=0.0))


def matthews_corr(preds: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K, = the binary phi coefficient for two classes); 0 for a
    constant predictor."""
    from sklearn.metrics import matthews_corrcoef

    p, t = _pair(preds, labels)
    return 100.0 * float(matthews_corrcoef(t, p))


def _correlation(fn, preds: ArrayLike, labels: ArrayLike) -> float:
    x, y = _pair(preds, labels, dtype=np.float64)
    if x.std() == 0 or y.std() == 0:  # undefined for a constant input (scipy would warn and return nan)
        return float("nan")
    return 100.0 * float(fn(x, y)[0])


def pearson(preds: ArrayLike, labels: ArrayLike) -> float:
    from scipy.stats import pearsonr

    return _correlation(pearsonr, preds, labels)


def spearman(preds: ArrayLike, labels: ArrayLike) -> float:
    from scipy.stats import spearmanr

    return _correlation(spearmanr, preds, labels)


_METRIC_FNS = {"accuracy": accuracy, "f1": f1, "mcc": matthews_corr, "pearson": pearson, "spearman": spearman}
# the combined names fairseq's sentence_prediction criterion logs and --best-checkpoint-metric selects on
_COMBINED = {"acc_and_f1": ("accuracy", "f1"), "pearson_and_spearman": ("pearson", "spearman")}


def task_metrics(task: str | GlueTaskSpec, preds: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """All metrics of `task` (plus its combined selection metric) for one dev split.

    Classification predictions and labels may be label strings or label indices, as long as both use the same.
    """
    task = get_glue_task(task)
    if not task.is_regression and len(task.labels) == 2 and "f1" in task.metrics:
        # F1 is over the positive class "1"; accept label strings as well as indices
        preds = np.asarray([int(x) for x in preds])
        labels = np.asarray([int(x) for x in labels])
    out = {name: _METRIC_FNS[name](preds, labels) for name in task.metrics}
    for combined, parts in _COMBINED.items():
        if all(p in out for p in parts):
            out[combined] = (out[parts[0]] + out[parts[1]]) / 2.0
    return out


def task_score(task: str | GlueTaskSpec, metrics: Mapping[str, float]) -> float:
    """One split's contribution to the GLUE score: the unweighted mean of the task's metrics."""
    task = get_glue_task(task)
    missing = [m for m in task.metrics if m not in metrics]
    if missing:
        raise KeyError(f"{task.name} needs metrics {list(task.metrics)}, missing {missing}")
    return float(np.mean([metrics[m] for m in task.metrics]))


def _rows_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant row is nan, as _correlation says
        return np.where(denominator > 0, (x * y).sum(axis=1) / np.where(denominator > 0, denominator, 1), np.nan)


def _rows_matthews(p: np.ndarray, t: np.ndarray, classes: int) -> np.ndarray:
    """Gorodkin's R_K per row from the class counts (sklearn's matthews_corrcoef; 0 when undefined)."""
    n = p.shape[1]
    correct = (p == t).sum(axis=1).astype(np.float64)
    pred_counts = np.stack([(p == k).sum(axis=1) for k in range(classes)], axis=1).astype(np.float64)
    true_counts = np.stack([(t == k).sum(axis=1) for k in range(classes)], axis=1).astype(np.float64)
    covariance = correct * n - (pred_counts * true_counts).sum(axis=1)
    denominator = np.sqrt((n * n - (pred_counts**2).sum(axis=1)) * (n * n - (true_counts**2).sum(axis=1)))
    return np.where(denominator > 0, covariance / np.where(denominator > 0, denominator, 1), 0.0)


def _rows_f1(p: np.ndarray, t: np.ndarray, positive: int) -> np.ndarray:
    tp = ((p == positive) & (t == positive)).sum(axis=1)
    wrong = (p != t).sum(axis=1)  # false positives + false negatives, for two classes
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)


def _label_codes(values: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Label strings (or label indices) as codes 0..K-1 of the task's label order."""
    values = values.astype(str)
    codes = np.full(values.shape, -1, dtype=np.int64)
    for k, label in enumerate(labels):
        codes[values == label] = k
    indices = codes < 0
    if indices.any():
        codes[indices] = values[indices].astype(np.int64)
    return codes


def row_scores(task: str | GlueTaskSpec, preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`task_score(task, task_metrics(task, preds[i], labels[i]))` for every row i of two [rows, n] arrays at once:
    a bootstrap scores a thousand resamples of one dev set without a Python loop over them."""
    task = get_glue_task(task)
    if preds.shape != labels.shape or preds.ndim != 2:
        raise ValueError(f"predictions {preds.shape} and labels {labels.shape} must be 2-D arrays of the same shape")
    if task.is_regression:
        from scipy.stats import rankdata

        x, y = preds.astype(np.float64), labels.astype(np.float64)
        rank = lambda a: rankdata(a, axis=1)  # noqa: E731  (average ranks for ties, as spearmanr)
        by_name = {"pearson": lambda: _rows_pearson(x, y), "spearman": lambda: _rows_pearson(rank(x), rank(y))}
    else:
        p, t = _label_codes(preds, task.labels), _label_codes(labels, task.labels)
        positive = task.labels.index("1") if "1" in task.labels else 1
        by_name = {
            "accuracy": lambda: (p == t).mean(axis=1),
            "mcc": lambda: _rows_matthews(p, t, len(task.labels)),
            "f1": lambda: _rows_f1(p, t, positive),
        }
    return 100.0 * np.mean([by_name[m]() for m in task.metrics], axis=0)


def glue_score(scores: Mapping[str, float]) -> float:
    """Mean of per-task scores over the GLUE tasks given (AX is excluded even when present).

    A full leaderboard score needs all nine; MNLI's score is the mean of its matched and mismatched scores.
    """
    used = [float(v) for name, v in scores.items() if get_glue_task(name).in_glue_score]
    if not used:
        raise ValueError("no GLUE task scores to average (AX does not count)")
    return float(np.mean(used))
