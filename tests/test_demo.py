"""`make demo`'s pipeline, end to end, at the smoke size: every stage runs and the outputs are complete."""
import subprocess
import sys
import zipfile

import pytest

from vega_toolkit.demo.pipeline import _worth_showing


@pytest.mark.slow
def test_demo_pipeline_writes_report_figure_and_submission(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "vega_toolkit.demo", "--out", str(out), "--size", "smoke"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in range(1, 11):
        assert f"[{stage}/10]" in proc.stdout  # a banner per stage
    # Short lines only: fairseq's configuration dict (several KB per training, so per adaptation round) stays in
    # demo.log.
    assert not [line for line in proc.stdout.splitlines()
                if "{'_name'" in line or (len(line) > 1000 and not line.startswith("$ "))]
    tail = proc.stdout.strip().splitlines()[-3:]
    assert [line.split(":")[0].strip() for line in tail] == ["report", "figure", "submission"]

    report = (out / "report.md").read_text()
    for row in ("phase 1 (rtd_ternary) | valid rtd_acc", "phase 2 (rtd_contrastive) | valid contrastive_acc",
                "| SST-2 |", "| RTE |", "| CoLA |", "random init, same fine-tuning"):
        assert row in report
    assert (out / "finetune_random" / "RTE" / "checkpoint_best.pt").exists()  # the baseline rows ran for real
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
    config = ("2026-01-01 00:00:00 | INFO | fairseq_cli.train | {'_name': None, 'common': {'_name': None}, "
              "'task': {'_name': 'glue_transductive', 'max_rounds': 2}}")
    assert not _worth_showing(config)
    assert _worth_showing("2026-01-01 00:00:00 | INFO | vega_toolkit.adaptation.rounds | round 1: accuracy=56.34 "
                          "on dev; pseudo-labels {'0': 146}, 8/146 changed")
