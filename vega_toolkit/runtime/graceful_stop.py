"""Stop a training at its next update with checkpoint_last.pt saved, on SIGTERM or SIGUSR1 (SLURM preemption or
time limit, `kill`, a stopped study), instead of losing every update since the last interval checkpoint.

    vega-train DATA ... &  kill -TERM $!      # "stopped by SIGTERM at update N"; exit 143; the same command resumes

The command exits with 128 + the signal, so whoever waits on it does not take it for a finished run; a second signal
kills at once. Only a single-process run that writes checkpoint_last.pt, and only a signal without a handler yet
(under --launcher submitit, submitit's handlers requeue the job): several ranks would stop at different updates and
hang in the next all-reduce.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """The signal that asked this run to stop, and the update at which training stopped for it."""

    def __init__(self):
        self.signum: int | None = None
        self.stopped_at_update: int | None = None

    def handle(self, signum, _frame):
        self.signum = signum
        signal.signal(signum, signal.SIG_DFL)  # a second signal kills at once
        logger.warning(
            f"{signal.Signals(signum).name}: stopping after this update with checkpoint_last.pt saved "
            f"(send it again to kill at once)"
        )

    @property
    def stopped(self) -> bool:
        return self.stopped_at_update is not None

    def exit_message(self, save_dir: str) -> str:
        return (
            f"vega-train: stopped by {signal.Signals(self.signum).name} at update {self.stopped_at_update}; "
            f"{save_dir}/checkpoint_last.pt is saved there, and the same command resumes from it"
        )


def applies_to(args) -> bool:
    """Whether a stop signal can end this run with a checkpoint to resume from (see the module docstring)."""
    return (
        threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
        and (getattr(args, "distributed_world_size", 1) or 1) == 1
        and not args.no_save
        and not args.no_last_checkpoints
    )


@contextlib.contextmanager
def stop_with_checkpoint(args) -> Iterator[StopRequest | None]:
    """While training `args`: SIGTERM/SIGUSR1 stop it at the next update, checkpoint saved. Yields the StopRequest
    (None where `applies_to(args)` is false or every stop signal already has a handler)."""
    # a signal somebody else already handles stays theirs: under --launcher submitit, SLURM's warning signal
    # makes submitit requeue the job (vega_toolkit/launch/submitit_launcher.py)
    ours = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) == signal.SIG_DFL]
    if not (ours and applies_to(args)):
        yield None
        return
    from fairseq_cli import train as fairseq_train
    from omegaconf import open_dict

    request = StopRequest()
    original = fairseq_train.validate_and_save

    def validate_and_save(cfg, trainer, *rest, **kwargs):
        if request.signum is not None and not request.stopped:
            with open_dict(cfg):
                cfg.optimization.stop_time_hours = 1e-9  # already spent: validate, save and stop, as fairseq does
            request.stopped_at_update = trainer.get_num_updates()
        return original(cfg, trainer, *rest, **kwargs)

    previous = {signum: signal.signal(signum, request.handle) for signum in ours}
    fairseq_train.validate_and_save = validate_and_save
    try:
        yield request
    finally:
        fairseq_train.validate_and_save = original
        for signum, handler in previous.items():
            signal.signal(signum, handler)
