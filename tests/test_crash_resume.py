"""Crash safety: a run killed with SIGKILL resumes to the uninterrupted result; one stopped with SIGTERM saves
checkpoint_last.pt at the update it reached, exits 143 and resumes from there; checkpoint files are replaced
atomically (a reader never sees a partial checkpoint_last.pt); a truncated one is put aside and the run resumes from
the newest readable checkpoint; a finished run started again does nothing."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from launch_helpers import ENV, TRAIN, assert_same_weights, load_last, pretrain_args, vega_train, wait_for_file

from vega_toolkit.io import atomic

MAX_UPDATE = 40


@pytest.fixture(scope="module")
def reference_run(tiny_data_bin, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("uninterrupted")
    vega_train(pretrain_args(tiny_data_bin, save_dir, MAX_UPDATE))
    return save_dir


@pytest.fixture(scope="module")
def killed_then_restarted(tiny_data_bin, tmp_path_factory):
    """The same command, SIGKILLed right after its update-10 checkpoint, then started again unchanged."""
    save_dir = tmp_path_factory.mktemp("killed")
    args = pretrain_args(tiny_data_bin, save_dir, MAX_UPDATE)
    proc = subprocess.Popen(
        TRAIN + args, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_file(save_dir / "checkpoint_1_10.pt", timeout_s=120, alive=lambda: proc.poll() is None)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = load_last(save_dir)[1]
    log = vega_train(args)
    return save_dir, killed_at, log


@pytest.mark.slow
def test_sigkilled_run_restarted_with_the_same_command_ends_with_the_uninterrupted_weights(
    killed_then_restarted, reference_run
):
    save_dir, killed_at, log = killed_then_restarted
    # the kill lands after checkpoint_1_10.pt; checkpoint_last.pt is then at update 10, or still at 5 when the kill
    # hit between writing checkpoint_1_10.pt and copying it onto checkpoint_last.pt
    assert 5 <= killed_at < MAX_UPDATE and killed_at % 5 == 0
    assert f"@ {killed_at} updates)" in log  # resumed from checkpoint_last.pt, mid-epoch, not from scratch
    weights, updates = load_last(save_dir)
    reference, reference_updates = load_last(reference_run)
    assert updates == reference_updates == MAX_UPDATE
    # Model, Adam state, lr schedule, data-iterator position and the per-update seed are all restored, so the
    # resumed run repeats the uninterrupted one exactly (atol 1e-6 only guards against platform rounding).
    assert_same_weights(weights, reference, atol=1e-6)


@pytest.mark.slow
def test_sigterm_saves_the_update_reached_exits_143_and_the_same_command_resumes_to_the_uninterrupted_weights(
    reference_run, tiny_data_bin, tmp_path
):
    args = pretrain_args(tiny_data_bin, tmp_path, MAX_UPDATE)
    proc = subprocess.Popen(
        TRAIN + args, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_file(tmp_path / "checkpoint_1_10.pt", timeout_s=120, alive=lambda: proc.poll() is None)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    stopped = re.search(r"stopped by SIGTERM at update (\d+);", out)
    assert stopped, out[-3000:]
    stopped_at = int(stopped.group(1))
    # saved where it stopped, not at the last --save-interval-updates checkpoint (SIGKILL loses those updates)
    assert 10 <= stopped_at < MAX_UPDATE and load_last(tmp_path)[1] == stopped_at
    log = vega_train(args)
    assert f"@ {stopped_at} updates)" in log
    weights, updates = load_last(tmp_path)
    assert updates == MAX_UPDATE
    assert_same_weights(weights, load_last(reference_run)[0], atol=1e-6)


@pytest.mark.slow
def test_truncated_checkpoint_last_falls_back_to_the_newest_readable_checkpoint_and_is_kept_aside(
    killed_then_restarted, tiny_data_bin, tmp_path
):
    save_dir = killed_then_restarted[0]
    for name in ("checkpoint_1_5.pt", "checkpoint_1_10.pt", "checkpoint_last.pt"):
        (tmp_path / name).write_bytes((save_dir / name).read_bytes())
        time.sleep(0.01)  # distinct mtimes: checkpoint_1_10.pt is the newest intact one
    last = tmp_path / "checkpoint_last.pt"
    truncated = last.read_bytes()[: last.stat().st_size // 2]  # what a non-atomic copy leaves after a kill
    last.write_bytes(truncated)
    log = vega_train(pretrain_args(tiny_data_bin, tmp_path, 12))
    assert "is truncated or corrupt" in log and "resumes from " + str(tmp_path / "checkpoint_1_10.pt") in log
    assert "@ 10 updates)" in log  # resumed at update 10, not restarted from 0
    assert load_last(tmp_path)[1] == 12
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("checkpoint_last.pt.broken-")]
    assert len(aside) == 1 and aside[0].read_bytes() == truncated  # renamed aside, never deleted


@pytest.mark.slow
def test_rerunning_a_finished_command_is_a_no_op_that_says_so(reference_run, tiny_data_bin):
    last = reference_run / "checkpoint_last.pt"
    before = (last.read_bytes(), last.stat().st_mtime_ns)
    log = vega_train(pretrain_args(tiny_data_bin, reference_run, MAX_UPDATE))
    assert f"{last} is at update {MAX_UPDATE} and --max-update is {MAX_UPDATE}: this run has finished" in log
    assert (last.read_bytes(), last.stat().st_mtime_ns) == before and load_last(reference_run)[1] == MAX_UPDATE


WRITER = textwrap.dedent("""
    import sys, torch
    import vega_toolkit  # installs the atomic checkpoint writes
    from fairseq import checkpoint_utils
    folder = sys.argv[1]
    state = {"model": {"w": torch.zeros(4_000_000)}}
    i = 0
    while True:  # what fairseq's save_checkpoint does: write checkpoint_N.pt, copy it onto checkpoint_last.pt
        i += 1
        state["model"]["w"].fill_(i)
        checkpoint_utils.torch_persistent_save(state, f"{folder}/checkpoint_1_{i % 3}.pt")
        checkpoint_utils.PathManager.copy(f"{folder}/checkpoint_1_{i % 3}.pt", f"{folder}/checkpoint_last.pt",
                                          overwrite=True)
        print(i, flush=True)
""")


@pytest.mark.slow
def test_readers_never_see_a_partial_checkpoint_last_while_a_writer_is_sigkilled(tmp_path):
    # A 16 MB checkpoint rewritten in a loop. With fairseq's stock writes (shutil.copyfile straight onto
    # checkpoint_last.pt) most concurrent reads fail: measured 993 of 1052 reads in 3 s on this machine.
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tmp_path / "checkpoint_last.pt"
    try:
        wait_for_file(last, timeout_s=60, alive=lambda: proc.poll() is None)
        reads, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:
            w = torch.load(last)["model"]["w"]
            assert w.numel() == 4_000_000 and bool((w == w[0]).all())
            reads += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.stdout.read().split(), proc.stderr.read()[-2000:]  # the writer did write while we read
    assert reads > 3
    w = torch.load(last)["model"]["w"]  # whatever moment the kill hit, the file is a whole checkpoint
    assert w.numel() == 4_000_000 and bool((w == w[0]).all())


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint_last.pt"
    atomic.atomic_torch_save({"v": torch.ones(3)}, str(target))

    def failing_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_torch_save({"v": torch.zeros(3)}, str(target))
    monkeypatch.undo()
    assert torch.equal(torch.load(target)["v"], torch.ones(3))
    assert os.listdir(tmp_path) == ["checkpoint_last.pt"]
