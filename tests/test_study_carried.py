"""vega_toolkit/study/carried.py: an unfinished pretraining's checkpoint carried through the repository to the next
machine, put back before the runner resumes it, and dropped once the pretraining has finished."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from launch_helpers import ENV, TRAIN, pretrain_args

from vega_toolkit.io.checkpoints import read_num_updates
from vega_toolkit.study.carried import carry, restore
from vega_toolkit.study.plan import SCALES

pytestmark = pytest.mark.slow  # real pretrainings
STUDY = [sys.executable, "-m", "vega_toolkit.cli.study"]


def train(args):
    subprocess.run(TRAIN + args, check=True, env={**os.environ, **ENV}, capture_output=True)


def test_carry_copies_unfinished_pretrainings_only_and_restore_puts_back_what_is_ahead(tiny_data_bin, tmp_path):
    out = tmp_path / "study"
    running, finished = out / "pretrain" / "rtd_ternary-aaaaaaaaaaaa", out / "pretrain" / "masked_lm-bbbbbbbbbbbb"
    train(pretrain_args(tiny_data_bin, running, 10))
    shutil.copytree(running, finished)
    stale = out / "carried" / "pretrain" / finished.name / "checkpoint_last.pt"  # carried before it finished
    stale.parent.mkdir(parents=True)
    shutil.copy(running / "checkpoint_last.pt", stale)

    (out / "results.jsonl").write_text('{"kind": "pretrain", "name": "pretrain masked_lm", "key": "bbbbbbbbbbbb"}\n')
    shown = subprocess.run(STUDY + ["carry", str(out)], capture_output=True, text=True, timeout=300)
    target = out / "carried" / "pretrain" / running.name / "checkpoint_last.pt"
    assert shown.returncode == 0 and shown.stdout.splitlines() == [
        f"carried {target} (update 10)",
        f"vega-study carry: 1 checkpoint under {out / 'carried'}; commit that folder",
    ]
    assert target.read_bytes() == (running / "checkpoint_last.pt").read_bytes()
    refused = subprocess.run(STUDY + ["carry", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        f"vega-study carry: {tmp_path} is not a study folder (it has no results.jsonl)"
    )
    assert carry(out, finished_keys={"bbbbbbbbbbbb"}) == [(target, 10)]  # again: the same copy
    assert not stale.parent.exists()  # a finished pretraining's carried copy goes

    # another machine: the folder is gone, and the carried checkpoint is put back
    carried_bytes = target.read_bytes()
    shutil.rmtree(running)
    assert restore(out, running) == [(running / "checkpoint_last.pt", 10, None)]
    assert (running / "checkpoint_last.pt").read_bytes() == carried_bytes
    # a folder that is ahead of the carried copy keeps its own checkpoint; one that is behind gets the carried one
    train(pretrain_args(tiny_data_bin, running, 15))
    ahead = (running / "checkpoint_last.pt").read_bytes()
    assert restore(out, running) == [] and (running / "checkpoint_last.pt").read_bytes() == ahead
    assert carry(out, finished_keys={"bbbbbbbbbbbb"}) == [(target, 15)]
    (running / "checkpoint_last.pt").write_bytes(carried_bytes)  # behind: update 10
    assert restore(out, running) == [(running / "checkpoint_last.pt", 15, 10)]
    assert (running / "checkpoint_last.pt").read_bytes() == ahead


@pytest.mark.study
def test_the_runner_resumes_a_pretraining_from_its_carried_checkpoint_and_drops_it_when_finished(tmp_path):
    from vega_toolkit.demo.toy_data import write_toy_data
    from vega_toolkit.study.runner import StudyRunner, cell_log_path

    toy = write_toy_data(tmp_path / "toy", seed=1, corpus_paragraphs=300, task_sizes=(64, 32, 32))
    out = tmp_path / "study"
    logged = []
    runner = StudyRunner(
        SCALES["smoke"], out, str(toy / "glue"), str(toy / "corpus"), arms=("rtd_ternary",), tasks=("RTE",)
    )
    runner.log = logged.append
    out.mkdir()
    try:
        for cell in runner.cells:
            if cell.kind in ("corpus", "preprocess"):
                runner._run_cell(cell)
        (pretrain,) = [c for c in runner.cells if c.kind == "pretrain"]
        workdir = Path(pretrain.workdir.format(**runner.paths))
        # the same pretraining stopped at update 3 on the first machine, its checkpoint carried, its folder gone
        first = pretrain.resolve(runner.paths)[0]
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        subprocess.run(
            first + ["--max-update", "3"],
            check=True,
            cwd=out,
            capture_output=True,
            env={**os.environ, **ENV, "PATH": path},
        )
        assert carry(out, finished_keys=set()) == [
            (out / "carried" / workdir.relative_to(out) / "checkpoint_last.pt", 3)
        ]
        shutil.rmtree(workdir)

        record = runner._run_cell(pretrain)
    finally:
        runner._preloaded.close()
    assert f"resuming from the carried checkpoint at update 3 ({workdir / 'checkpoint_last.pt'}: no checkpoint)" in (
        "\n".join(logged)
    )
    log = cell_log_path(out, pretrain.name).read_text()
    assert "@ 3 updates" in log  # fairseq's "loaded checkpoint ... (epoch 1 @ 3 updates)"
    assert read_num_updates(workdir / "checkpoint_last.pt") == SCALES["smoke"].pretrain.updates
    assert record["key"] == pretrain.key and not (out / "carried" / workdir.relative_to(out)).exists()
