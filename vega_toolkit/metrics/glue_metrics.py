"""GLUE metrics and the GLUE score, in percent (as fairseq's sentence_prediction criterion logs them).

    from vega_toolkit.metrics.glue_metrics import task_metrics, task_score, glue_score
    m = task_metrics("MRPC", preds, labels)      # {'f1': ..., 'accuracy': ..., 'acc_and_f1': ...}
    glue_score({"CoLA": task_score("CoLA", m_cola), "MNLI": (s_m + s_mm) / 2, ...})

The standard implementations, as HF evaluate's glue metric uses them: scikit-learn's matthews_corrcoef/f1_score
and scipy's pearsonr/spearmanr (both are dependencies already: fairseq's sentence_prediction criterion imports them),
scaled to percent. GLUE score (Wang et al. 2019): each task scores the
unweighted mean of its metrics, MNLI averages matched and mismatched, and the score is the mean over the nine tasks;
AX is excluded.
"""
from typing import Dict, Mapping, Sequence, Union

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

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
    p, t = _pair(preds, labels)
    return 100.0 * float(f1_score(t, p, pos_label=positive, average="binary", zero_division=0.0))


def matthews_corr(preds: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K, = the binary phi coefficient for two classes); 0 for a
    constant predictor."""
    p, t = _pair(preds, labels)
    return 100.0 * float(matthews_corrcoef(t, p))


def _correlation(fn, preds: ArrayLike, labels: ArrayLike) -> float:
    x, y = _pair(preds, labels, dtype=np.float64)
    if x.std() == 0 or y.std() == 0:  # undefined for a constant input (scipy would warn and return nan)
        return float("nan")
    return 100.0 * float(fn(x, y)[0])


def pearson(preds: ArrayLike, labels: ArrayLike) -> float:
    return _correlation(pearsonr, preds, labels)


def spearman(preds: ArrayLike, labels: ArrayLike) -> float:
    return _correlation(spearmanr, preds, labels)


_METRIC_FNS = {"accuracy": accuracy, "f1": f1, "mcc": matthews_corr, "pearson": pearson, "spearman": spearman}
# the combined names fairseq's sentence_prediction criterion logs and --best-checkpoint-metric selects on
_COMBINED = {"acc_and_f1": ("accuracy", "f1"), "pearson_and_spearman": ("pearson", "spearman")}


def task_metrics(task: Union[str, GlueTaskSpec], preds: ArrayLike, labels: ArrayLike) -> Dict[str, float]:
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


def task_score(task: Union[str, GlueTaskSpec], metrics: Mapping[str, float]) -> float:
    """One split's contribution to the GLUE score: the unweighted mean of the task's metrics."""
    task = get_glue_task(task)
    missing = [m for m in task.metrics if m not in metrics]
    if missing:
        raise KeyError(f"{task.name} needs metrics {list(task.metrics)}, missing {missing}")
    return float(np.mean([metrics[m] for m in task.metrics]))


def glue_score(scores: Mapping[str, float]) -> float:
    """Mean of per-task scores over the GLUE tasks given (AX is excluded even when present).

    A full leaderboard score needs all nine; MNLI's score is the mean of its matched and mismatched scores.
    """
    used = [float(v) for name, v in scores.items() if get_glue_task(name).in_glue_score]
    if not used:
        raise ValueError("no GLUE task scores to average (AX does not count)")
    return float(np.mean(used))


