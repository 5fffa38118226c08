"""Fix: every checkpoint fairseq writes or copies (checkpoint_last.pt included) appears atomically, with the
umask's file mode, through vega_toolkit/io/atomic.py.

fairseq writes the first checkpoint of a save through `torch_persistent_save` (a fixed `<name>.tmp` + rename, no
fsync) and then copies it onto the others, checkpoint_last.pt included, with `shutil.copyfile` straight onto the
destination: a job killed during that copy left a truncated checkpoint_last.pt, the file a restarted job resumes
from. `install()` runs when `vega_toolkit` is imported.
"""

from vega_toolkit.io.atomic import atomic_copy, atomic_torch_save


def _persistent_save(obj, filename, async_write: bool = False):
    """`fairseq.checkpoint_utils.torch_persistent_save`, atomic for local files."""
    from fairseq.file_io import PathManager

    if async_write or PathManager.path_requires_pathmanager(filename):  # remote stores: fairseq's own path
        return _original_torch_persistent_save(obj, filename, async_write=async_write)
    atomic_torch_save(obj, filename)


_original_torch_persistent_save = None


def install():
    """Route fairseq's checkpoint writes and copies through the atomic versions (idempotent)."""
    global _original_torch_persistent_save
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    if _original_torch_persistent_save is None:
        _original_torch_persistent_save = checkpoint_utils.torch_persistent_save
        checkpoint_utils.torch_persistent_save = _persistent_save
        # Only checkpoint_utils' view of PathManager changes (it uses .copy for checkpoint_last.pt & co.); the rest
        # of fairseq keeps the stock class.
        checkpoint_utils.PathManager = type(
            "AtomicCopyPathManager", (PathManager,), {"copy": staticmethod(atomic_copy)}
        )
