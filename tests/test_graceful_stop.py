"""vega_toolkit/runtime/graceful_stop.py: where a stop signal is taken over, and where it is left alone. The end-to-end
behaviour (SIGTERM saves the update reached, exits 143, the command resumes to the uninterrupted weights) is in
test_crash_resume.py; the study runner's wait for it in test_study.py."""

import signal
from argparse import Namespace

import pytest

from vega_toolkit.runtime.graceful_stop import applies_to, stop_with_checkpoint


def run_args(**overrides):
    return Namespace(**{"distributed_world_size": 1, "no_save": False, "no_last_checkpoints": False, **overrides})


@pytest.mark.parametrize("overrides", [{"distributed_world_size": 2}, {"no_save": True}, {"no_last_checkpoints": True}])
def test_runs_that_could_not_resume_or_would_deadlock_keep_fairseqs_behaviour(overrides):
    assert applies_to(run_args())
    assert not applies_to(run_args(**overrides))
    before = signal.getsignal(signal.SIGTERM)
    with stop_with_checkpoint(run_args(**overrides)) as request:
        assert request is None
        assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_that_already_has_a_handler_stays_with_it_and_everything_is_restored_afterwards():
    from fairseq_cli import train as fairseq_train

    def submitit_like(signum, frame):  # e.g. submitit's requeue handler on SLURM's warning signal
        pass

    original_validate_and_save = fairseq_train.validate_and_save
    previous = signal.signal(signal.SIGUSR1, submitit_like)
    try:
        with stop_with_checkpoint(run_args()) as request:
            assert request is not None
            assert signal.getsignal(signal.SIGUSR1) is submitit_like
            assert signal.getsignal(signal.SIGTERM) == request.handle
            assert fairseq_train.validate_and_save is not original_validate_and_save
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert fairseq_train.validate_and_save is original_validate_and_save
        signal.signal(signal.SIGTERM, submitit_like)  # every stop signal taken: nothing to do
        with stop_with_checkpoint(run_args()) as request:
            assert request is None
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_the_first_signal_asks_for_a_stop_and_the_second_kills():
    with stop_with_checkpoint(run_args()) as request:
        request.handle(signal.SIGTERM, None)
        assert request.signum == signal.SIGTERM and not request.stopped  # stopped at the next update, not here
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the default action: a second one kills
