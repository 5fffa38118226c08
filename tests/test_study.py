"""`vega-study`: the declared grid runs as real cells, resumes after a kill without redoing finished cells, re-runs
exactly the cells whose configuration changed, and reports medians, spreads and the transfer line."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vega_toolkit.cli.study import RESULTS_PAGE
from vega_toolkit.study.cells import build_cells
from vega_toolkit.study.plan import SCALES
from vega_toolkit.study.report import compare, task_effect, write_report
from vega_toolkit.study.selection import best_point

TRANSFER_LINE = re.compile(
    r"^transfer rtd_ternary-vs-random avg_delta=[+-]\d+\.\d\d se=(\d+\.\d\d|nan) "
    r"tasks_better=\d+/\d+ p_holm=\S+$"
)


def study(*args, **popen):
    cmd = [
        sys.executable,
        "-c",
        "import sys; from vega_toolkit.cli.study import cli_main; sys.exit(cli_main())",
        *map(str, args),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def results(out: Path):
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.study
def test_killed_smoke_study_resumes_without_redoing_cells_and_reruns_only_changed_ones(tmp_path):
    out = tmp_path / "study"
    # one task (RTE) of the smoke grid: its 4 fine-tuning cells are enough to be killed between, and every process
    # a cell starts costs CI about 5 s of imports
    runner = study("run", "--scale", "smoke", "--out", out, "--jobs", "2", "--tasks", "RTE", start_new_session=True)
    deadline = time.time() + 600
    while len([r for r in results(out) if r["kind"] == "finetune"]) < 2 and runner.poll() is None:
        assert time.time() < deadline, "no fine-tuning cell finished in 10 minutes"
        time.sleep(0.5)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and the cells it was running, mid-grid
    runner.wait()
    before = results(out)
    assert runner.returncode == -signal.SIGKILL and 3 <= len(before)

    resumed = study("run", "--scale", "smoke", "--out", out, "--jobs", "2", "--tasks", "RTE")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    toy = out / "toy_data"
    total = len(build_cells(SCALES["smoke"], str(toy / "glue"), str(toy / "corpus"), tasks=("RTE",)))
    assert len(before) < total  # killed mid-grid: the resumed run has cells left to run
    assert f"{total} cells, {len(before)} already finished (skipped)" in resumed.stdout
    after = results(out)
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == total  # every cell once: nothing finished was redone
    assert after[: len(before)] == before
    assert TRANSFER_LINE.match(resumed.stdout.strip().splitlines()[-1]), resumed.stdout[-500:]
    assert (out / "report.md").exists() and (out / "study.png").stat().st_size > 0
    finetune = [r for r in after if r["kind"] == "finetune"]
    assert {r["arm"] for r in finetune} == {"random", "rtd_ternary"}
    assert all("dev" in r and r["commands"] and r["commit"] for r in finetune)
    # scored on the last checkpoint, the per-epoch best scored beside it, one prediction per dev example kept
    from vega_toolkit.data.glue_readers import read_glue_split

    toy_dev = {
        task: len(read_glue_split(str(out / "toy_data" / "glue"), task, "dev")) for task in ("SST-2", "RTE", "CoLA")
    }
    assert all(
        r["checkpoint"] == "last"
        and "score_best" in r
        and not any("--no-last-checkpoints" in c for c in r["commands"])
        and len(r["dev_predictions"]["dev"]) == toy_dev[r["task"]]
        for r in finetune
    )

    # a changed fine-tuning configuration re-runs those cells (new keys) and nothing upstream of them; a finished
    # pretraining whose model folder is gone (a fresh checkout of a committed study) is run again first, after the
    # binarized text, re-made beside the committed tokenizer, which is kept as it is
    import shutil

    shutil.rmtree(out / "models")
    (data_bin,) = out.glob("data-bin-*")
    tokenizer = {name: (data_bin / name).read_bytes() for name in ("dict.txt", "spm.model")}
    binarized = {p.name: p.read_bytes() for p in data_bin.glob("*.bin")}
    for p in data_bin.iterdir():
        if p.name not in tokenizer:
            p.unlink()
    changed = study(
        "run",
        "--scale",
        "smoke",
        "--out",
        out,
        "--jobs",
        "2",
        "--tasks",
        "RTE",
        "--extra-finetune-args",
        "--weight-decay 0.02",
    )
    assert changed.returncode == 0, changed.stdout[-3000:]
    rte_cells = len(SCALES["smoke"].arms) * len(SCALES["smoke"].seeds)
    assert "pretrain rtd_ternary finished before but" in changed.stdout
    assert "preprocess finished before but" in changed.stdout and "re-making it from the outputs" in changed.stdout
    assert f"{3 + rte_cells} cells, 1 already finished (skipped), {2 + rte_cells} to run" in changed.stdout
    assert {name: (data_bin / name).read_bytes() for name in tokenizer} == tokenizer
    assert {p.name: p.read_bytes() for p in data_bin.glob("*.bin")} == binarized
    rerun = [r for r in results(out)[total:] if r["kind"] == "finetune"]
    assert len(rerun) == rte_cells and all(
        r["task"] == "RTE" and "--weight-decay 0.02" in r["commands"][-3] for r in rerun
    )
    prep = [r for r in results(out) if r["kind"] == "preprocess"]
    assert len(prep) == 2 and "--spm-model" not in prep[0]["commands"][0] and "--spm-model" in prep[1]["commands"][0]
    assert prep[0]["outputs_sha256"] == prep[1]["outputs_sha256"]  # checked by the runner: the same files again
    assert (out / "models").is_dir()


def test_cell_keys_follow_the_configuration_they_run(tmp_path):
    from dataclasses import replace

    from vega_toolkit.demo.toy_data import write_toy_data

    toy = write_toy_data(tmp_path, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    scale = SCALES["smoke"]
    cells = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    same = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    assert {n: c.key for n, c in cells.items()} == {n: c.key for n, c in same.items()}
    longer = replace(scale, pretrain=replace(scale.pretrain, extra=("--keep-interval-updates", "3")))
    changed = {c.name: c for c in build_cells(longer, str(toy / "glue"), str(toy / "corpus"))}
    for name, cell in cells.items():
        upstream_changed = name.startswith(("pretrain", "rtd_ternary/"))
        assert (cell.key != changed[name].key) == upstream_changed, name
    # the data is part of the key: an edited dev file changes that task's cells only; an edited training file
    # changes the task-adaptive pretraining text, hence the tokenizer, hence every cell after it
    with open(toy / "glue" / "RTE" / "dev.tsv", "a") as f:
        f.write("99\tA new premise.\tA new hypothesis.\tentailment\n")
    edited = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    for name, cell in cells.items():
        assert (cell.key != edited[name].key) == ("/RTE/" in name), name
    with open(toy / "glue" / "CoLA" / "train.tsv", "a") as f:
        f.write("x\t1\t\tA new sentence .\n")
    retrained = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    assert [n for n in cells if cells[n].key == retrained[n].key] == []


def test_the_first_rule_selects_each_arms_best_learning_rate_by_median_and_computes_the_standard_error(tmp_path):
    """`--selection dev`, the first cpu study's rule, kept to compare: the best median over the reported seeds."""
    from scipy.stats import ttest_ind

    records = []
    scores = {  # (arm, task, lr) -> scores of seeds 1..3
        ("random", "A", 1e-3): [50, 52, 54],
        ("random", "A", 1e-4): [40, 41, 90],
        ("random", "B", 1e-3): [60, 60, 60],
        ("rtd_ternary", "A", 1e-3): [55, 57, 59],
        ("rtd_ternary", "B", 1e-3): [61, 59, 66],
    }
    for (arm, task, lr), values in scores.items():
        for seed, score in enumerate(values, 1):
            records.append(
                {
                    "kind": "finetune",
                    "key": f"{arm}{task}{lr}{seed}",
                    "arm": arm,
                    "task": task,
                    "lr": lr,
                    "seed": seed,
                    "score": score,
                    "commands": [],
                    "commit": "x",
                    "wall_s": 1.0,
                }
            )
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    from vega_toolkit.study.report import _grid

    grid = _grid(records)
    assert best_point(grid[("A", "random")]) == 1e-3  # median 52 beats median 41 despite the 90
    c = compare(grid, ["A", "B"], "rtd_ternary", "random", rule="dev")
    # per-seed averages: rtd (58, 58, 62.5), random (55, 56, 57)
    assert c["delta"] == pytest.approx(59.5 - 56.0)
    assert c["se"] == pytest.approx(((6.75 / 3) + (1.0 / 3)) ** 0.5)
    assert (c["better"], c["tasks"]) == (2, 2)
    last = write_report(tmp_path, rule="dev").splitlines()[-1]
    p = ttest_ind([58, 58, 62.5], [55, 56, 57], equal_var=False).pvalue  # the only claim: Holm leaves it as it is
    assert last == f"transfer rtd_ternary-vs-random avg_delta=+3.50 se=1.61 tasks_better=2/2 p_holm={p:.3f}"
    report = (tmp_path / "report-dev-selected.md").read_text()  # the first rule never overwrites report.md
    assert "52.00 (52.00 ± 2.00, n=3) @ lr 0.001" in report and "s3: 90.00" in report
    # per task: mean difference at the selected points ± Welch SE (A: 57 vs 52, variances 4 and 4; B: 62 vs 60,
    # variances 13 and 0)
    assert task_effect(grid, "A", "rtd_ternary", "random", rule="dev") == pytest.approx((5.0, (8 / 3) ** 0.5))
    a, b = (ttest_ind(x, y, equal_var=False) for x, y in (([55, 57, 59], [50, 52, 54]), ([61, 59, 66], [60] * 3)))
    assert f"| A | +5.00 ± 1.63 (t +3.1, df {a.df:.1f}, p {a.pvalue:.3f}) |" in report
    assert f"| B | +2.00 ± 2.08 (t +1.0, df {b.df:.1f}, p {b.pvalue:.3f}) |" in report


def test_a_task_an_arm_has_not_finished_enters_no_comparison_until_every_learning_rate_and_seed_has(tmp_path):
    """A running task would pick its best learning rate among those run so far: it is shown in the dev table (with
    its n) but enters no average, difference or claim until its whole grid is in."""
    grid = {("A", 1e-3): [50, 52, 54], ("A", 1e-4): [40, 41, 42], ("B", 1e-3): [60, 60, 60], ("B", 1e-4): [59, 58, 57]}
    scores = {("random", task, lr): values for (task, lr), values in grid.items()}
    scores.update({("rtd_ternary", task, lr): [v + 5 for v in values] for (task, lr), values in grid.items()})
    scores[("rtd_ternary", "B", 1e-4)] = [90]  # seeds 2 and 3 of the second learning rate still to run
    records = [
        {
            "kind": "finetune",
            "key": f"{arm}{task}{lr}{seed}",
            "arm": arm,
            "task": task,
            "lr": lr,
            "seed": seed,
            "score": score,
            "commands": [],
            "commit": "x",
            "wall_s": 1.0,
        }
        for (arm, task, lr), values in scores.items()
        for seed, score in enumerate(values, 1)
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "study.json").write_text(
        json.dumps(
            {
                "cells": 24,
                "scale": {
                    "name": "t",
                    "learning_rates": [1e-4, 1e-3],
                    "seeds": [1, 2, 3],
                    "tasks": [{"name": "A"}, {"name": "B"}],
                },
            }
        )
    )
    last = write_report(tmp_path).splitlines()[-1]
    assert last.startswith("transfer rtd_ternary-vs-random avg_delta=+5.00 se=1.63 tasks_better=1/1 ")  # A alone
    report = (tmp_path / "report.md").read_text()
    assert "**Incomplete: 22 of 24 cells finished.**" in report
    # shown, at the learning rates every seed has finished (the running one is no candidate yet), but not compared
    assert "| B | 60.00 (60.00 ± 0.00, n=3) @ lr 0.001† | 65.00 (65.00 ± 0.00, n=3) @ lr 0.001† |" in report
    assert "| **average** (A) |" in report and "| B | +" not in report


def test_fine_tunings_outside_the_declared_grid_enter_no_table():
    """A learning rate or seed dropped from the scale's grid (study.json) leaves its cells as history."""
    from vega_toolkit.study.report import current_records

    records = [
        {
            "kind": "finetune",
            "name": f"random/A/lr{lr:g}/seed{seed}",
            "key": f"k{lr:g}-{seed}",
            "arm": "random",
            "task": "A",
            "lr": lr,
            "seed": seed,
            "score": 1.0,
            "commands": [],
        }
        for lr in (3e-4, 2e-3)
        for seed in (1, 4)
    ]
    current, superseded = current_records(records, {"learning_rates": [1e-4, 3e-4], "seeds": [1, 2, 3]})
    assert [r["key"] for r in current] == ["k0.0003-1"]
    assert len(superseded) == 3
    assert len(current_records(records)[0]) == 4  # no declaration: nothing to compare with


def test_records_of_a_superseded_pretraining_enter_no_table(tmp_path):
    """A longer pretraining budget re-keys the arm: until its fine-tunings are re-run, the old ones are history."""
    from vega_toolkit.study.report import current_records

    def finetune(key, seed, model, score):
        return {
            "kind": "finetune",
            "name": f"rtd_ternary/A/lr0.001/seed{seed}",
            "key": key,
            "arm": "rtd_ternary",
            "task": "A",
            "lr": 1e-3,
            "seed": seed,
            "score": score,
            "wall_s": 1.0,
            "commands": [f"vega-train {{glue}}/A --finetune-from-model {{out}}/models/rtd_ternary-{model}/model.pt"],
        }

    old, new = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    pretrain = {"kind": "pretrain", "arm": "rtd_ternary", "commands": [], "wall_s": 1.0}
    records = [
        dict(pretrain, name="pretrain rtd_ternary", key=old),
        finetune("k1", 1, old, 10.0),
        finetune("k2", 2, old, 11.0),
        dict(pretrain, name="pretrain rtd_ternary", key=new),
        finetune("k3", 1, new, 20.0),
        {
            "kind": "finetune",
            "name": "random/A/lr0.001/seed1",
            "key": "k4",
            "arm": "random",
            "task": "A",
            "lr": 1e-3,
            "seed": 1,
            "score": 5.0,
            "wall_s": 1.0,
            "commands": ["vega-convert export --random-init {out}/finetune/random/A/lr0.001/seed1/init"],
        },
    ]
    current, superseded = current_records(records)
    assert sorted(r["key"] for r in current) == [new, "k3", "k4"]
    assert sorted(r["key"] for r in superseded) == [old, "k1", "k2"]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "3 earlier records of a changed configuration" in report
    assert "| A | `rtd_ternary` | 0.001 | s1: 20.00 | 20.00 |" in report and "s2: 11.00" not in report


def test_the_results_page_quotes_the_committed_study_as_its_report_generates_it(tmp_path):
    """The results page's tables come from results/, never typed: the block is what `vega-study report --readme`
    writes, and the page it writes by default is the one the README links."""
    import shutil

    from vega_toolkit.study.report import SUMMARY_FILE, readme_block

    root = Path(__file__).resolve().parents[1]
    committed = root / "results" / "study-cpu"
    if not (committed / "results.jsonl").exists():
        pytest.skip("no committed cpu study")
    copy = tmp_path / "study-cpu"
    copy.mkdir()
    for name in ("results.jsonl", "study.json", "anchors.json"):
        shutil.copy(committed / name, copy / name)
    write_report(copy)
    assert (copy / SUMMARY_FILE).read_text() == (committed / SUMMARY_FILE).read_text()
    assert readme_block(copy) in (root / RESULTS_PAGE).read_text()
    assert f"]({RESULTS_PAGE})" in (root / "README.md").read_text()


def test_report_readme_without_a_page_rewrites_the_results_pages_block_and_refuses_a_missing_page(tmp_path):
    from vega_toolkit.study.report import readme_block

    folder = tmp_path / "study-x"
    folder.mkdir()
    records = [
        {
            "kind": "finetune",
            "name": f"random/A/lr0.001/seed{seed}",
            "key": f"k{seed}",
            "arm": "random",
            "task": "A",
            "lr": 1e-3,
            "seed": seed,
            "score": 50.0 + seed,
            "wall_s": 1.0,
            "commands": [],
        }
        for seed in (1, 2)
    ]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def report(*flags):
        proc = study("report", "study-x", *flags, cwd=tmp_path)
        out, _ = proc.communicate(timeout=600)
        return proc.returncode, out

    code, out = report("--readme")  # no results page in this folder: refused before the report is written
    assert code == 1 and out.strip().splitlines()[-1].startswith(f"vega-study report: --readme {RESULTS_PAGE}: "), out
    assert not (folder / "report.md").exists()
    page = tmp_path / RESULTS_PAGE
    page.parent.mkdir()
    page.write_text("intro\n<!-- vega-study:study-x -->\nstale\n<!-- /vega-study:study-x -->\nafter\n")
    code, out = report("--readme")
    assert code == 0, out
    assert page.read_text() == f"intro\n{readme_block(folder)}\nafter\n"


@pytest.mark.parametrize(
    "page, start, end, at_least",
    [
        # the grid, its rules and the claims' account
        (RESULTS_PAGE, "# Results on real data", "<!-- vega-study:study-cpu -->", 8),
        # the diagnosis, to the end of the page
        (RESULTS_PAGE, "## Why a pretrained model fine-tuned below random init", None, 8),
        # the README's short account of the same study
        ("README.md", "## Results", "\n## ", 4),
    ],
)
def test_the_results_prose_quotes_only_numbers_the_committed_files_hold(page, start, end, at_least):
    """Every decimal number of the results prose is in a committed file of results/ (a report, an analysis, a
    diagnosis, the published anchors): when the study moves on and a regenerated file no longer holds one, or a
    number never had a committed output, the prose is stale."""
    root = Path(__file__).resolve().parents[1]
    committed = root / "results" / "study-cpu"
    if not (committed / "results.jsonl").exists():
        pytest.skip("no committed cpu study")
    text = (root / page).read_text()
    begin = text.index(start)
    prose = text[begin : text.index(end, begin + len(start)) if end else len(text)]
    sources = "".join(path.read_text() for path in sorted((root / "results").glob("**/*.md")))
    quoted = re.findall(r"(?<![\w.])[+-]?\d+\.\d+", prose)
    assert len(quoted) >= at_least, quoted
    assert [q for q in quoted if q not in sources] == []


def test_threads_flag_sets_every_cells_blas_threads_without_changing_keys(tmp_path):
    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.runner import StudyRunner

    toy = write_toy_data(tmp_path, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    default = StudyRunner(SCALES["smoke"], tmp_path / "a", str(toy / "glue"), str(toy / "corpus"))
    two = StudyRunner(SCALES["smoke"], tmp_path / "b", str(toy / "glue"), str(toy / "corpus"), threads=2)
    assert {c.threads for c in default.cells} == {1} and {c.threads for c in two.cells} == {2}
    assert [c.key for c in default.cells] == [c.key for c in two.cells]


# ---------------------------------------------------------------------------------------------- the ablation arms
def _committed_cpu_study():
    root = Path(__file__).resolve().parents[1]
    return root / "results" / "study-cpu"


@pytest.mark.slow
def test_declaring_the_ablation_keeps_every_key_of_the_committed_cpu_study():
    """The running cpu study is keyed by its cells' commands: adding arms must not change one of its keys."""
    committed = _committed_cpu_study()
    if not (committed / "results.jsonl").exists():
        pytest.skip("no committed cpu study")
    recorded = json.loads((committed / "study.json").read_text())["paths"]  # where the runner read the data
    corpus_base = os.environ.get("VEGA_CORPUS_DIR")
    glue = os.environ.get("VEGA_GLUE_DIR") or recorded["glue"]
    corpus = os.path.join(corpus_base, "gutenberg") if corpus_base else recorded["corpus"]
    if not (os.path.isdir(glue) and os.path.isdir(corpus)):
        pytest.skip(f"the real data ({glue}, {corpus}) is not here: set VEGA_GLUE_DIR and VEGA_CORPUS_DIR")
    from vega_toolkit.study.report import current_records

    # records of a superseded configuration (the 1,500-update pretraining) are history, not the running plan
    finished = [r for r in current_records(results(committed))[0] if r["kind"] in ("finetune", "pretrain")]
    from vega_toolkit.study.plan import ARMS

    assert {"random", "rtd_ternary"} <= {r["arm"] for r in finished} <= set(ARMS) and len(finished) > 30
    for arms in (None, ("all",)):
        # the first study's cells were planned under its rules (per-epoch best checkpoint): kept as a scale of their
        # own to compare with; the cells of the rules that followed are the cpu scale's
        cells = {
            c.key: c
            for scale in ("cpu", "cpu-dev-selected")
            for c in build_cells(SCALES[scale], glue, corpus, arms=arms)
        }
        for r in finished:
            if arms is None and r["arm"] not in SCALES["cpu"].arms:
                continue  # an ablation arm's cells are planned by --arms all only
            assert r["key"] in cells, (arms, r["name"])
            assert [" ".join(cmd) for cmd in cells[r["key"]].commands] == r["commands"], r["name"]


def _toy_cells(tmp_path, arms):
    from vega_toolkit.demo.toy_data import write_toy_data

    toy = tmp_path / "toy"
    if not toy.exists():
        write_toy_data(toy, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    return {c.name: c for c in build_cells(SCALES["smoke"], str(toy / "glue"), str(toy / "corpus"), arms=arms)}


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_every_arm_is_declared_with_registry_names_and_equal_pretraining_compute(tmp_path):
    from vega_toolkit.study.plan import ARMS

    default, everything = _toy_cells(tmp_path, None), _toy_cells(tmp_path, ("all",))
    for name, cell in default.items():  # the default arms' cells do not move when the others join
        assert (cell.key, cell.commands) == (everything[name].key, everything[name].commands), name
    assert set(SCALES["smoke"].ablation_arms) == set(ARMS)
    finetuned = {c.fields["arm"] for c in everything.values() if c.kind == "finetune"}
    assert finetuned == set(ARMS)

    # pretraining arms: the same command but for the objective's flags and the keyed folders
    def budget(arm):
        cmd = everything[f"pretrain {arm}"].commands[0]
        objective = ARMS[arm].pretrain_args
        assert cmd[2 : 2 + len(objective)] == list(objective)
        rest = cmd[:2] + cmd[2 + len(objective) :]
        return [a for a in rest if not a.startswith(("{out}/pretrain", "{out}/tb"))]

    for arm in ("masked_lm", "rtd_replace_only", "rtd_shuffle_only"):
        assert budget(arm) == budget("rtd_ternary"), arm
    assert everything["pretrain masked_lm"].commands[0][2:6] == ["--task", "masked_lm", "--criterion", "masked_lm"]
    replace_only = everything["pretrain rtd_replace_only"].commands[0]
    assert (_flag(replace_only, "--shuffle-prob"), _flag(replace_only, "--replace-prob")) == ("0", "0.15")

    # rtd_ternary then rtd_contrastive: 90% + 10% of the same updates, phase 2 from phase 1's weights at half its lr
    phase1, phase2, export = everything["pretrain rtd_ternary+rtd_contrastive"].commands
    total = int(_flag(everything["pretrain rtd_ternary"].commands[0], "--max-update"))
    assert int(_flag(phase1, "--max-update")) + int(_flag(phase2, "--max-update")) == total
    assert float(_flag(phase2, "--lr")) == 0.5 * float(_flag(phase1, "--lr"))
    assert _flag(phase2, "--criterion") == "rtd_contrastive" and _flag(phase1, "--criterion") == "rtd_ternary"
    assert _flag(phase2, "--finetune-from-model") == _flag(phase1, "--save-dir") + "/checkpoint_last.pt"
    assert export[2] == _flag(phase2, "--save-dir") + "/checkpoint_last.pt"

    # adaptation arms fine-tune rtd_ternary's model on their tasks, with their flags after the plain ones
    rtd, pool = everything["pretrain rtd_ternary"], everything["external pool"]
    for name, cell in everything.items():
        arm = ARMS.get(cell.fields.get("arm"))
        if cell.kind != "finetune" or not arm.starts_from:
            continue
        assert rtd.key in cell.deps and arm.runs_on(cell.fields["task"]), name
        train = cell.commands[0]
        # an intermediate-task arm starts from its intermediate model (test_an_intermediate_task_arm_starts...)
        assert (_flag(train, "--finetune-from-model") == rtd.outputs[0]) != arm.intermediate, name
        # the arm's flags come last (before --cpu), so its --task / --criterion win over the plain ones
        assert train[-1 - len(arm.finetune_args) : -1] == [
            a.replace("{pool}", pool.outputs[0]) for a in arm.finetune_args
        ], name
    assert {c.fields["task"] for c in everything.values() if c.fields.get("arm") == "glue_transductive"} == {"RTE"}

    # the self-calibrated pool: other tasks' training text only, built by its own keyed cell
    assert _flag(pool.commands[0], "--tasks") == "SST-2,RTE"
    for arm in ("glue_self_calibrated", "glue_self_calibrated+moore_lewis"):
        cell = everything[f"{arm}/CoLA/lr0.001/seed1"]
        assert pool.key in cell.deps and _flag(cell.commands[0], "--external-data") == pool.outputs[0]
    moore_lewis = everything["glue_self_calibrated+moore_lewis/CoLA/lr0.001/seed1"].commands[0]
    assert "--selection-general" in moore_lewis
    assert "--selection-general" not in everything["glue_self_calibrated/CoLA/lr0.001/seed1"].commands[0]


def test_report_compares_each_arm_with_its_declared_baseline_and_prints_the_transfer_line_last(tmp_path):
    scores = {  # (arm, task) -> scores of seeds 1..3, one learning rate
        ("random", "A"): [50, 52, 54],
        ("random", "B"): [60, 60, 60],
        ("rtd_ternary", "A"): [55, 57, 59],
        ("rtd_ternary", "B"): [61, 59, 66],
        ("masked_lm", "A"): [53, 55, 57],
        ("masked_lm", "B"): [58, 59, 60],
        ("glue_transductive", "B"): [62, 60, 67],
    }
    records = [
        {
            "kind": "finetune",
            "key": f"{arm}{task}{seed}",
            "arm": arm,
            "task": task,
            "lr": 1e-3,
            "seed": seed,
            "score": score,
            "commands": [],
            "commit": "x",
            "wall_s": 1.0,
        }
        for (arm, task), values in scores.items()
        for seed, score in enumerate(values, 1)
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    from vega_toolkit.study import report as report_module
    from vega_toolkit.study.plan import ARMS, Arm

    # glue_transductive on task B only (its declaration names GLUE tasks; these are stand-ins)
    arms = dict(
        ARMS,
        glue_transductive=Arm(
            "glue_transductive", starts_from="rtd_ternary", only_tasks=("B",), compare_with="rtd_ternary"
        ),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("vega_toolkit.study.plan.ARMS", arms)
        lines = report_module.write_report(tmp_path).splitlines()
    from scipy.stats import ttest_ind

    rtd, mlm = (
        ttest_ind(a, b, equal_var=False).pvalue
        for a, b in (([58, 58, 62.5], [55, 56, 57]), ([55.5, 57, 58.5], [58, 58, 62.5]))
    )
    holm = [2 * min(rtd, mlm), max(2 * min(rtd, mlm), max(rtd, mlm))]  # the two claims, Holm-adjusted
    assert lines[-1] == f"transfer rtd_ternary-vs-random avg_delta=+3.50 se=1.61 tasks_better=2/2 p_holm={holm[0]:.3f}"
    # masked_lm per-seed averages (55.5, 57, 58.5) vs rtd_ternary's (58, 58, 62.5): se = sqrt(2.25/3 + 6.75/3)
    assert (
        f"effect masked_lm-vs-rtd_ternary avg_delta=-2.50 se=1.73 delta_over_se=-1.4 tasks_better=0/2 "
        f"p_holm={holm[1]:.3f}"
    ) in lines
    # glue_transductive is measured on its own task only: (62, 60, 67) vs (61, 59, 66); it tests no claim
    assert (
        "effect glue_transductive-vs-rtd_ternary avg_delta=+1.00 se=2.94 delta_over_se=+0.3 tasks_better=1/1 p_holm=nan"
    ) in lines
    report = (tmp_path / "report.md").read_text()
    assert "- `glue_transductive` vs `rtd_ternary` on B: average +1.00 points" in report
    assert "| `masked_lm` | `rtd_ternary` |" in report and "MNLI is not in the GLUE data" in report
    average = next(line for line in report.splitlines() if line.startswith("| **average**"))
    assert average.endswith("| — | | |")  # an arm measured on one task has no GLUE average
    # the paper's claims at +2.2 and -1.4 SE: at 2 and 4 Welch degrees of freedom neither is below 5% after Holm
    claims = report.split("## The paper's claims")[1]
    row = next(line for line in claims.splitlines() if line.startswith(f"| {ARMS['rtd_ternary'].claim} |"))
    assert f"| {holm[0]:.3f} | not resolved (p_holm {holm[0]:.3f} ≥ 0.05) |" in row
    row = next(line for line in claims.splitlines() if line.startswith(f"| {ARMS['masked_lm'].claim} |"))
    assert "| -2.50 | 1.73 | -1.44 |" in row and "not resolved" in row
    assert "`glue_transductive` vs `rtd_ternary` on B |" not in claims
    test = {"t": 2.5, "p": 0.01}
    assert report_module.claim_verdict({"delta": 5.0, "se": 2.0, "test": test, "p_holm": 0.02}, -1) == "contradicted"
    assert report_module.claim_verdict({"delta": 5.0, "se": float("nan"), "test": test, "p_holm": 0.02}, 1).startswith(
        "no verdict"
    )


def test_report_shows_each_pretraining_phase_and_flags_an_objective_that_sat_at_its_label_prior(tmp_path):
    from vega_toolkit.study.report import write_report

    def point(updates, loss, shuf, repl, **extra):
        return {"num_updates": float(updates), "loss": loss, "shuf_frac": shuf, "repl_frac": repl, **extra}

    pretrain = [
        {
            "kind": "pretrain",
            "key": "c",
            "arm": "rtd_ternary+rtd_contrastive",
            "commands": [],
            "wall_s": 60.0,
            "valid_curve": [
                point(900, 0.5, 0.1, 0.05),
                point(9000, 0.37, 0.1, 0.05),
                point(100, 0.99, 0.1, 0.05, rtd_loss=0.57),
                point(1000, 0.42, 0.1, 0.05, rtd_loss=0.41),
            ],
        },
        {
            "kind": "pretrain",
            "key": "s",
            "arm": "rtd_shuffle_only",
            "commands": [],
            "wall_s": 60.0,
            "valid_curve": [point(5000, 0.606, 0.1486, 0.0), point(10000, 0.606, 0.1486, 0.0)],
        },
    ]
    finetune = [
        {
            "kind": "finetune",
            "key": f"f{seed}",
            "arm": "random",
            "task": "A",
            "lr": 1e-3,
            "seed": seed,
            "score": 50.0 + seed,
            "commands": [],
            "commit": "x",
            "wall_s": 1.0,
        }
        for seed in (1, 2, 3)
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pretrain + finetune))
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    contrastive = next(line for line in report.splitlines() if line.startswith("| `rtd_ternary+rtd_contrastive`"))
    assert contrastive.startswith("| `rtd_ternary+rtd_contrastive` | 9000 + 1000 | loss 0.42, rtd_loss 0.41")
    assert "label prior 0.748 |" in contrastive  # 0.41 is far below it
    shuffle = next(line for line in report.splitlines() if line.startswith("| `rtd_shuffle_only`"))
    assert "label prior 0.606 (**at the prior: the objective learnt nothing**)" in shuffle
    assert "- `rtd_ternary+rtd_contrastive`: 900: 0.500, 9000: 0.370, phase 2: 100: 0.570, 1000: 0.410" in report


@pytest.mark.slow
def test_the_paper_scale_prints_slurm_jobs_and_never_runs_here(tmp_path):
    from vega_toolkit.demo.toy_data import write_toy_data

    toy = write_toy_data(tmp_path / "toy", corpus_paragraphs=20, task_sizes=(16, 8, 8))
    # the intermediate task of the paper scale (STS-B), which the toy data lacks
    shutil.copytree(Path(__file__).parent / "fixtures" / "glue" / "STS-B", toy / "glue" / "STS-B")
    refused = study(
        "run", "--scale", "paper", "--out", tmp_path / "paper", "--glue-dir", toy / "glue", "--corpus", toy / "corpus"
    )
    assert refused.returncode != 0 and "vega-study plan --scale paper" in refused.stderr
    assert not (tmp_path / "paper").exists()
    plan = study(
        "plan",
        "--scale",
        "paper",
        "--arms",
        "all",
        "--tasks",
        "RTE,CoLA",
        "--out",
        tmp_path / "paper",
        "--glue-dir",
        toy / "glue",
        "--corpus",
        toy / "corpus",
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    trainings = [line for line in plan.stdout.splitlines() if line.startswith("vega-train ")]
    assert trainings and all("--launcher submitit --wait" in line and "--cpu" not in line for line in trainings)
    pretrain = [line for line in trainings if "--task denoising_pretrain" in line or "--task masked_lm" in line]
    from vega_toolkit.study.plan import ARMS

    objectives = [arm for arm in ARMS.values() if arm.pretrain_args]
    assert len(pretrain) == len(objectives) + sum(bool(arm.second_phase_args) for arm in objectives)
    assert all("--arch vega_v1_1_3b" in line and "--slurm-nodes 40" in line and "--bf16" in line for line in pretrain)
    from vega_toolkit.study.plan import ARMS

    for arm in ARMS:
        assert f"# finetune {arm}/" in plan.stdout, arm
    assert not (tmp_path / "paper").exists()  # printed, not run
    # a local scale's plan is the commands `vega-study run` executes, not SLURM jobs with the paper's 40 nodes
    local = study(
        "plan", "--scale", "smoke", "--out", tmp_path / "smoke", "--glue-dir", toy / "glue", "--corpus", toy / "corpus"
    )
    assert local.returncode == 0, local.stderr[-3000:]
    trainings = [line for line in local.stdout.splitlines() if line.startswith("vega-train ")]
    assert trainings and not [line for line in trainings if "--launcher" in line or "--slurm" in line]


@pytest.mark.study
def test_a_stopped_study_waits_for_its_pretraining_to_save_the_update_it_reached(tiny_data_bin, tmp_path):
    from launch_helpers import ENV, TRAIN, load_last, pretrain_args, wait_for_file

    from vega_toolkit.study.runner import StudyRunner

    glue = Path(__file__).parent / "fixtures" / "glue"
    runner = StudyRunner(SCALES["smoke"], tmp_path / "study", str(glue), str(tmp_path))
    save_dir = tmp_path / "pretrain"
    proc = subprocess.Popen(
        TRAIN + pretrain_args(tiny_data_bin, save_dir, 100_000),
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runner._children[proc.pid] = proc  # a running pretraining cell, as _run_cell registers it
    try:
        wait_for_file(save_dir / "checkpoint_1_10.pt", timeout_s=120, alive=lambda: proc.poll() is None)
        with pytest.raises(SystemExit) as stopped:
            runner.terminate_children()  # what `vega-study run` does on SIGTERM
    finally:
        proc.kill()
    assert stopped.value.code == 128 + signal.SIGTERM
    # the cell had exited, with its checkpoint saved, before the runner did
    assert proc.returncode == 128 + signal.SIGTERM and load_last(save_dir)[1] >= 10


def test_an_intermediate_task_arm_starts_each_seed_from_its_own_intermediate_model():
    glue = str(Path(__file__).parent / "fixtures" / "glue")
    cpu = SCALES["cpu"]
    cells = build_cells(cpu, glue, glue, arms=("intermediate_task",))
    first = {c.fields["seed"]: c for c in cells if c.kind == "intermediate"}
    assert sorted(first) == list(cpu.seeds)
    assert {c.fields["task"] for c in first.values()} == {"STS-B"}
    assert {c.fields["lr"] for c in first.values()} == {cpu.learning_rates[1]}  # the middle of the grid
    targets = [c for c in cells if c.kind == "finetune"]
    assert {c.fields["task"] for c in targets} == {"MRPC", "RTE"}
    for cell in targets:
        start = first[cell.fields["seed"]]
        assert start.key in cell.deps  # a re-run intermediate model re-runs the cells that start from it
        train = cell.commands[0]
        assert train[train.index("--finetune-from-model") + 1] == start.outputs[0]
    # a study of other tasks needs no intermediate model
    assert not [
        c
        for c in build_cells(cpu, glue, glue, arms=("intermediate_task",), tasks=("CoLA",))
        if c.kind == "intermediate"
    ]


def test_an_unknown_task_name_is_an_error_before_any_cell_runs():
    glue = str(Path(__file__).parent / "fixtures" / "glue")
    with pytest.raises(ValueError, match=r"--tasks FOO: not a task of the cpu scale \(its tasks: CoLA, SST-2"):
        build_cells(SCALES["cpu"], glue, glue, tasks=("CoLA", "FOO"))


def test_a_resumed_pretraining_log_gives_one_curve_in_update_order_and_the_time_of_every_attempt():
    from vega_toolkit.study.runner import logged_run_s, parse_validation_curve

    first = (
        "# vega-study: pretrain rtd_ternary started 2026-11-29T15:00:00\n$ vega-train ...\n"
        "INFO:valid:epoch 001 | valid on 'valid' subset | loss 0.6 | num_updates 1000 | wall 400\n"
        "INFO:valid:epoch 002 | valid on 'valid' subset | loss 0.55 | num_updates 1500 | wall 600\n"
        "# vega-study: `vega-train` ran 700.0 s\n"
    )  # stopped with SIGTERM, checkpoint at update 1600
    # killed with its runner after validating update 2000, before saving it: no `ran` line, and the next attempt
    # repeats update 2000 from update 1600
    killed = (
        "# vega-study: pretrain rtd_ternary started 2026-11-29T16:00:00\n$ vega-train ...\n"
        "INFO:valid:epoch 002 | valid on 'valid' subset | loss 0.52 | num_updates 2000 | wall 300\n"
    )
    resumed = (
        "# vega-study: pretrain rtd_ternary started 2026-11-29T17:00:00\n$ vega-train ...\n"
        "INFO:valid:epoch 002 | valid on 'valid' subset | loss 0.51 | num_updates 2000 | wall 250\n"
        "# vega-study: `vega-train` ran 900.5 s\n"
        "$ vega-convert export ...\n# vega-study: `vega-convert` ran 4.5 s\n"
    )
    curve = parse_validation_curve(first + killed + resumed)
    assert [(p["num_updates"], p["loss"]) for p in curve] == [(1000, 0.6), (1500, 0.55), (2000, 0.51)]
    assert logged_run_s(first + killed + resumed) == 1605.0


def test_a_two_phase_pretraining_log_keeps_each_phases_curve_and_ends_with_the_second_phase():
    from vega_toolkit.study.runner import parse_validation_curve

    # phase 2 (rtd_contrastive) counts its updates from 0 again; its validations at 100 and 1000 must not replace
    # phase 1's at the same update numbers, and the curve ends where the cell ended: phase 2's last validation
    log = (
        "$ vega-train DATA --criterion rtd_ternary ...\n"
        "INFO:valid | valid on 'valid' subset | loss 0.6 | num_updates 100\n"
        "INFO:valid | valid on 'valid' subset | loss 0.42 | num_updates 1000\n"
        "INFO:valid | valid on 'valid' subset | loss 0.37 | num_updates 9000\n"
        "$ vega-train DATA --criterion rtd_contrastive ...\n"
        "INFO:valid | valid on 'valid' subset | loss 0.99 | rtd_loss 0.57 | num_updates 100\n"
        "INFO:valid | valid on 'valid' subset | loss 0.42 | rtd_loss 0.41 | num_updates 1000\n"
    )
    assert [(p["num_updates"], p["loss"]) for p in parse_validation_curve(log)] == [
        (100, 0.6),
        (1000, 0.42),
        (9000, 0.37),
        (100, 0.99),
        (1000, 0.42),
    ]


@pytest.mark.parametrize("flag, value", [("--jobs", "0"), ("--jobs", "-2"), ("--threads", "two")])
def test_a_job_or_thread_count_below_one_is_a_usage_error_naming_the_flag(flag, value, capsys):
    from vega_toolkit.cli.study import build_parser

    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args(["run", "--scale", "cpu", "--out", "x", flag, value])
    assert usage.value.code == 2
    assert f"argument {flag}: '{value}' is not a whole number of at least 1" in capsys.readouterr().err
    assert build_parser().parse_args(["run", "--scale", "cpu", "--out", "x", flag, "2"]).__dict__[flag[2:]] == 2


def test_a_run_of_some_arms_or_tasks_adds_to_the_folders_study_and_never_shrinks_it(tmp_path):
    from vega_toolkit.study.runner import STUDY_FILE, StudyRunner

    glue = str(Path(__file__).parent / "fixtures" / "glue")
    cpu = SCALES["cpu-dev-selected"]  # one pretraining run per arm, no compute axis: an arm adds one grid and one run

    def declared(**selection):
        StudyRunner(cpu, tmp_path, glue, glue, **selection)._write_study_file()
        return json.loads((tmp_path / STUDY_FILE).read_text())

    transfer = declared()
    assert transfer["arms"] == ["random", "rtd_ternary"] and transfer["cells"] == len(build_cells(cpu, glue, glue))
    # `--arms masked_lm` later: the folder's study is now three arms, counted over every task
    both = declared(arms=("masked_lm",))
    assert both["arms"] == ["random", "rtd_ternary", "masked_lm"]
    assert both["cells"] == len(build_cells(cpu, glue, glue, arms=("random", "rtd_ternary", "masked_lm")))
    assert both["cells"] == transfer["cells"] + len(cpu.tasks) * len(cpu.learning_rates) * len(cpu.seeds) + 1
    assert declared(tasks=("SST-2",)) == both  # a run of one task plans no fewer cells
    # another scale in the same folder starts its own declaration
    assert declared(arms=("random",)) == both
    # an arm withdrawn from plan.py since an earlier run is dropped, not an error that stops the resumed study
    (tmp_path / STUDY_FILE).write_text(json.dumps(dict(both, arms=[*both["arms"], "withdrawn_arm"])))
    assert declared() == both
    StudyRunner(SCALES["cpu-small"], tmp_path, glue, glue, arms=("random",))._write_study_file()
    assert json.loads((tmp_path / STUDY_FILE).read_text())["arms"] == ["random"]


@pytest.mark.slow
def test_a_cell_claimed_by_one_process_cannot_be_claimed_by_another_until_it_releases_or_dies(tmp_path):
    from vega_toolkit.study.cell_claims import CellClaims

    mine, other = CellClaims(tmp_path), CellClaims(tmp_path)
    assert mine.try_claim("abc") and mine.try_claim("abc")  # claiming twice in one runner is harmless
    assert not other.try_claim("abc") and other.holder("abc") == str(os.getpid())
    mine.release("abc")
    assert other.try_claim("abc")
    other.release("abc")
    # a runner killed with SIGKILL holds nothing: the kernel drops its lock with the process
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from vega_toolkit.study.cell_claims import CellClaims; "
            f"assert CellClaims({str(tmp_path)!r}).try_claim('abc'); print('held', flush=True); "
            "time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert not mine.try_claim("abc")
    holder.kill()
    holder.wait()
    assert mine.try_claim("abc")


@pytest.mark.study
def test_two_runners_on_one_folder_run_every_cell_once_between_them(tmp_path):
    from vega_toolkit.demo.toy_data import write_toy_data

    toy = write_toy_data(tmp_path / "toy", seed=1, corpus_paragraphs=300, task_sizes=(64, 32, 32))
    out = tmp_path / "study"
    args = (
        "run",
        "--scale",
        "smoke",
        "--out",
        out,
        "--glue-dir",
        toy / "glue",
        "--corpus",
        toy / "corpus",
        "--tasks",
        "SST-2",
        "--jobs",
        "1",
        "--no-report",
    )
    runners = [study(*args, start_new_session=True) for _ in range(2)]
    outputs = [runner.communicate(timeout=900)[0] for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    total = len(build_cells(SCALES["smoke"], str(toy / "glue"), str(toy / "corpus"), tasks=("SST-2",)))
    keys = [r["key"] for r in results(out)]
    assert len(keys) == len(set(keys)) == total
    # every cell was started by exactly one of the two: the other went on without it, or waited for it
    starts = [len(re.findall(r"^\[\d+/\d+\] ", o, re.M)) for o in outputs]
    assert sum(starts) == total, outputs
    assert "in another vega-study run on this folder" in "".join(outputs), outputs


def test_a_result_is_stamped_dirty_by_uncommitted_code_not_by_a_running_studys_results_or_prose(tmp_path):
    from vega_toolkit.study.runner import code_version

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    for name in ("vega_toolkit/model.py", "results/study-cpu/results.jsonl", "README.md", "docs/results.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    sha = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    # another runner appending to the committed study, an edited README and a regenerated results page: the code
    # that runs is the commit's
    (tmp_path / "results/study-cpu/results.jsonl").write_text("v1\n{}\n")
    (tmp_path / "README.md").write_text("v2\n")
    (tmp_path / "docs/results.md").write_text("v2\n")
    assert code_version(tmp_path) == sha.strip()
    (tmp_path / "vega_toolkit/model.py").write_text("v2\n")
    assert code_version(tmp_path) == sha.strip() + "-dirty"


@pytest.mark.study
def test_re_made_outputs_must_be_the_files_the_finished_cell_made_or_the_cell_fails(tmp_path):
    """Cell.rebuild: a re-made output that differs from the recorded checksum is removed and the cell fails, and a
    record without checksums cannot be re-made (the cpu study's preprocessing code changed under the same key)."""
    import json

    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.runner import CellFailed, StudyRunner

    toy = write_toy_data(tmp_path / "toy", seed=1, corpus_paragraphs=300, task_sizes=(64, 32, 32))
    out = tmp_path / "study"
    runner = StudyRunner(SCALES["smoke"], out, str(toy / "glue"), str(toy / "corpus"), tasks=("RTE",), log=print)
    out.mkdir()
    try:
        for cell in runner.cells:
            if cell.kind == "corpus":
                runner._run_cell(cell)
        (prep,) = [c for c in runner.cells if c.kind == "preprocess"]
        runner._append(runner._run_cell(prep))
        train_bin = next(Path(p.format(**runner.paths)) for p in prep.outputs if p.endswith("train.bin"))
        made = train_bin.read_bytes()

        def remake():  # a fresh checkout of a committed study: only the tokenizer is left
            for p in train_bin.parent.iterdir():
                if p.name not in ("dict.txt", "spm.model"):
                    p.unlink()
            runner._rebuilding.add(prep.key)
            return runner._run_cell(prep)

        assert (
            remake()["outputs_sha256"]
            == json.loads((out / "results.jsonl").read_text().splitlines()[-1])["outputs_sha256"]
            and train_bin.read_bytes() == made
        )
        # the record says another file was made: the re-made one is refused and removed
        lines = (out / "results.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
        record["outputs_sha256"] = {name: "0" * 64 for name in record["outputs_sha256"]}
        (out / "results.jsonl").write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")
        with pytest.raises(CellFailed, match=f"the re-made {re.escape(str(train_bin))} differs from the one it made"):
            remake()
        assert not train_bin.exists()
        # a record from before the checksums: no re-making at all
        del record["outputs_sha256"]
        (out / "results.jsonl").write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")
        with pytest.raises(CellFailed, match="cannot re-make its missing outputs: its record has no checksums"):
            runner._rebuilding.add(prep.key)
            runner._run_cell(prep)
    finally:
        if runner._preloaded:
            runner._preloaded.close()
