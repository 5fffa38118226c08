"""The pretraining learning-rate rule (vega_toolkit/study/pretrain_lr.py): what it chooses, what waits for it in the
plan and in the runner, and what the report supersedes once it has chosen."""

import json
from dataclasses import replace

import pytest

from vega_toolkit.data.noising import label_prior_bits
from vega_toolkit.study.pretrain_lr import at_label_prior, choose, chosen_pretrain_lrs

GRID = (3e-4, 1e-3)  # the smoke scale's own rate (1e-3) and one more
PRIOR = label_prior_bits(0.10, 0.05)


def _point(updates: float, rtd_loss: float) -> dict:
    return {"num_updates": updates, "loss": rtd_loss, "rtd_loss": rtd_loss, "shuf_frac": 0.10, "repl_frac": 0.05}


def _record(cell, **result) -> dict:
    """The results.jsonl line of CELL finished with RESULT (the runner writes the same fields)."""
    commands = [" ".join(cmd) for cmd in cell.commands]
    return {"kind": cell.kind, "name": cell.name, "key": cell.key, **cell.fields, "commands": commands, **result}


def _pretrain_record(cell, rtd_loss: float) -> dict:
    return _record(cell, valid_curve=[_point(3.0, PRIOR), _point(6.0, rtd_loss)], wall_s=1.0)


def _finetune_record(cell, score: float) -> dict:
    return _record(cell, score=score, checkpoint="last", wall_s=1.0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from vega_toolkit.demo.toy_data import write_toy_data

    folder = tmp_path_factory.mktemp("toy")
    write_toy_data(folder, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    return folder


def _scale(**rules):
    from vega_toolkit.study.plan import SCALES

    defaults = dict(pretrain_seeds=(("rtd_ternary", (1, 2)),), pretrain_lr_grid=GRID)
    return replace(SCALES["smoke"], **{**defaults, **rules})


def _cells(toy, scale, pretrain_lrs=None):
    from vega_toolkit.study.cells import build_cells

    return build_cells(
        scale, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"), pretrain_lrs=pretrain_lrs
    )


def test_the_rule_chooses_the_lowest_held_out_loss_among_the_runs_that_left_the_label_prior():
    assert choose({3e-4: (0.40, False), 1e-3: (0.30, False)}, 1e-3) == 1e-3
    assert choose({3e-4: (0.40, False), 1e-3: (PRIOR, True)}, 1e-3) == 3e-4  # lower loss, but it learnt nothing
    assert choose({3e-4: (PRIOR, True), 1e-3: (PRIOR, True)}, 1e-3) == 1e-3  # nothing learnt: the scale's rate
    assert choose({3e-4: (0.30, False), 1e-3: (0.30, False)}, 1e-3) == 3e-4  # a tie: the smaller rate
    assert at_label_prior(_point(6.0, PRIOR - 0.005)) and not at_label_prior(_point(6.0, PRIOR - 0.02))
    assert not at_label_prior({"num_updates": 6.0, "loss": 9.0})  # masked_lm has no label prior


def test_an_arm_whose_grid_is_unfinished_has_no_rate_and_a_scale_without_a_grid_chooses_nothing(toy):
    scale = _scale()
    first, other = (
        next(c for c in _cells(toy, scale) if c.name == n)
        for n in ("pretrain rtd_ternary", "pretrain rtd_ternary lr0.0003")
    )
    records = [_pretrain_record(first, 0.5)]
    assert chosen_pretrain_lrs(records, GRID, 1e-3) == {}
    records.append(_pretrain_record(other, 0.4))
    assert chosen_pretrain_lrs(records, GRID, 1e-3) == {"rtd_ternary": 3e-4}
    assert chosen_pretrain_lrs(records, (), 1e-3) == {}


def test_nothing_starts_from_an_arm_before_its_rate_is_chosen_and_everything_from_the_chosen_run_after(toy):
    scale = _scale(compute_updates=(3,), compute_arms=("rtd_ternary",), compute_tasks=("RTE",))
    unplanned = _cells(toy, scale)  # what the study counts: every arm at the scale's rate
    waiting = _cells(toy, scale, pretrain_lrs={})
    assert [c.name for c in waiting if c.kind == "pretrain"] == [
        "pretrain rtd_ternary",
        "pretrain rtd_ternary lr0.0003",
    ]
    assert {c.fields["arm"] for c in waiting if c.kind == "finetune"} == {"random"}  # random init waits for nothing
    # the scale's own rate chosen: the same cells and keys as the plan that assumed it
    same = _cells(toy, scale, pretrain_lrs={"rtd_ternary": 1e-3})
    assert {c.key for c in same} == {c.key for c in unplanned}
    # the other rate chosen: its run is seed 1, the second seed and the compute axis run at it, every fine-tuning
    # of the arm reads one of them
    other = _cells(toy, scale, pretrain_lrs={"rtd_ternary": 3e-4})
    pretrain = {c.name: c for c in other if c.kind == "pretrain"}
    assert list(pretrain) == [
        "pretrain rtd_ternary",
        "pretrain rtd_ternary lr0.0003",
        "pretrain rtd_ternary lr0.0003 seed2",
        "pretrain rtd_ternary@3 lr0.0003",
    ]
    assert all("--lr 0.0003" in " ".join(c.commands[0]) for n, c in pretrain.items() if "lr0.0003" in n)
    assert pretrain["pretrain rtd_ternary lr0.0003"].key == next(
        c.key for c in unplanned if c.name.endswith("lr0.0003")
    )
    tuned = [c for c in other if c.kind == "finetune" and c.fields["arm"] == "rtd_ternary"]
    by_seed = {1: pretrain["pretrain rtd_ternary lr0.0003"].key, 2: pretrain["pretrain rtd_ternary lr0.0003 seed2"].key}
    on_axis = pretrain["pretrain rtd_ternary@3 lr0.0003"].key
    assert tuned and all(
        (on_axis if c.fields.get("pretrain_updates") else by_seed[c.fields.get("pretrain_seed", 1)]) in c.deps
        for c in tuned
    )
    assert len(tuned) == len([c for c in unplanned if c.kind == "finetune" and c.fields["arm"] == "rtd_ternary"])


def test_the_runner_plans_an_arms_fine_tunings_once_its_grid_has_chosen(toy, tmp_path):
    from vega_toolkit.study.runner import StudyRunner

    scale = _scale()
    out = tmp_path / "study"
    out.mkdir()

    def runner():
        return StudyRunner(
            scale, out, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"), log=lambda _: None
        )

    cells = {c.name: c for c in _cells(toy, scale)}
    first = runner()
    assert first.pretrain_lrs == {} and not [
        c for c in first.cells if c.fields.get("arm") == "rtd_ternary" and c.kind == "finetune"
    ]
    records = [
        _pretrain_record(cells["pretrain rtd_ternary"], PRIOR),
        _pretrain_record(cells["pretrain rtd_ternary lr0.0003"], 0.4),
    ]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    second = runner()
    assert second.pretrain_lrs == {"rtd_ternary": 3e-4}  # 1e-3 sat at the prior
    planned = {c.name: c for c in second.cells}
    by_seed = {1: planned["pretrain rtd_ternary lr0.0003"].key, 2: planned["pretrain rtd_ternary lr0.0003 seed2"].key}
    tuned = [c for c in second.cells if c.fields.get("arm") == "rtd_ternary" and c.kind == "finetune"]
    assert {c.fields.get("pretrain_seed", 1) for c in tuned} == {1, 2}
    assert all(by_seed[c.fields.get("pretrain_seed", 1)] in c.deps for c in tuned)


def test_the_report_supersedes_the_fine_tunings_of_a_rate_the_rule_did_not_choose(toy):
    from dataclasses import asdict

    from vega_toolkit.study.report import current_records

    scale = _scale()
    at_default = {c.name: c for c in _cells(toy, scale)}
    at_other = {c.name: c for c in _cells(toy, scale, pretrain_lrs={"rtd_ternary": 3e-4})}
    name = "rtd_ternary/RTE/lr0.001/seed1"
    assert at_default[name].key != at_other[name].key
    early = [  # fine-tuned from the scale's rate before the grid had finished
        _pretrain_record(at_default["pretrain rtd_ternary"], 0.5),
        _finetune_record(at_default[name], 60.0),
    ]
    current, superseded = current_records(early, asdict(scale))
    assert len(current) == 2 and not superseded  # no rate chosen yet: nothing is superseded
    chosen = early + [_pretrain_record(at_default["pretrain rtd_ternary lr0.0003"], 0.4)]
    current, superseded = current_records(chosen, asdict(scale))
    assert [r["name"] for r in superseded] == [name]  # its pretraining stays: the rate table reads it
    current, superseded = current_records(chosen + [_finetune_record(at_other[name], 55.0)], asdict(scale))
    assert [r["score"] for r in current if r["kind"] == "finetune"] == [55.0] and len(superseded) == 1


def test_a_pass_that_finishes_an_arms_grid_is_followed_by_a_pass_with_its_fine_tunings(toy, tmp_path, monkeypatch):
    """StudyRunner.run: the rule's choice after a pass re-plans the study, as the edge rule's grid points do."""
    from vega_toolkit.study.runner import StudyRunner

    scale = _scale()
    out = tmp_path / "study"
    runner = StudyRunner(
        scale, out, str(toy / "glue"), str(toy / "corpus"), arms=("random", "rtd_ternary"), log=lambda _: None
    )
    passes = []

    def run_pass():  # what each pass would run, and the grid's runs finishing in the first
        passes.append({c.name for c in runner.cells if c.kind == "finetune" and c.fields["arm"] == "rtd_ternary"})
        if len(passes) == 1:
            grid = [c for c in runner.cells if c.kind == "pretrain"]
            lines = [_pretrain_record(c, 0.5 if c.fields["pretrain_lr"] == 3e-4 else 0.4) for c in grid]
            (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        return 0

    monkeypatch.setattr(runner, "_run_pass", run_pass)
    assert runner.run() == 0
    assert len(passes) == 2 and not passes[0] and passes[1]
    assert runner.pretrain_lrs == {"rtd_ternary": 1e-3}  # the scale's own rate had the lower loss
