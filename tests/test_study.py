"""`vega-study`: the declared grid runs as real cells, resumes after a kill without redoing finished cells, re-runs
exactly the cells whose configuration changed, and reports medians, spreads and the transfer line."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vega_toolkit.study.cells import build_cells
from vega_toolkit.study.plan import SCALES
from vega_toolkit.study.report import best_point, compare, write_report

TRANSFER_LINE = re.compile(r"^transfer rtd_ternary-vs-random avg_delta=[+-]\d+\.\d\d se=(\d+\.\d\d|nan) "
                           r"tasks_better=\d+/\d+$")


def study(*args, **popen):
    cmd = [sys.executable, "-c", "import sys; from vega_toolkit.cli.study import cli_main; sys.exit(cli_main())",
           *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def results(out: Path):
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_killed_smoke_study_resumes_without_redoing_cells_and_reruns_only_changed_ones(tmp_path):
    out = tmp_path / "study"
    runner = study("run", "--scale", "smoke", "--out", out, "--jobs", "2", start_new_session=True)
    deadline = time.time() + 600
    while len([r for r in results(out) if r["kind"] == "finetune"]) < 2 and runner.poll() is None:
        assert time.time() < deadline, "no fine-tuning cell finished in 10 minutes"
        time.sleep(0.5)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and the cells it was running, mid-grid
    runner.wait()
    before = results(out)
    assert runner.returncode == -signal.SIGKILL and 3 <= len(before)

    resumed = study("run", "--scale", "smoke", "--out", out, "--jobs", "2")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    total = len(build_cells(SCALES["smoke"], str(out / "toy_data" / "glue"), str(out / "toy_data" / "corpus")))
    assert f"{total} cells, {len(before)} already finished (skipped)" in resumed.stdout
    after = results(out)
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == total  # every cell once: nothing finished was redone
    assert after[:len(before)] == before
    assert TRANSFER_LINE.match(resumed.stdout.strip().splitlines()[-1]), resumed.stdout[-500:]
    assert (out / "report.md").exists() and (out / "study.png").stat().st_size > 0
    finetune = [r for r in after if r["kind"] == "finetune"]
    assert {r["arm"] for r in finetune} == {"random", "rtd_ternary"}
    assert all("dev" in r and r["commands"] and r["commit"] for r in finetune)

    # a changed fine-tuning configuration re-runs those cells (new keys) and nothing upstream of them; a finished
    # pretraining whose model folder is gone (a fresh checkout of a committed study) is run again first
    import shutil

    shutil.rmtree(out / "models")
    changed = study("run", "--scale", "smoke", "--out", out, "--jobs", "2", "--tasks", "RTE",
                    "--extra-finetune-args", "--weight-decay 0.02")
    assert changed.returncode == 0, changed.stdout[-3000:]
    rte_cells = len(SCALES["smoke"].arms) * len(SCALES["smoke"].seeds)
    assert "pretrain rtd_ternary finished before but" in changed.stdout
    assert f"{3 + rte_cells} cells, 2 already finished (skipped), {1 + rte_cells} to run" in changed.stdout
    rerun = [r for r in results(out)[total:] if r["kind"] == "finetune"]
    assert len(rerun) == rte_cells and all(r["task"] == "RTE" and "--weight-decay 0.02" in r["commands"][-2]
                                           for r in rerun)
    assert [r["kind"] for r in results(out)].count("preprocess") == 1
    assert (out / "models").is_dir()


def test_cell_keys_follow_the_configuration_they_run(tmp_path):
    from dataclasses import replace

    from vega_toolkit.demo.toy_data import write_toy_data

    toy = write_toy_data(tmp_path, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    scale = SCALES["smoke"]
    cells = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    same = {c.name: c for c in build_cells(scale, str(toy / "glue"), str(toy / "corpus"))}
    assert {n: c.key for n, c in cells.items()} == {n: c.key for n, c in same.items()}
    longer = replace(scale, pretrain_args=scale.pretrain_args[:-2] + ("--keep-interval-updates", "3"))
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


def test_report_selects_each_arms_best_learning_rate_by_median_and_computes_the_standard_error(tmp_path):
    records = []
    scores = {  # (arm, task, lr) -> scores of seeds 1..3
        ("random", "A", 1e-3): [50, 52, 54], ("random", "A", 1e-4): [40, 41, 90],
        ("random", "B", 1e-3): [60, 60, 60],
        ("rtd_ternary", "A", 1e-3): [55, 57, 59], ("rtd_ternary", "B", 1e-3): [61, 59, 66],
    }
    for (arm, task, lr), values in scores.items():
        for seed, score in enumerate(values, 1):
            records.append({"kind": "finetune", "key": f"{arm}{task}{lr}{seed}", "arm": arm, "task": task, "lr": lr,
                            "seed": seed, "score": score, "commands": [], "commit": "x", "wall_s": 1.0})
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    from vega_toolkit.study.report import _grid

    grid = _grid(records)
    assert best_point(grid[("A", "random")])[0] == 1e-3  # median 52 beats median 41 despite the 90
    c = compare(grid, ["A", "B"], "rtd_ternary", "random")
    # per-seed averages: rtd (58, 58, 62.5), random (55, 56, 57)
    assert c["delta"] == pytest.approx(59.5 - 56.0)
    assert c["se"] == pytest.approx(((6.75 / 3) + (1.0 / 3)) ** 0.5)
    assert (c["better"], c["tasks"]) == (2, 2)
    last = write_report(tmp_path).splitlines()[-1]
    assert last == "transfer rtd_ternary-vs-random avg_delta=+3.50 se=1.61 tasks_better=2/2"
    report = (tmp_path / "report.md").read_text()
    assert "52.00 (52.00 ± 2.00, n=3) @ lr 0.001" in report and "s3: 90.00" in report


def test_records_of_a_superseded_pretraining_enter_no_table(tmp_path):
    """A longer pretraining budget re-keys the arm: until its fine-tunings are re-run, the old ones are history."""
    from vega_toolkit.study.report import current_records

    def finetune(key, seed, model, score):
        return {"kind": "finetune", "name": f"rtd_ternary/A/lr0.001/seed{seed}", "key": key, "arm": "rtd_ternary",
                "task": "A", "lr": 1e-3, "seed": seed, "score": score, "wall_s": 1.0,
                "commands": [f"vega-train {{glue}}/A --finetune-from-model {{out}}/models/rtd_ternary-{model}/model.pt"]}

    old, new = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    pretrain = {"kind": "pretrain", "arm": "rtd_ternary", "commands": [], "wall_s": 1.0}
    records = [dict(pretrain, name="pretrain rtd_ternary", key=old), finetune("k1", 1, old, 10.0),
               finetune("k2", 2, old, 11.0), dict(pretrain, name="pretrain rtd_ternary", key=new),
               finetune("k3", 1, new, 20.0),
               {"kind": "finetune", "name": "random/A/lr0.001/seed1", "key": "k4", "arm": "random", "task": "A",
                "lr": 1e-3, "seed": 1, "score": 5.0, "wall_s": 1.0,
                "commands": ["vega-convert export --random-init {out}/finetune/random/A/lr0.001/seed1/init"]}]
    current, superseded = current_records(records)
    assert sorted(r["key"] for r in current) == [new, "k3", "k4"]
    assert sorted(r["key"] for r in superseded) == [old, "k1", "k2"]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "3 earlier records of a changed configuration" in report
    assert "| A | `rtd_ternary` | 0.001 | s1: 20.00 | 20.00 |" in report and "s2: 11.00" not in report


def test_the_readme_quotes_the_committed_study_as_its_report_generates_it(tmp_path):
    """README tables come from results/, never typed: the block is what `vega-study report --readme` writes."""
    import shutil

    from vega_toolkit.study.report import SUMMARY_FILE, readme_block

    root = Path(__file__).resolve().parents[1]
    committed = root / "results" / "study-cpu"
    if not (committed / "results.jsonl").exists():
        pytest.skip("no committed cpu study")
    copy = tmp_path / "study-cpu"
    copy.mkdir()
    for name in ("results.jsonl", "study.json"):
        shutil.copy(committed / name, copy / name)
    write_report(copy)
    assert (copy / SUMMARY_FILE).read_text() == (committed / SUMMARY_FILE).read_text()
    assert readme_block(copy) in (root / "README.md").read_text()


def test_threads_flag_sets_every_cells_blas_threads_without_changing_keys(tmp_path):
    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.runner import StudyRunner

    toy = write_toy_data(tmp_path, corpus_paragraphs=20, task_sizes=(16, 8, 8))
    default = StudyRunner(SCALES["smoke"], tmp_path / "a", str(toy / "glue"), str(toy / "corpus"))
    two = StudyRunner(SCALES["smoke"], tmp_path / "b", str(toy / "glue"), str(toy / "corpus"), threads=2)
    assert {c.threads for c in default.cells} == {1} and {c.threads for c in two.cells} == {2}
    assert [c.key for c in default.cells] == [c.key for c in two.cells]
