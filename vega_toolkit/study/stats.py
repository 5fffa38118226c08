"""The statistics behind a study's verdicts: Welch's t-test, Holm's correction, and a paired bootstrap over dev
examples.

With 3 seeds per arm a difference of 2 standard errors is a t-statistic of about 2.5 to 3.7 Welch degrees of
freedom, two-sided p about 0.13 to 0.16: a verdict is therefore read from the exact p-value, corrected for the
number of claims a report tests (Holm 1979), never from a fixed number of standard errors.
"""

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np

ALPHA = 0.05  # the family-wise error rate of a report's verdicts


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """mean(A) - mean(B), its standard error sqrt(s_a²/n_a + s_b²/n_b), Welch's t, the Welch-Satterthwaite degrees
    of freedom and the two-sided p-value. NaN where a side has one value (no variance) or both sides are constant."""
    from scipy.stats import t as student_t

    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return {"difference": diff, "se": float("nan"), "t": float("nan"), "df": float("nan"), "p": float("nan")}
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # e.g. both arms at a task's majority class for every seed: nothing to test
        return {"difference": diff, "se": 0.0, "t": float("nan"), "df": float("nan"), "p": float("nan")}
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1) if va else 0.0) + (vb**2 / (len(b) - 1) if vb else 0.0))
    t = diff / se
    return {"difference": diff, "se": se, "t": t, "df": df, "p": float(2 * student_t.sf(abs(t), df))}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest of m is min(1, (m - i + 1) p), made monotone.
    A NaN (no test) stays NaN and does not count in m."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    adjusted, running = [float("nan")] * len(p_values), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(difference: float, p_holm: float, sign: int, alpha: float = ALPHA) -> str | None:
    """ "reproduced" / "contradicted" when the Holm-adjusted p is below ALPHA and the difference is for / against
    the claimed direction SIGN; None when it is not (or there is no test)."""
    if p_holm != p_holm or p_holm >= alpha:
        return None
    return "reproduced" if sign * difference > 0 else "contradicted"


def paired_bootstrap(
    arm: Sequence[dict[str, np.ndarray]],
    baseline: Sequence[dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    score: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """A LEVEL interval of the task-average difference ARM - BASELINE that includes dev-set sampling.

    ARM and BASELINE are lists of runs (one per seed, or per pretraining run and seed), each {task: dev predictions};
    LABELS {task: gold dev labels}; SCORE(task, predictions, labels) the task's GLUE score of every row of two
    [resamples, n] arrays (metrics.glue_metrics.row_scores). Each resample draws the runs of each side with
    replacement and, per task, one set of dev example indices shared by both sides (paired: the same examples score
    both arms); the difference of the task averages over the drawn runs is recorded."""
    if len(arm) < 1 or len(baseline) < 1:
        return None
    rng = np.random.default_rng(seed)
    drawn_a = rng.integers(len(arm), size=(resamples, len(arm)))
    drawn_b = rng.integers(len(baseline), size=(resamples, len(baseline)))
    rows = np.arange(resamples)[:, None]
    diffs = np.zeros(resamples)
    tasks = sorted(labels)
    for task in tasks:
        idx = rng.integers(len(labels[task]), size=(resamples, len(labels[task])))
        gold = labels[task][idx]
        # every run scored on every resample's examples; a resample then averages the runs it drew
        scores_a = np.stack([score(task, run[task][idx], gold) for run in arm], axis=1)
        scores_b = np.stack([score(task, run[task][idx], gold) for run in baseline], axis=1)
        diffs += scores_a[rows, drawn_a].mean(axis=1) - scores_b[rows, drawn_b].mean(axis=1)
    diffs /= len(tasks)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))]
