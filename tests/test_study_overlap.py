"""`vega-study overlap`: STS-B test predictions correlated with the pairs' word overlap, per arm and learning rate."""

import json

import numpy as np
import pytest
from glue_helpers import FIXTURES

from vega_toolkit.cli.study import cli_main
from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.study.overlap import dev_baseline, pearson, split_overlap, word_jaccard


def test_word_jaccard_counts_lower_cased_words_and_ignores_punctuation():
    assert word_jaccard("A man plays.", "a MAN sings!") == pytest.approx(2 / 4)
    assert word_jaccard("", "...") == 0.0
    assert pearson(np.array([1.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0])) is None
    # the mean of many copies of a value that binary floats cannot hold leaves a rounding residue, not a signal
    assert pearson(np.full(1379, 2.755), np.linspace(0, 1, 1379)) is None


def _cell(out, arm, lr, seed, predictions):
    folder = out / "finetune" / arm / "STS-B" / f"lr{lr}" / f"seed{seed}" / "predictions"
    folder.mkdir(parents=True)
    (folder / "STS-B.tsv").write_text(
        "index\tprediction\n" + "".join(f"{i}\t{p:.3f}\n" for i, p in enumerate(predictions))
    )
    generate = (
        f"vega-generate ckpt.pt --glue-dir {{glue}} "
        f"--out-dir {{out}}/finetune/{arm}/STS-B/lr{lr}/seed{seed}/predictions"
    )
    return {
        "kind": "finetune",
        "task": "STS-B",
        "arm": arm,
        "lr": lr,
        "seed": seed,
        "key": f"{arm}{lr}{seed}",
        "name": f"{arm}/STS-B/lr{lr}/seed{seed}",
        "score": 0.0,
        "commands": ["vega-train ...", generate],
    }


def test_overlap_report_correlates_each_cells_test_predictions_with_word_overlap(tmp_path, capsys):
    overlap = split_overlap(FIXTURES, "test")
    assert len(overlap) == len(read_glue_split(FIXTURES, "STS-B", "test")) and overlap.std() > 0
    records = [
        _cell(tmp_path, "rtd_ternary", 0.001, 1, 5 * overlap),  # predicts the overlap itself: 100
        _cell(tmp_path, "rtd_ternary", 0.001, 2, 5 - 5 * overlap),  # its opposite: -100
        _cell(tmp_path, "random", 0.001, 1, np.full(len(overlap), 2.755)),  # collapsed to one score: undefined
        {
            "kind": "finetune",
            "task": "RTE",
            "arm": "random",
            "lr": 0.001,
            "seed": 1,
            "key": "rte",
            "name": "rte",
            "commands": [],
        },
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    assert cli_main(["overlap", str(tmp_path), "--glue-dir", FIXTURES]) == 0
    printed = capsys.readouterr().out
    assert f"word Jaccard alone correlates {dev_baseline(FIXTURES):.2f} with the gold scores" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| `")]
    assert rows == ["| `rtd_ternary` | 0.001 | s1: 100.0, s2: -100.0 | 0.0 |", "| `random` | 0.001 | s1: - | - |"]


def test_a_truncated_prediction_file_is_named_with_its_row_count(tmp_path):
    overlap = split_overlap(FIXTURES, "test")
    record = _cell(tmp_path, "masked_lm", 0.001, 1, overlap[:-1])
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(SystemExit, match=rf"STS-B.tsv: {len(overlap) - 1} predictions for {len(overlap)} test pairs"):
        cli_main(["overlap", str(tmp_path), "--glue-dir", FIXTURES])
