"""One vega-train run per --save-dir: a second run stops with the holder's host, pid and start time; a lock left by a
killed run is taken over; a requeued SLURM job takes its own lock; the lock goes when the run ends."""

import json
import os
import signal
import socket
import subprocess

import pytest
from launch_helpers import ENV, TRAIN, pretrain_args, vega_train, wait_for_file

from vega_toolkit.runtime.save_dir_lock import LOCK_FILE


@pytest.mark.slow
def test_a_second_run_in_the_same_save_dir_stops_and_a_killed_runs_lock_is_taken_over(tiny_data_bin, tmp_path):
    lock = tmp_path / LOCK_FILE
    first = subprocess.Popen(
        TRAIN + pretrain_args(tiny_data_bin, tmp_path, 100000),
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_file(lock, timeout_s=120, alive=lambda: first.poll() is None)
        holder = json.loads(lock.read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        second = subprocess.run(
            TRAIN + pretrain_args(tiny_data_bin, tmp_path, 3),
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert second.returncode != 0 and "Traceback" not in second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert f"--save-dir {tmp_path} is in use by another vega-train run" in message
        assert f"host {holder['host']}, pid {first.pid}, started {holder['started']}" in message
    finally:
        first.send_signal(signal.SIGKILL)  # leaves its lock behind, as a crash would
        first.wait()
    assert lock.exists()
    log = vega_train(pretrain_args(tiny_data_bin, tmp_path, 3))
    assert f"stale lock of a run that is no longer alive (host {holder['host']}, pid {first.pid}" in log
    assert not lock.exists()  # released at the end of the run


@pytest.mark.slow
def test_a_requeued_slurm_job_takes_over_its_own_lock(tiny_data_bin, tmp_path):
    # the job's lock as a node that died would leave it: another host, a pid that cannot be checked from here
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"host": "node-that-died", "pid": 1, "started": "yesterday", "slurm_job_id": "4242"})
    )
    other_job = subprocess.run(
        TRAIN + pretrain_args(tiny_data_bin, tmp_path, 3),
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, "SLURM_JOB_ID": "999"},
        timeout=240,
    )
    assert other_job.returncode != 0 and "SLURM job 4242" in other_job.stderr
    log = vega_train(pretrain_args(tiny_data_bin, tmp_path, 3), env={"SLURM_JOB_ID": "4242"})
    assert "held by this SLURM job" in log and (tmp_path / "checkpoint_last.pt").exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_only_rank_0_of_a_multi_process_job_takes_the_lock(monkeypatch):
    from argparse import Namespace

    from vega_toolkit.runtime.training import is_first_rank

    for var in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert is_first_rank(Namespace(distributed_rank=0))
    assert not is_first_rank(Namespace(distributed_rank=1))  # --distributed-rank of a SLURM task (submitit)
    monkeypatch.setenv("SLURM_PROCID", "2")  # the third task of a SLURM job, whatever its flags
    assert not is_first_rank(Namespace(distributed_rank=0))
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("RANK", "1")  # torchrun's second process
    assert not is_first_rank(Namespace(distributed_rank=0))
