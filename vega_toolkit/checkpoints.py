"""vega-train's own rules for a save dir's checkpoints: how far a checkpoint got, and what to resume from when
checkpoint_last.pt is broken.

    from vega_toolkit.checkpoints import read_num_updates, recover_checkpoint_last

`recover_checkpoint_last` is vega-train's answer to a truncated checkpoint_last.pt (from a copy made before the
atomic writes of vega_toolkit/fairseq_fixes/atomic_writes.py, or by other tools): resume from the newest readable
checkpoint. Reading goes through the allow-listed loader of vega_toolkit/fairseq_fixes/checkpoint_loading.py.
"""
import logging
import os
from pathlib import Path

from vega_toolkit.fairseq_fixes.atomic_writes import atomic_copy
from vega_toolkit.fairseq_fixes.checkpoint_loading import (
    CheckpointError,
    earlier_checkpoints,
    load_checkpoint_to_cpu,
    peek_checkpoint,
)

logger = logging.getLogger(__name__)


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
    for candidate in earlier_checkpoints(last):
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

