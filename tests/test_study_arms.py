"""`vega-study --arms all` on the smoke scale: every ablation arm's real commands end to end (a file of its own, so that
`make test`'s xdist workers run it beside tests/test_study.py's kill-and-resume smoke study, not after it)."""

import re

import pytest
from test_study import TRANSFER_LINE, results

from vega_toolkit.study.plan import SCALES
from vega_toolkit.study.report import write_report


@pytest.mark.study
def test_smoke_scale_runs_every_arm_end_to_end_and_reports_each_comparison(tmp_path):
    """CI's ablation smoke test: every arm's real commands on toy data, a few updates each. To stay short it runs one
    seed, every arm but the CoLA-only ones on RTE, then those with their baseline on CoLA, into the same study."""
    from dataclasses import replace

    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.plan import ARMS, find_task
    from vega_toolkit.study.runner import StudyRunner

    smoke = SCALES["smoke"]
    tasks = tuple(find_task(smoke, t) for t in ("RTE", "CoLA", smoke.intermediate_task))
    scale = replace(smoke, seeds=(1,), tasks=tasks)
    toy = write_toy_data(tmp_path / "toy_data", seed=1, corpus_paragraphs=300, task_sizes=(64, 32, 32))
    out = tmp_path / "study"
    cola_only = tuple(a for a in ARMS if ARMS[a].only_tasks == ("CoLA",))
    for arms, task in ((tuple(a for a in ARMS if a not in cola_only), "RTE"), (("rtd_ternary",) + cola_only, "CoLA")):
        runner = StudyRunner(
            scale, out, str(toy / "glue"), str(toy / "corpus"), jobs=2, arms=arms, tasks=(task,), log=print
        )
        assert runner.run() == 0
    finetune = [r for r in results(out) if r["kind"] == "finetune"]
    assert {r["arm"] for r in finetune} == set(ARMS) and all("score" in r and r["dev"] for r in finetune)
    pretrain = {r["arm"]: r for r in results(out) if r["kind"] == "pretrain"}
    assert set(pretrain) == {a for a in ARMS if ARMS[a].pretrained}  # rtd_ternary's ran once, for both runs
    assert all(r["valid_curve"] for r in pretrain.values())
    # intermediate_task: one intermediate fine-tuning per seed, kept, and its RTE cell starts from it
    intermediate = [r for r in results(out) if r["kind"] == "intermediate"]
    assert [(r["arm"], r["task"]) for r in intermediate] == [("intermediate_task", smoke.intermediate_task)]
    # its last checkpoint, as every plain fine-tuning's: no choice made on the dev set it reports
    assert intermediate[0]["checkpoint"] == "last"
    kept = out / "finetune" / intermediate[0]["name"] / "ckpt" / "checkpoint_last.pt"
    assert kept.exists()
    (rte,) = [r for r in finetune if r["arm"] == "intermediate_task"]
    start = f"{{out}}/finetune/{intermediate[0]['name']}/ckpt/checkpoint_last.pt"
    assert f"--finetune-from-model {start}" in rte["commands"][0]
    lines = write_report(out).splitlines()
    assert TRANSFER_LINE.match(lines[-1]), lines
    for arm in ARMS:
        if arm not in ("random", "rtd_ternary"):
            assert any(line.startswith(f"effect {arm}-vs-{ARMS[arm].compare_with} ") for line in lines), arm
    report = (out / "report.md").read_text()
    assert all(f"`{arm}`" in report for arm in ARMS)
    # what the tricks did, read from the logs the real tools wrote (vega_toolkit/study/mechanisms.py)
    from vega_toolkit.study.mechanisms import mechanisms_report

    mechanisms = mechanisms_report(out)
    assert re.search(r"^\| RTE \| 1 \| \d+\.\d% \|", mechanisms, re.M), mechanisms  # SiFT's cell
    for arm, task in (("glue_transductive", "RTE"), ("glue_self_calibrated", "CoLA")):
        assert re.search(rf"^\| `{re.escape(arm)}` \| {task} \| [\d.]+ \| 1 \| -?[\d.]+ → ", mechanisms, re.M), arm
    assert re.search(r"^\| `glue_self_calibrated` \| CoLA \| 1 \| \d+ \| \d+ \| ", mechanisms, re.M), mechanisms
