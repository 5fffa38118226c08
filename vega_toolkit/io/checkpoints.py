"""Reading fairseq checkpoints: under torch's weights-only unpickler with an allow-list, errors that name the file,
and the repair of a broken checkpoint_last.pt.

    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu, peek_checkpoint, read_num_updates
    state = load_checkpoint_to_cpu("runs/rte/checkpoint_best.pt")     # fairseq's reader, allow-listed
    read_num_updates("runs/rte/checkpoint_last.pt")                    # tensors memory-mapped, not read

fairseq-fixed 0.12.3.1 calls `torch.load` without `weights_only`, which torch >= 2.6 turns on by default, and its
checkpoints hold a few non-tensor objects: every read failed. Reads here run inside
`torch.serialization.safe_globals(checkpoint_globals())`, the exact classes fairseq's own checkpoints contain
(tests/test_checkpoints.py checks the list against real training runs), instead of turning the safety off.
fairseq_fixes/checkpoint_loading.py routes fairseq's own reads through `allow_listed`.
"""

import argparse
import collections
import logging
import os
import pickle
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vega_toolkit.errors import UserError
from vega_toolkit.io.atomic import atomic_copy

logger = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def _numpy_scalar_globals() -> list:
    # numpy pickles scalars (e.g. the best validation metric, a np.float64) through `_reconstruct`/`scalar` and
    # their dtype; the module moved from numpy.core to numpy._core in numpy 2.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtypes = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, *dtypes]


def _fairseq_globals() -> list:
    from fairseq.distributed.utils import _TensorPlaceholder  # rank-0 -> rank-k checkpoint broadcast

    return [_TensorPlaceholder]


def checkpoint_globals() -> list:
    """Non-tensor classes a fairseq checkpoint may contain (the weights-only unpickler's allow-list)."""
    return [
        argparse.Namespace,
        collections.OrderedDict,
        collections.defaultdict,
        *_numpy_scalar_globals(),
        *_fairseq_globals(),
    ]


def earlier_checkpoints(path: Path) -> list[str]:
    siblings = sorted(path.parent.glob("checkpoint*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p) for p in siblings if p != path]


def allow_listed(path: str, read: Callable[[], dict]) -> dict:
    """`read()` (a torch.load of `path`) under the allow-list, its failures a CheckpointError naming `path`."""
    _check_is_torch_file(path)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return read()
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # any other refusal of the weights-only unpickler is a garbled file
            raise CheckpointError(
                f"{path}: the checkpoint contains objects outside the allow-list of vega_toolkit/io/checkpoints.py "
                f"({e}). If you trust this file, load it with torch.load(..., weights_only=False) and re-save its "
                f"'model' and 'cfg' entries."
            ) from e
        raise _corrupt(path, e) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise _corrupt(path, e) from e


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False) -> dict:
    """fairseq's `checkpoint_utils.load_checkpoint_to_cpu` (state upgraded, `arg_overrides` applied), allow-listed."""
    import inspect

    from fairseq import checkpoint_utils

    fairseq_load = inspect.unwrap(checkpoint_utils.load_checkpoint_to_cpu)  # fairseq's own, patched or not
    path = str(path)
    return allow_listed(path, lambda: fairseq_load(path, arg_overrides, load_on_all_ranks))


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
        "Earlier checkpoints in the same folder (newest first): "
        + ", ".join(earlier[:5])
        + ". vega-train resumes from the newest readable one of them by itself (renaming the broken file aside); "
        "elsewhere, load one of them instead."
        if earlier
        else "No other checkpoint is in the same folder: move the broken file away to start the run over."
    )
    return CheckpointError(
        f"{path} is corrupt or truncated and cannot be loaded ({type(error).__name__}: {error}). {hint}"
    )


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
    last = Path(save_dir) / "checkpoint_last.pt"
    if not last.exists():
        return
    try:
        read_num_updates(last)
        return
    except CheckpointError as error:
        broken = error
    for candidate in earlier_checkpoints(last):
        try:
            num_updates = load_checkpoint_to_cpu(candidate)["optimizer_history"][-1]["num_updates"]
        except (CheckpointError, KeyError, IndexError, TypeError) as e:
            logger.warning(f"{candidate} is not readable either ({e}); trying an older checkpoint")
            continue
        aside = f"{last}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(last, aside)
        atomic_copy(candidate, str(last))
        logger.warning(
            "\n" + "!" * 100 + f"\n{last} is truncated or corrupt: it was renamed to {aside} (kept, "
            f"not deleted) and this run resumes from {candidate} (update {num_updates}), the newest "
            f"readable checkpoint of {save_dir}. The updates after it are trained again.\n" + "!" * 100
        )
        return
    raise broken
