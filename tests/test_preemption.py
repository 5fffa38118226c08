"""A preemption signal that arrives while fairseq writes a checkpoint is handled once the save is complete
(vega_toolkit/runtime/preemption.py), so a requeued SLURM job resumes from the checkpoint that was being written."""

import os
import signal
import subprocess
import sys
import time

import pytest
from launch_helpers import ENV, load_last, pretrain_args

from vega_toolkit.runtime.preemption import signals_deferred


@pytest.fixture
def usr1_handler():
    """A recording SIGUSR1 handler, installed for the test: the list of signals it has handled."""
    handled = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    yield handled
    signal.signal(signal.SIGUSR1, previous)


def test_a_signal_inside_the_block_is_handled_once_after_it(usr1_handler):
    handler = signal.getsignal(signal.SIGUSR1)
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)  # the interpreter has run pending handlers by now
        assert usr1_handler == []
    assert usr1_handler == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is handler  # the handler from before is back


def test_a_block_without_signals_leaves_the_handlers_untouched(usr1_handler):
    handler = signal.getsignal(signal.SIGUSR1)
    with signals_deferred():
        pass
    assert usr1_handler == [] and signal.getsignal(signal.SIGUSR1) is handler


# A training in its own process, as in a SLURM task: SIGUSR1 gets submitit's behaviour (requeue, then sys.exit), and
# the signal is sent at the worst moment for fairseq, when it starts copying checkpoint_1_10.pt to checkpoint_last.pt.
PREEMPTED_TRAINING = """
import contextlib, os, signal, sys
from fairseq import checkpoint_utils
from vega_toolkit.launch.local import run_local
from vega_toolkit.launch.submitit_launcher import guarded_checkpoint_saves

def requeue_and_exit(signum, frame):  # submitit's handler, once `scontrol requeue` has run
    print("preempted", flush=True)
    sys.exit(3)

signal.signal(signal.SIGUSR1, requeue_and_exit)
copy = checkpoint_utils.PathManager.copy  # the toolkit's atomic copy (vega_toolkit/io/atomic.py)

def copy_while_preempted(src, dst, overwrite=False):
    if src.endswith("checkpoint_1_10.pt") and dst.endswith("checkpoint_last.pt"):
        os.kill(os.getpid(), signal.SIGUSR1)
    return copy(src, dst, overwrite)

checkpoint_utils.PathManager.copy = staticmethod(copy_while_preempted)
with guarded_checkpoint_saves() if sys.argv[1] == "guarded" else contextlib.nullcontext():
    run_local(sys.argv[2:])
"""


def preempted_training(tiny_data_bin, save_dir, mode: str):
    proc = subprocess.run(
        [sys.executable, "-c", PREEMPTED_TRAINING, mode] + pretrain_args(tiny_data_bin, save_dir, 40),
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **ENV},
    )
    assert proc.returncode == 3 and "preempted" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_a_job_preempted_during_a_checkpoint_save_resumes_from_that_checkpoint(tiny_data_bin, tmp_path):
    preempted_training(tiny_data_bin, tmp_path / "guarded", "guarded")
    assert load_last(tmp_path / "guarded")[1] == 10  # the save finished, then the job exited
    assert not (tmp_path / "guarded" / "checkpoint_1_15.pt").exists()
    # The same preemption without the guard: the job exits before the copy, checkpoint_last.pt is the one of update
    # 5, and the requeued job would train updates 6-10 again.
    preempted_training(tiny_data_bin, tmp_path / "unguarded", "unguarded")
    assert load_last(tmp_path / "unguarded")[1] == 5
