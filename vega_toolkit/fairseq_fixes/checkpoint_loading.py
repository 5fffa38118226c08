"""Fix: fairseq's checkpoint reads under torch >= 2.6 (weights-only by default), through the allow-listed reader of
vega_toolkit/io/checkpoints.py, with errors that name the broken file. `install()` runs when `vega_toolkit` is
imported, before any checkpoint is read."""

import functools

import torch

from vega_toolkit.io.checkpoints import allow_listed, checkpoint_globals

_original_load_checkpoint_to_cpu = None
_original_broadcast_object_slow = None


def _safe_broadcast_object_slow(*args, **kwargs):
    # Multi-rank resume: rank 0 reads the checkpoint and pickles its state to the other ranks through torch.load.
    with torch.serialization.safe_globals(checkpoint_globals()):
        return _original_broadcast_object_slow(*args, **kwargs)


def install():
    """Route fairseq's checkpoint reads through the allow-listed reader (idempotent)."""
    global _original_load_checkpoint_to_cpu, _original_broadcast_object_slow
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    if _original_load_checkpoint_to_cpu is None:
        original = _original_load_checkpoint_to_cpu = checkpoint_utils.load_checkpoint_to_cpu

        @functools.wraps(original)  # __wrapped__: io.checkpoints.load_checkpoint_to_cpu calls fairseq's own
        def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
            path = str(path)
            return allow_listed(path, lambda: original(path, arg_overrides, load_on_all_ranks))

        checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    if _original_broadcast_object_slow is None:
        _original_broadcast_object_slow = distributed_utils._broadcast_object_slow
        distributed_utils._broadcast_object_slow = _safe_broadcast_object_slow
