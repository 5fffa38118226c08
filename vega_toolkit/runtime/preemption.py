"""Preemption signals held back while a checkpoint is written.

    with signals_deferred():          # submitit_launcher.py: around fairseq's save
        save_checkpoint(...)

submitit's handler for the preemption signal (--slurm-signal, USR1 or USR2) requeues the job and raises SystemExit
wherever the main thread is. Between fairseq's write of checkpoint_<epoch>_<updates>.pt and its copy to
checkpoint_last.pt, that leaves checkpoint_last.pt one save behind, and the requeued job trains a whole save interval
again. Inside `signals_deferred` such a signal is recorded and raised again once the block has finished.
"""

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator

PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def signals_deferred(signums: Iterable[int] = PREEMPTION_SIGNALS) -> Iterator[None]:
    """Run the block with `signums` recorded instead of handled; re-raise each recorded one (once) afterwards.

    Python runs signal handlers in the main thread only, whichever thread the OS delivered the signal to, so
    swapping the Python-level handlers is enough (a signal mask would only cover the calling thread). Outside the
    main thread, where handlers cannot be installed, the block runs unguarded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    # getsignal is None for a handler installed from C, which Python could not reinstall: leave such a signal be.
    previous = {signum: handler for signum in signums if (handler := signal.getsignal(signum)) is not None}

    def record(signum, frame):
        if signum not in caught:
            caught.append(signum)

    for signum in previous:
        signal.signal(signum, record)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            signal.raise_signal(signum)
