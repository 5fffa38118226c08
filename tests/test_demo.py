"""`make demo`'s pipeline, end to end, at the smoke size: every stage runs and the outputs are complete."""

import statistics
import subprocess
import sys
import zipfile

import pytest

from vega_toolkit.demo.pipeline import SIZES, _worth_showing
from vega_toolkit.demo.report import TABLE_HEADER, seed_rows, seed_stats


@pytest.mark.slow
def test_demo_pipeline_writes_report_figure_and_submission(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "vega_toolkit.demo", "--out", str(out), "--size", "smoke"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in range(1, 11):
        assert proc.stdout.count(f"[{stage}/10]") == 1  # one banner per stage, also with the two rows at once
    # Short lines only: fairseq's configuration dict (several KB per training, so per adaptation round) stays in
    # demo.log.
    assert not [
        line
        for line in proc.stdout.splitlines()
        if "{'_name'" in line or (len(line) > 1000 and not line.startswith("$ "))
    ]
    # each command's whole output is in demo.log, under its command line (followed from a file the command,
    # forked from the preloaded server, writes; the file is gone after)
    commands = [line for line in proc.stdout.splitlines() if line.startswith("$ ")]
    log = (out / "demo.log").read_text()
    logged = [line for line in log.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 10 and sorted(logged) == sorted(commands)  # the two fine-tuning rows run at once
    assert "wrote" in log and "INFO:fairseq_cli.train:done training" in log and not list(out.glob(".command-*"))
    tail = proc.stdout.strip().splitlines()[-3:]
    assert [line.split(":")[0].strip() for line in tail] == ["report", "figure", "submission"]

    report = (out / "report.md").read_text()
    for row in (
        "phase 1 (rtd_ternary) | valid rtd_acc",
        "phase 2 (rtd_contrastive) | valid contrastive_acc",
        "random init, same fine-tuning: mean ± std [min, max]",
        "gap above seed spread",
    ):
        assert row in report
    # one row per task and dev metric, each over the fine-tuning seeds of both inits (2 at the smoke size, to keep
    # the test short; the demo's 3 are checked below), with their spread and a verdict
    columns = len(TABLE_HEADER[0].strip("|").split("|"))  # the timing table has rows "| SST-2 | seconds |" too
    task_rows = {
        tuple(c.strip() for c in line.strip("|").split("|")[:3]): line.strip("|").split("|")
        for line in report.splitlines()
        if line.startswith(("| SST-2 |", "| RTE |", "| CoLA |")) and len(line.strip("|").split("|")) == columns
    }
    assert set(task_rows) == {
        ("SST-2", "SiFT (adversarial_ce)", "accuracy"),
        ("RTE", "transductive", "accuracy"),
        ("CoLA", "self-calibrated (KenLM)", "mcc"),
    }
    for cells in task_rows.values():
        assert cells[3].strip() == "2 vs 2"
        assert all("±" in cells[k] and "[" in cells[k] for k in (4, 5))
        assert cells[7].strip() in ("yes", "no")
    for init in ("finetune", "finetune_random"):  # every seed of both rows ran for real
        for seed in (1, 2):
            assert (out / init / f"seed{seed}" / "RTE" / "checkpoint_best.pt").exists()
    # The one trained row that the smoke size (8 + 4 pretraining updates, 8 fine-tuning updates) can lift above its
    # trivial baseline: phase 2's contrastive accuracy against 1 / batch. RTD and GLUE rows need the demo size.
    contrastive = next(line for line in report.splitlines() if "valid contrastive_acc" in line)
    assert contrastive.rstrip(" |").endswith("yes"), contrastive
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with zipfile.ZipFile(out / "submission" / "submission.zip") as zf:
        assert sorted(zf.namelist()) == ["CoLA.tsv", "RTE.tsv", "SST-2.tsv"]
        rows = zf.read("SST-2.tsv").decode().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1 + 32  # every toy test sentence predicted
    assert {r.split("\t")[1] for r in rows[1:]} <= {"0", "1"}


def test_demo_shows_round_lines_but_not_fairseqs_configuration_dict():
    config = (
        "2026-01-01 00:00:00 | INFO | fairseq_cli.train | {'_name': None, 'common': {'_name': None}, "
        "'task': {'_name': 'glue_transductive', 'max_rounds': 2}}"
    )
    assert not _worth_showing(config)
    assert _worth_showing(
        "2026-01-01 00:00:00 | INFO | vega_toolkit.adaptation.rounds | round 1: accuracy=56.34 "
        "on dev; pseudo-labels {'0': 146}, 8/146 changed"
    )


def test_demo_fine_tunes_three_seeds_per_init_and_the_smoke_size_several():
    assert SIZES["demo"].seeds == 3 and SIZES["smoke"].seeds >= 2


def test_seed_row_gives_mean_std_range_and_calls_a_gap_only_when_the_seed_ranges_do_not_overlap():
    pretrained, random_init = [0.80, 0.84, 0.82], [0.60, 0.79, 0.70]
    stats = seed_stats(pretrained)
    assert abs(stats["std"] - statistics.stdev(pretrained)) < 1e-12
    assert (stats["min"], stats["max"]) == (0.80, 0.84) and abs(stats["mean"] - statistics.mean(pretrained)) < 1e-12
    [row] = seed_rows("SST-2", "SiFT", {"accuracy": pretrained}, {"accuracy": random_init}, {"accuracy": 0.5})
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == len(TABLE_HEADER[0].strip("|").split("|"))
    assert cells[3:] == [
        "3 vs 3",
        "0.820 ± 0.020 [0.800, 0.840]",
        "0.697 ± 0.095 [0.600, 0.790]",
        "+0.123",
        "yes",
        "0.500",
    ]
    # a larger mean gap is not enough when one random-init seed reaches the pretrained range
    [row] = seed_rows("SST-2", "SiFT", {"accuracy": pretrained}, {"accuracy": [0.5, 0.5, 0.81]}, {"accuracy": 0.5})
    assert row.strip("|").split("|")[7].strip() == "no"
