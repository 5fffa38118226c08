"""A study's verdicts as a referee reads them: Welch's t-test (scipy as the oracle), Holm's correction over the claims
of a report, learning rates chosen apart from the reported runs, the edge rule, several pretraining runs in the
standard error, the paired bootstrap over dev examples, and the dev-set floors beside the scores."""

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_ind

from vega_toolkit.study.selection import edge_extensions, select
from vega_toolkit.study.stats import holm, paired_bootstrap, verdict, welch


@pytest.mark.parametrize(
    "a, b",
    [([58, 58, 62.5], [55, 56, 57]), ([1.0, 2.0, 4.0, 8.0], [3.0, 3.5]), ([10.3, 11.5, 10.6], [45.9, 40.1, 52.6])],
)
def test_welch_t_degrees_of_freedom_and_p_value_are_scipys(a, b):
    oracle = ttest_ind(a, b, equal_var=False)
    got = welch(a, b)
    assert got["t"] == pytest.approx(oracle.statistic)
    assert got["df"] == pytest.approx(oracle.df)
    assert got["p"] == pytest.approx(oracle.pvalue)
    assert got["difference"] == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert got["se"] == pytest.approx(got["difference"] / got["t"])


def test_two_standard_errors_with_three_seeds_is_not_five_percent():
    """The first rule's threshold: |t| = 2 at about 2.5-4 Welch degrees of freedom is p of 0.13 or more."""
    got = welch([0.0, 1.0, 2.0], [-2.0, -1.0, 0.0])  # t = 2 / sqrt(2/3) = 2.45, df = 4
    assert got["df"] == pytest.approx(4.0) and 0.05 < got["p"] < 0.1
    assert welch([0.0, 2.0, 4.0], [0.0, 0.0, 0.0])["df"] == pytest.approx(2.0)  # one side constant: n - 1 of the other


def test_a_side_of_one_value_or_two_constant_sides_has_no_test():
    assert math.isnan(welch([1.0], [2.0, 3.0])["p"])
    assert math.isnan(welch([56.34] * 3, [56.34] * 3)["p"])


def _holm_by_definition(p_values, alpha):
    """Holm's step-down procedure as published: reject the i-th smallest (1-based) while
    p_(i) <= alpha / (m - i + 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = set()
    for rank, i in enumerate(order, 1):
        if p_values[i] > alpha / (len(p_values) - rank + 1):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_p_values_reject_exactly_what_the_step_down_procedure_rejects():
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.0126]
    adjusted = holm(p)
    for alpha in (0.01, 0.03, 0.05, 0.06, 0.1, 0.5):
        assert {i for i, q in enumerate(adjusted) if q <= alpha} == _holm_by_definition(p, alpha), alpha
    # by hand: sorted 0.005 x 6, 0.01 x 5, 0.0126 x 4, 0.03 x 3, 0.04 x 2, 0.2 x 1, made monotone
    assert adjusted == pytest.approx([0.05, 0.09, 0.09, 0.03, 0.2, 0.0504])
    assert math.isnan(holm([0.01, float("nan")])[1]) and holm([0.01, float("nan")])[0] == 0.01  # m counts tests only


def test_a_verdict_needs_the_holm_p_below_five_percent_and_takes_its_direction_from_the_claim():
    assert verdict(+3.0, 0.01, +1) == "reproduced" and verdict(+3.0, 0.01, -1) == "contradicted"
    assert verdict(+3.0, 0.05, +1) is None and verdict(+3.0, float("nan"), +1) is None


def test_each_run_is_reported_at_the_learning_rate_its_other_runs_choose():
    by_lr = {1e-3: {(1, 1): 50.0, (1, 2): 60.0, (1, 3): 61.0}, 1e-4: {(1, 1): 99.0, (1, 2): 55.0, (1, 3): 56.0}}
    chosen, scores = select(by_lr, "held-out")
    # seed 1 is chosen by seeds 2-3 (medians 60.5 at 1e-3, 55.5 at 1e-4): its own 99 at 1e-4 plays no part
    assert chosen == {(1, 1): 1e-3, (1, 2): 1e-4, (1, 3): 1e-4} and scores[(1, 1)] == 50.0
    # (seeds 1 and 3 choose for seed 2: medians 55.5 at 1e-3 and 77.5 at 1e-4)
    chosen, scores = select(by_lr, "dev")  # the first rule: the best median of the very scores it reports
    assert set(chosen.values()) == {1e-3} and scores == by_lr[1e-3]


def test_the_edge_rule_extends_the_grid_one_step_beyond_the_edge_a_run_chose():
    grid = {
        ("STS-B", "random"): {
            3e-4: {(1, s): 13.0 for s in (1, 2, 3)},
            1e-3: {(1, s): 9.0 for s in (1, 2, 3)},
            2e-3: {(1, s): 5.0 for s in (1, 2, 3)},
        },
        ("SST-2", "random"): {
            3e-4: {(1, s): 70.0 for s in (1, 2, 3)},
            1e-3: {(1, s): 80.0 for s in (1, 2, 3)},
            2e-3: {(1, s): 75.0 for s in (1, 2, 3)},
        },
        ("CoLA", "random"): {3e-4: {(1, 1): 1.0}, 1e-3: {}, 2e-3: {}},
    }  # not finished: no rule yet
    assert edge_extensions(grid, (3e-4, 1e-3, 2e-3), (1e-4, 4e-3)) == {("random", "STS-B"): (1e-4,)}
    grid[("STS-B", "random")][1e-4] = {(1, s): 14.0 for s in (1, 2, 3)}  # the step, once run, asks for nothing more
    assert edge_extensions(grid, (3e-4, 1e-3, 2e-3), (1e-4, 4e-3)) == {("random", "STS-B"): (1e-4,)}


def _records(scores, lr=1e-3, **extra):
    return [
        {
            "kind": "finetune",
            "key": f"{arm}{task}{p}{seed}{lr}",
            "name": f"{arm}/{task}/lr{lr:g}/seed{seed}/p{p}",
            "arm": arm,
            "task": task,
            "lr": lr,
            "seed": seed,
            "pretrain_seed": p,
            "score": score,
            "commands": [],
            "commit": "x",
            "wall_s": 1.0,
            "checkpoint": "last",
            **extra,
        }
        for (arm, task, p), values in scores.items()
        for seed, score in enumerate(values, 1)
    ]


def test_report_prints_every_claims_statistics_with_holm_over_the_claims_and_the_transfer_line_last(tmp_path):
    from vega_toolkit.study.plan import ARMS
    from vega_toolkit.study.report import write_report

    scores = {
        ("random", "A", 1): [50, 52, 54],
        ("rtd_ternary", "A", 1): [58, 59, 61],
        ("masked_lm", "A", 1): [57, 58, 60],
    }
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(scores)))
    lines = write_report(tmp_path).splitlines()
    transfer = ttest_ind([58, 59, 61], [50, 52, 54], equal_var=False)
    mlm = ttest_ind([57, 58, 60], [58, 59, 61], equal_var=False)
    p_holm = [
        min(1, 2 * min(transfer.pvalue, mlm.pvalue)),
        max(min(1, 2 * min(transfer.pvalue, mlm.pvalue)), max(transfer.pvalue, mlm.pvalue)),
    ]
    claim = next(line for line in lines if line.startswith("claim rtd_ternary-vs-random "))
    assert claim == (
        f"claim rtd_ternary-vs-random difference=+7.33 se={7.3333 / transfer.statistic:.2f} "
        f"t={transfer.statistic:+.2f} df={transfer.df:.1f} p={transfer.pvalue:.3f} "
        f"p_holm={p_holm[0]:.3f} verdict=reproduced"
    )
    assert "claim masked_lm-vs-rtd_ternary difference=-1.00 " in "\n".join(lines)
    assert f"p_holm={p_holm[1]:.3f} verdict=not_resolved" in "\n".join(lines)
    assert lines[-1] == (
        f"transfer rtd_ternary-vs-random avg_delta=+7.33 se=1.45 tasks_better=1/1 p_holm={p_holm[0]:.3f}"
    )
    report = (tmp_path / "report.md").read_text()
    assert "The family is the 2 claims of this table" in report
    assert (
        f"| {ARMS['rtd_ternary'].claim} | `rtd_ternary` vs `random` | +7.33 | 1.45 | {transfer.statistic:+.2f} | "
        f"{transfer.df:.1f} | {transfer.pvalue:.3f} | {p_holm[0]:.3f} | reproduced | "
        f"lacking (no dev predictions) |"
    ) in report


def test_an_arm_with_two_pretraining_runs_enters_the_test_with_one_value_per_run(tmp_path):
    """Six fine-tunings of two pretraining runs are two independent values, not six: the spread between the
    pretraining runs is the arm's standard error."""
    from vega_toolkit.study.report import _grid, compare

    scores = {
        ("random", "A", 1): [50, 52, 54],
        ("rtd_ternary", "A", 1): [58, 59, 60],
        ("rtd_ternary", "A", 2): [52, 53, 54],
    }
    c = compare(_grid(_records(scores)), ["A"], "rtd_ternary", "random")
    oracle = ttest_ind([59, 53], [50, 52, 54], equal_var=False)
    assert c["delta"] == pytest.approx(4.0) and c["test"]["p"] == pytest.approx(oracle.pvalue)
    assert c["test"]["df"] == pytest.approx(oracle.df)


def test_identical_predictions_give_a_zero_interval_and_a_better_arm_a_positive_one():
    rng = np.random.default_rng(0)
    labels = {"T": rng.integers(2, size=200).astype(str)}
    right = labels["T"].copy()
    half = np.where(rng.random(200) < 0.5, labels["T"], rng.integers(2, size=200).astype(str))

    def accuracy(task, preds, gold):  # one score per resample row
        return 100 * np.mean(preds == gold, axis=1)

    assert paired_bootstrap([{"T": half}] * 3, [{"T": half}] * 3, labels, accuracy, 200) == [0.0, 0.0]
    low, high = paired_bootstrap([{"T": right}] * 3, [{"T": half}] * 3, labels, accuracy, 200)
    assert 0 < low < 100 - 100 * np.mean(half == labels["T"]) < high


@pytest.mark.parametrize("task", ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"])
def test_row_scores_equal_the_glue_metrics_of_each_row(task):
    from vega_toolkit.data.glue_tasks import get_glue_task
    from vega_toolkit.metrics.glue_metrics import row_scores, task_metrics, task_score

    glue, rng = get_glue_task(task), np.random.default_rng(3)
    if glue.is_regression:
        labels = rng.uniform(0, 5, size=(6, 40)).round(1)  # rounded: ties exercise spearman's average ranks
        preds = (labels + rng.normal(0, 1 + np.arange(6)[:, None], size=labels.shape)).round(1)
        preds[0] = 2.5  # a constant row: nan, as task_metrics gives
    else:
        labels = np.asarray(glue.labels)[rng.integers(len(glue.labels), size=(6, 40))]
        preds = np.where(
            rng.random(labels.shape) < np.linspace(0.2, 0.9, 6)[:, None],
            labels,
            np.asarray(glue.labels)[rng.integers(len(glue.labels), size=labels.shape)],
        )
        preds[0] = glue.labels[0]  # a constant predictor: MCC 0, F1 0 when the positive class is not predicted
    expected = [task_score(task, task_metrics(task, p, t)) for p, t in zip(preds, labels, strict=True)]
    np.testing.assert_allclose(row_scores(task, preds, labels), expected, rtol=1e-9, atol=1e-9)


def test_the_dev_table_shows_the_majority_class_and_word_overlap_floors_and_keeps_them(tmp_path):
    from vega_toolkit.demo.report import majority_baseline
    from vega_toolkit.metrics.glue_metrics import task_score
    from vega_toolkit.study.anchors import dev_baseline
    from vega_toolkit.study.report import ANCHORS_FILE, write_report

    glue_fixture_dir = Path(__file__).parent / "fixtures" / "glue"
    scores = {("random", task, 1): [50, 52, 54] for task in ("RTE", "STS-B")}
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(scores)))
    (tmp_path / "study.json").write_text(
        json.dumps(
            {
                "scale": {
                    "name": "t",
                    "tasks": [{"name": "RTE", "in_average": False, "floor": "declared"}, {"name": "STS-B"}],
                }
            }
        )
    )
    write_report(tmp_path, glue_dir=str(glue_fixture_dir))
    majority = task_score("RTE", majority_baseline(glue_fixture_dir, "RTE"))
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| RTE"))
    assert row.startswith("| RTE (at floor, not averaged) |") and row.endswith(f"| {majority:.2f} | — |")
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| STS-B"))
    assert row.endswith(f"| — | {dev_baseline(str(glue_fixture_dir)):.2f} |")
    # kept: without the GLUE files the same table comes back
    first = (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / ANCHORS_FILE).read_text())["majority"]["RTE"] == pytest.approx(majority, abs=1e-4)
    write_report(tmp_path)
    assert (tmp_path / "report.md").read_text() == first


def _toy_scale_cells(tmp_path, **rules):
    from dataclasses import replace

    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.cells import build_cells
    from vega_toolkit.study.plan import SCALES

    toy = tmp_path / "toy"
    if not toy.exists():
        write_toy_data(toy, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    scale = replace(SCALES["smoke"], **rules)
    return scale, toy, build_cells(scale, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"))


def test_a_scale_plans_second_pretraining_runs_the_pretraining_lr_grid_and_the_compute_axis(tmp_path):
    from vega_toolkit.study.plan import SCALES

    scale, _, cells = _toy_scale_cells(
        tmp_path,
        pretrain_seeds=(("rtd_ternary", (1, 2)),),
        pretrain_lr_grid=(3e-4, 1e-3),
        compute_updates=(3,),
        compute_arms=("rtd_ternary",),
        compute_tasks=("RTE",),
    )
    pretrain = {c.name: c for c in cells if c.kind == "pretrain"}
    assert list(pretrain) == [
        "pretrain rtd_ternary",
        "pretrain rtd_ternary lr0.0003",  # the grid first: the rule chooses the rate the other seeds run at
        "pretrain rtd_ternary seed2",
        "pretrain rtd_ternary@3",
    ]
    assert "--seed 2" in " ".join(pretrain["pretrain rtd_ternary seed2"].commands[0])
    assert "--lr 0.0003" in " ".join(pretrain["pretrain rtd_ternary lr0.0003"].commands[0])
    assert "--max-update 3" in " ".join(pretrain["pretrain rtd_ternary@3"].commands[0])
    # the scale's own run keeps the key it has without the new runs: its finished cells are not redone
    assert pretrain["pretrain rtd_ternary"].key == next(
        c.key for c in _toy_scale_cells(tmp_path)[2] if c.name == "pretrain rtd_ternary"
    )
    finetune = [c for c in cells if c.kind == "finetune"]
    second = [c for c in finetune if c.fields.get("pretrain_seed") == 2]
    assert len(second) == len(scale.tasks) * len(scale.learning_rates) * len(scale.seeds)
    assert all(pretrain["pretrain rtd_ternary seed2"].key in c.deps and c.name.endswith("/pretrain2") for c in second)
    assert not [c for c in finetune if c.fields["arm"] == "random" and c.fields.get("pretrain_seed")]  # one init
    axis = [c for c in finetune if c.fields.get("pretrain_updates") == 3]
    assert {c.fields["task"] for c in axis} == {"RTE"} and all(c.name.startswith("rtd_ternary@3/") for c in axis)
    # scored on the last checkpoint, the per-epoch best beside it; the first rule keeps its commands
    train = next(cmd for cmd in finetune[0].commands if cmd[0] == "vega-train")
    generate = [cmd for cmd in finetune[0].commands if cmd[0] == "vega-generate"]
    assert "--no-last-checkpoints" not in train and [g[1].rsplit("/", 1)[1] for g in generate] == [
        "checkpoint_last.pt",
        "checkpoint_best.pt",
    ]
    _, _, first_rule = _toy_scale_cells(tmp_path, checkpoint="best")
    assert [[c for c in cmd if c.endswith(".pt")] for cmd in first_rule[-1].commands if cmd[0] == "vega-generate"] == [
        [first_rule[-1].workdir + "/ckpt/checkpoint_best.pt"]
    ]
    assert SCALES["cpu-dev-selected"].checkpoint == "best" and SCALES["cpu"].checkpoint == "last"


def test_the_runner_adds_the_edge_rules_grid_point_once_the_entry_has_finished(tmp_path):
    from vega_toolkit.study.runner import StudyRunner

    scale, toy, cells = _toy_scale_cells(tmp_path, learning_rates=(1e-3, 2e-3), lr_edge_steps=(3e-4, 4e-3))
    out = tmp_path / "study"
    out.mkdir()
    records = [
        {
            "kind": "finetune",
            "name": c.name,
            "key": c.key,
            **c.fields,
            "score": 10.0 - 1000 * c.fields["lr"],
            "commands": [],
            "wall_s": 1.0,
        }
        for c in cells
        if c.kind == "finetune" and c.fields["task"] == "RTE" and c.fields["arm"] == "random"
    ]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    runner = StudyRunner(
        scale, out, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"), log=lambda _: None
    )
    assert runner.extensions == {("random", "RTE"): (3e-4,)}  # every run chose the grid's lowest rate
    added = [c for c in runner.cells if c.kind == "finetune" and c.fields["lr"] == 3e-4]
    assert {(c.fields["arm"], c.fields["task"]) for c in added} == {("random", "RTE")}
    assert len(added) == len(scale.seeds)


def test_a_planned_cell_that_finished_under_another_name_is_recorded_under_its_own_without_running(tmp_path):
    """The compute axis' shortest pretraining is the first study's pretraining, same commands and key."""
    from vega_toolkit.study.runner import StudyRunner, read_results

    scale, toy, cells = _toy_scale_cells(
        tmp_path, compute_updates=(6,), compute_arms=("rtd_ternary",), compute_tasks=("RTE",)
    )
    axis = next(c for c in cells if c.name == "pretrain rtd_ternary@6")
    out = tmp_path / "study"
    out.mkdir()
    (out / "results.jsonl").write_text(
        json.dumps(
            {
                "kind": "pretrain",
                "name": "pretrain rtd_ternary",
                "key": axis.key,
                "arm": "rtd_ternary",
                "commands": [],
                "wall_s": 5.0,
            }
        )
        + "\n"
    )
    runner = StudyRunner(
        scale, out, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"), log=lambda _: None
    )
    runner._alias_reused_cells()
    alias = [r for r in read_results(out) if r["name"] == "pretrain rtd_ternary@6"]
    assert len(alias) == 1 and alias[0]["alias_of"] == "pretrain rtd_ternary" and alias[0]["pretrain_updates"] == 6
    runner._alias_reused_cells()
    assert len(read_results(out)) == 2  # once


def test_the_claims_table_shows_the_dev_sampling_interval_where_every_selected_cell_kept_its_predictions(tmp_path):
    from vega_toolkit.study.report import ANCHORS_FILE, write_report

    rng = np.random.default_rng(1)
    gold = "".join(rng.choice(["0", "1"], size=60))
    flip = {"0": "1", "1": "0"}

    def noisy(p_right):
        return "".join(g if rng.random() < p_right else flip[g] for g in gold)

    records = []
    for arm, p_right in (("random", 0.55), ("rtd_ternary", 0.9)):
        for seed in (1, 2, 3):
            preds = noisy(p_right)
            score = 100 * np.mean([a == b for a, b in zip(preds, gold, strict=True)])
            records += _records({(arm, "RTE", 1): [score]}, dev_predictions={"dev": preds})
            records[-1].update(seed=seed, key=f"{arm}{seed}", name=f"{arm}/RTE/lr0.001/seed{seed}")
    records += _records({("masked_lm", "RTE", 1): [60, 61, 62]})  # no predictions: its claim lacks the interval
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / ANCHORS_FILE).write_text(json.dumps({"dev_labels": {"RTE": gold}}))
    write_report(tmp_path)
    claims = (tmp_path / "report.md").read_text().split("## The paper's claims")[1].splitlines()
    transfer = next(line for line in claims if "`rtd_ternary` vs `random`" in line)
    low, high = (float(x) for x in transfer.split("| [")[1].split("]")[0].split(", "))
    assert 0 < low < high
    assert "lacking (no dev predictions)" in next(line for line in claims if "`masked_lm` vs `rtd_ternary`" in line)
