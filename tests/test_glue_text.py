"""`vega-glue text`: the unlabelled training text of GLUE tasks for task-adaptive pretraining, and nothing else."""

import os
import subprocess
import sys

import pytest
from glue_helpers import FIXTURES

from vega_toolkit.data.glue_readers import read_glue_split


@pytest.mark.slow
def test_training_sentences_of_each_task_become_paragraphs_and_dev_and_test_text_never_does(tmp_path):
    out = tmp_path / "glue_train.txt"
    cmd = [
        sys.executable,
        "-c",
        "from vega_toolkit.cli.glue import cli_main; cli_main()",
        "text",
        FIXTURES,
        "--tasks",
        "CoLA,RTE",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    paragraphs = out.read_text(encoding="utf-8").split("\n\n")
    assert paragraphs[-1] == ""  # every sentence ends with a blank line
    written = paragraphs[:-1]
    expected = [e.text_a for e in read_glue_split(FIXTURES, "CoLA", "train")]
    for e in read_glue_split(FIXTURES, "RTE", "train"):
        expected += [e.text_a, e.text_b]
    assert written == [s.strip() for s in expected]
    held_out = {
        s
        for task in ("CoLA", "RTE")
        for split in ("dev", "test")
        for e in read_glue_split(FIXTURES, task, split)
        for s in (e.text_a, e.text_b)
        if s
    }
    assert not (held_out - set(expected)) & set(written)
    assert f"{len(written)} training sentences" in proc.stdout
