"""Fix: loading fairseq checkpoints under torch>=2.6, and clear errors for broken ones.

torch 2.6 made `torch.load(..., weights_only=True)` the default. fairseq-fixed 0.12.3.1 calls `torch.load` without
the argument, and its checkpoints pickle a few non-tensor objects (`argparse.Namespace` for legacy configs, numpy
scalars in the best-metric bookkeeping, ...), so every resume, `from_pretrained` and evaluation fails with
`UnpicklingError: Weights only load failed`.

The fix here is deliberately narrow: instead of turning the safety off (`weights_only=False` or
`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`, which would let a checkpoint run arbitrary code), fairseq's two loading sites
run inside `torch.serialization.safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)`: the weights-only unpickler stays on and
only accepts, in addition to tensors and containers, the exact classes fairseq's own checkpoints contain
(tests/test_checkpoints.py asserts this list against checkpoints written by real training runs).

`install()` runs when `vega_toolkit` is imported (vega_toolkit/fairseq_fixes/__init__.py), before any checkpoint is
read. `peek_checkpoint` reads a checkpoint's small entries without reading its tensors, under the same allow-list.
"""
import argparse
import collections
import os
import pickle
import zipfile
from pathlib import Path
from typing import List

import numpy as np
import torch

from vega_toolkit.errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def _numpy_scalar_globals() -> List:
    # numpy pickles scalars (e.g. the best validation metric, a np.float64) through `_reconstruct`/`scalar` and
    # their dtype; the module moved from numpy.core to numpy._core in numpy 2.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtypes = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, *dtypes]


def _fairseq_globals() -> List:
    from fairseq.distributed.utils import _TensorPlaceholder  # rank-0 -> rank-k checkpoint broadcast

    return [_TensorPlaceholder]


def checkpoint_globals() -> List:
    """Non-tensor classes a fairseq checkpoint may contain (the weights-only unpickler's allow-list)."""
    return [argparse.Namespace, collections.OrderedDict, collections.defaultdict, *_numpy_scalar_globals(),
            *_fairseq_globals()]


def earlier_checkpoints(path: Path) -> List[str]:
    siblings = sorted(path.parent.glob("checkpoint*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p) for p in siblings if p != path]


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's `load_checkpoint_to_cpu` with the weights-only allow-list and readable errors."""
    path = str(path)
    _check_is_torch_file(path)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return _original_load_checkpoint_to_cpu(path, arg_overrides, load_on_all_ranks)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # any other refusal of the weights-only unpickler is a garbled file
            raise CheckpointError(
                f"{path}: the checkpoint contains objects outside the allow-list of "
                f"vega_toolkit/fairseq_fixes/checkpoint_loading.py ({e}). If you trust this file, load it with "
                f"torch.load(..., weights_only=False) and re-save its 'model' and 'cfg' entries."
            ) from e
        raise _corrupt(path, e) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise _corrupt(path, e) from e


def _check_is_torch_file(path: str):
    """CheckpointError unless PATH exists and is a torch.save file: a whole zip archive (torch >= 1.6) or a pickle
    (the legacy format, PROTO opcode first). Anything else is garbage or truncated, and torch's own errors for it
    mislead: advice about `weights_only`, or a bare KeyError from the unpickler."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        legacy = f.read(1) == pickle.PROTO
        if not (legacy or zipfile.is_zipfile(f)):
            raise _corrupt(path, ValueError("neither a whole zip archive nor a pickle, so not a torch.save file"))


def _corrupt(path: str, error: Exception) -> CheckpointError:
    earlier = earlier_checkpoints(Path(path))
    # --restore-file is not a general answer: GLUE runs pass --finetune-from-model, which fairseq refuses to combine
    # with it. vega-train itself falls back to the newest readable checkpoint (recover_checkpoint_last below).
    hint = (
        "Earlier checkpoints in the same folder (newest first): " + ", ".join(earlier[:5]) +
        ". vega-train resumes from the newest readable one of them by itself (renaming the broken file aside); "
        "elsewhere, load one of them instead."
        if earlier else "No other checkpoint is in the same folder: move the broken file away to start the run over."
    )
    return CheckpointError(f"{path} is corrupt or truncated and cannot be loaded ({type(error).__name__}: "
                           f"{error}). {hint}")


def peek_checkpoint(path) -> dict:
    """Checkpoint `path` with its tensors memory-mapped, not read (torch.load with mmap): the update count or the
    head shapes of a checkpoint of many GB in milliseconds. Raises CheckpointError like load_checkpoint_to_cpu."""
    path = str(path)
    _check_is_torch_file(path)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise _corrupt(path, e) from e
    except pickle.UnpicklingError:  # outside the allow-list, or garbled: the full loader tells which, naming the file
        pass
    except (EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise _corrupt(path, e) from e
    return load_checkpoint_to_cpu(path)  # torch's legacy (non-zip) format cannot be mapped: read it whole



def _safe_broadcast_object_slow(*args, **kwargs):
    # Multi-rank resume: rank 0 reads the checkpoint and pickles its state to the other ranks through torch.load.
    with torch.serialization.safe_globals(checkpoint_globals()):
        return _original_broadcast_object_slow(*args, **kwargs)


_original_load_checkpoint_to_cpu = None
_original_broadcast_object_slow = None


def install():
    """Route fairseq's checkpoint reads through the allow-listed loader (idempotent)."""
    global _original_load_checkpoint_to_cpu, _original_broadcast_object_slow
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    if _original_load_checkpoint_to_cpu is None:
        _original_load_checkpoint_to_cpu = checkpoint_utils.load_checkpoint_to_cpu
        checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    if _original_broadcast_object_slow is None:
        _original_broadcast_object_slow = distributed_utils._broadcast_object_slow
        distributed_utils._broadcast_object_slow = _safe_broadcast_object_slow

