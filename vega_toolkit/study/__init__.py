"""`vega-study`: declared grids of pretraining arms x GLUE tasks x fine-tuning points x seeds, resumable.

    vega-study run --scale cpu --out results/study-cpu --jobs 2     # every cell a real vega-train/vega-generate run
    vega-study report results/study-cpu                             # report.md, figure, the transfer line

plan.py declares arms and scales, cells.py turns them into keyed commands, runner.py runs and resumes them,
report.py aggregates the JSON lines: selection.py chooses each run's learning rate apart from the numbers it
reports, stats.py tests the claims (Welch's t, Holm, paired bootstrap), anchors.py gives the dev sets' floors, and
compute.py puts transfer against pretraining FLOPs. The analyses read what the cells left behind: overlap.py
(STS-B predictions against word overlap), mechanisms.py (what SiFT and the adaptation rounds did, from the cells'
logs) and probe.py (frozen-feature probes of a model folder).
"""
