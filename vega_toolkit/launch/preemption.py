"""Preemption signals held back while a checkpoint is written.

submitit's handler for the preemption signal (`--slurm-signal`, USR1 or USR2) requeues the job and calls
`sys.exit`, which raises SystemExit wherever the main thread happens to be. One fairseq save writes
`checkpoint_<epoch>_<updates>.pt` and then copies it to `checkpoint_last.pt` (both atomically:
fairseq_fixes/atomic_writes.py). A signal between the two ends the job with checkpoint_last.pt still at the save
before, so the requeued job, which resumes from it, trains a whole save interval again. Inside `signals_deferred`
such a signal is only recorded; it is raised again, for the handler that was installed before, once the block
has finished.
"""
import contextlib
import signal
import threading
from typing import Iterable, Iterator, List

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
    caught: List[int] = []
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
