"""Loading fairseq checkpoints under torch>=2.6, and clear errors for broken ones.

torch 2.6 made `torch.load(..., weights_only=True)` the default. fairseq-fixed 0.12.3.1 calls `torch.load` without
the argument, and its checkpoints pickle a few non-tensor objects (`argparse.Namespace` for legacy configs, numpy
scalars in the best-metric bookkeeping, ...), so every resume, `from_pretrained` and evaluation fails with
`UnpicklingError: Weights only load failed`.

The fix here is deliberately narrow: instead of turning the safety off (`weights_only=False` or
`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`, which would let a checkpoint run arbitrary code), fairseq's two loading sites
run inside `torch.serialization.safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)`: the weights-only unpickler stays on and
only accepts, in addition to tensors and containers, the exact classes fairseq's own checkpoints contain
(tests/test_checkpoints.py asserts this list against checkpoints written by real training runs).

`install()` runs when `vega_toolkit` is imported, before any checkpoint is read; so does `install_atomic_writes()`,
which makes every checkpoint fairseq writes or copies (checkpoint_last.pt included) appear atomically, with the
umask's file mode (see below). `recover_checkpoint_last` is vega-train's answer to a truncated checkpoint_last.pt
(from a copy made before these atomic writes, or by other tools): resume from the newest readable checkpoint.
"""
import argparse
import collections
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import List

import numpy as np
import torch

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
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


def _earlier_checkpoints(path: Path) -> List[str]:
    siblings = sorted(path.parent.glob("checkpoint*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p) for p in siblings if p != path]


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's `load_checkpoint_to_cpu` with the weights-only allow-list and readable errors."""
    path = str(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return _original_load_checkpoint_to_cpu(path, arg_overrides, load_on_all_ranks)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise CheckpointError(
                f"{path}: the checkpoint contains objects outside the allow-list of "
                f"vega_toolkit/checkpoints.py ({e}). If you trust this file, load it with "
                f"torch.load(..., weights_only=False) and re-save its 'model' and 'cfg' entries."
            ) from e
        raise _corrupt(path, e) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise _corrupt(path, e) from e


def _corrupt(path: str, error: Exception) -> CheckpointError:
    earlier = _earlier_checkpoints(Path(path))
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
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
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


def read_num_updates(path) -> int:
    """The update count stored in checkpoint `path` (cheap: see peek_checkpoint)."""
    history = peek_checkpoint(path).get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", 0))


def recover_checkpoint_last(save_dir) -> None:
    """Replace an unreadable (e.g. truncated) `save_dir/checkpoint_last.pt` by the newest readable checkpoint of the
    same folder, so that the run resumes from there instead of failing or restarting from update 0 (which would
    overwrite checkpoint_best.pt and the interval checkpoints). The broken file is renamed aside, never deleted.
    Does nothing when checkpoint_last.pt is absent or readable; raises CheckpointError when no fallback is readable.
    """
    import time

    last = Path(save_dir) / "checkpoint_last.pt"
    if not last.exists():
        return
    try:
        read_num_updates(last)
        return
    except CheckpointError as error:
        broken = error
    for candidate in _earlier_checkpoints(last):
        try:
            num_updates = load_checkpoint_to_cpu(candidate)["optimizer_history"][-1]["num_updates"]
        except (CheckpointError, KeyError, IndexError, TypeError) as e:
            logger.warning(f"{candidate} is not readable either ({e}); trying an older checkpoint")
            continue
        aside = f"{last}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(last, aside)
        atomic_copy(candidate, str(last))
        logger.warning("\n" + "!" * 100 + f"\n{last} is truncated or corrupt: it was renamed to {aside} (kept, "
                       f"not deleted) and this run resumes from {candidate} (update {num_updates}), the newest "
                       f"readable checkpoint of {save_dir}. The updates after it are trained again.\n" + "!" * 100)
        return
    raise broken


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


# --- Atomic checkpoint writes ------------------------------------------------------------------------------------
# fairseq writes the first checkpoint of a save through `torch_persistent_save` (a fixed `<name>.tmp` + rename, no
# fsync) and then *copies* it onto the others, checkpoint_last.pt included, with `shutil.copyfile` straight onto the
# destination: a job killed (SIGKILL, preemption, node failure) during that copy leaves a truncated
# checkpoint_last.pt, which is exactly the file a restarted job resumes from. Here every checkpoint file, written or
# copied, goes to a unique temporary file in the same folder, is fsync'ed and then `os.replace`d onto its name, so a
# reader sees the old file or the new one, never a partial one.


def _fsync_dir(folder: str):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; restored at once
    os.umask(mask)
    return mask


def atomic_write(dst: str, write):
    """Call `write(file_object)` on a temporary file next to `dst`, fsync it, then atomically rename it to `dst`."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(dst) + ".", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; a checkpoint or cache in a shared cluster folder must stay readable by the
        # others, so give it the mode open() would (0666 minus the umask)
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def atomic_torch_save(obj, filename, async_write: bool = False):
    """`fairseq.checkpoint_utils.torch_persistent_save` with an fsync'ed, uniquely named temporary file."""
    from fairseq.file_io import PathManager

    if async_write or PathManager.path_requires_pathmanager(filename):  # remote stores: fairseq's own path
        return _original_torch_persistent_save(obj, filename, async_write=async_write)
    atomic_write(filename, lambda f: torch.save(obj, f))


def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    """`PathManager.copy` for checkpoint_utils: copy `src_path` onto `dst_path` atomically (True on success)."""
    import shutil
    from fairseq.file_io import PathManager

    if PathManager.path_requires_pathmanager(src_path) or PathManager.path_requires_pathmanager(dst_path):
        return PathManager.copy(src_path, dst_path, overwrite=overwrite)
    if os.path.exists(dst_path) and not overwrite:
        return False

    def copy(f):
        with open(src_path, "rb") as src:
            shutil.copyfileobj(src, f, 16 * 1024 * 1024)

    atomic_write(dst_path, copy)
    return True


_original_torch_persistent_save = None


def install_atomic_writes():
    """Route fairseq's checkpoint writes and copies through the atomic versions above (idempotent)."""
    global _original_torch_persistent_save
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    if _original_torch_persistent_save is None:
        _original_torch_persistent_save = checkpoint_utils.torch_persistent_save
        checkpoint_utils.torch_persistent_save = atomic_torch_save
        # Only checkpoint_utils' view of PathManager changes (it uses .copy for checkpoint_last.pt & co.); the rest
        # of fairseq keeps the stock class.
        checkpoint_utils.PathManager = type("AtomicCopyPathManager", (PathManager,),
                                            {"copy": staticmethod(atomic_copy)})


install()
install_atomic_writes()
