"""Carry an unfinished pretraining from one machine to the next through the repository.

    vega-study carry results/study-cpu    # after the runners have stopped (SIGTERM saves the update reached)
    git add results/study-cpu/carried     # committed with the study's results

A study's pretraining resumes from its own checkpoint_last.pt, in OUT/pretrain/, which stays on the machine. When
the next session gets another machine, that checkpoint is gone, and a pretraining longer than a session (a generator
arm takes about 3 h of one shared core at the cpu scale) would start over every time and never finish. `carry`
copies the checkpoint_last.pt of every unfinished pretraining (its phase 2's too) to OUT/carried/<its folder>/, and
drops the carried copies of pretrainings that have finished since. Before the runner resumes a pretraining, it puts
a carried checkpoint back into the pretraining's folder when it is ahead of what the folder holds (runner.py), and
once the pretraining has finished, it removes the carried copy.
"""

import shutil
from pathlib import Path

from vega_toolkit.io.atomic import atomic_copy
from vega_toolkit.io.checkpoints import read_num_updates

CARRIED = "carried"
PRETRAIN = "pretrain"
CHECKPOINT = "checkpoint_last.pt"


def _key_of(folder: Path) -> str:
    """A pretraining folder is named `<arm>-<key>` (cells.py)."""
    return folder.name.rsplit("-", 1)[-1]


def carry(out: Path, finished_keys: set[str]) -> list[tuple[Path, int]]:
    """Copy each unfinished pretraining's checkpoints under OUT/carried; drop carried copies of finished ones.
    Returns (carried file, its update) for each one copied."""
    out = Path(out)
    copied = []
    for folder in sorted(p for p in (out / PRETRAIN).glob("*") if p.is_dir()):
        if _key_of(folder) in finished_keys:
            continue
        for checkpoint in sorted(folder.glob(f"**/{CHECKPOINT}")):
            target = out / CARRIED / checkpoint.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_copy(str(checkpoint), str(target), overwrite=True)
            copied.append((target, read_num_updates(target)))
    for folder in sorted((out / CARRIED / PRETRAIN).glob("*")):
        if _key_of(folder) in finished_keys:
            shutil.rmtree(folder)
    return copied


def restore(out: Path, workdir: Path) -> list[tuple[Path, int, int | None]]:
    """Put the carried checkpoints of the pretraining in `workdir` back where it resumes from, each only when it is
    ahead of the one there. Returns (restored file, carried update, update it replaced or None) for each."""
    source = Path(out) / CARRIED / Path(workdir).relative_to(out)
    restored = []
    for carried in sorted(source.glob(f"**/{CHECKPOINT}")):
        target = Path(workdir) / carried.relative_to(source)
        ahead = read_num_updates(carried)
        there = read_num_updates(target) if target.exists() else None
        if there is not None and there >= ahead:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(str(carried), str(target), overwrite=True)
        restored.append((target, ahead, there))
    return restored


def drop(out: Path, workdir: Path):
    """A finished pretraining's carried checkpoints are not needed any more."""
    shutil.rmtree(Path(out) / CARRIED / Path(workdir).relative_to(out), ignore_errors=True)
