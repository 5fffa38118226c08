"""The paired bootstrap of `vega-study report`: one claim's interval, scored per resample with the GLUE metric
functions (task_metrics, one call per run and resample) and with row_scores (every resample at once).

    python benchmarks/bootstrap_speed.py                  # CoLA + SST-2 + STS-B dev sizes, 6 runs a side
    python benchmarks/bootstrap_speed.py --resamples 200

Both paths draw the same runs and examples (one seed); the table gives each one's time, their ratio, and the
largest difference between the two intervals' bounds.
"""

import argparse
import time

import numpy as np

from vega_toolkit.data.glue_tasks import get_glue_task
from vega_toolkit.metrics.glue_metrics import row_scores, task_metrics, task_score
from vega_toolkit.study.stats import paired_bootstrap

DEV_SIZES = {"CoLA": 1043, "SST-2": 872, "STS-B": 1500}  # the GLUE dev sets the study averages


def synthetic_side(labels, runs, accuracy, rng):
    side = []
    for _ in range(runs):
        preds = {}
        for task, gold in labels.items():
            glue = get_glue_task(task)
            if glue.is_regression:
                preds[task] = gold + rng.normal(0, 1.5 - accuracy, size=gold.shape)
            else:
                noise = np.asarray(glue.labels)[rng.integers(len(glue.labels), size=gold.shape)]
                preds[task] = np.where(rng.random(gold.shape) < accuracy, gold, noise)
        side.append(preds)
    return side


def per_row(task, preds, gold):
    """The metric functions called once per resample row (how the bootstrap scored before row_scores)."""
    return np.asarray([task_score(task, task_metrics(task, p, t)) for p, t in zip(preds, gold, strict=True)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=6, help="runs a side (2 pretraining runs x 3 seeds)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = {}
    for task, n in DEV_SIZES.items():
        glue = get_glue_task(task)
        labels[task] = (
            rng.uniform(0, 5, n).round(1)
            if glue.is_regression
            else np.asarray(glue.labels)[rng.integers(len(glue.labels), size=n)]
        )
    arm, baseline = synthetic_side(labels, args.runs, 0.8, rng), synthetic_side(labels, args.runs, 0.7, rng)
    timings, intervals = {}, {}
    for name, score in (("task_metrics per resample", per_row), ("row_scores", row_scores)):
        start = time.perf_counter()
        intervals[name] = paired_bootstrap(arm, baseline, labels, score, args.resamples)
        timings[name] = time.perf_counter() - start
    slow, fast = timings["task_metrics per resample"], timings["row_scores"]
    print(f"one claim, {len(labels)} tasks, {args.runs} runs a side, {args.resamples} resamples")
    for name, seconds in timings.items():
        print(f"  {name:<28} {seconds:8.2f} s   interval {intervals[name][0]:.3f} .. {intervals[name][1]:.3f}")
    gap = max(abs(a - b) for a, b in zip(*intervals.values(), strict=True))
    print(f"  speed-up {slow / fast:.1f}x; largest bound difference {gap:.2e}")


if __name__ == "__main__":
    main()
