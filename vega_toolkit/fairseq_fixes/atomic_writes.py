"""Fix: every checkpoint fairseq writes or copies (checkpoint_last.pt included) appears atomically, with the
umask's file mode; `atomic_write` and `atomic_copy` are also the toolkit's own writers of every file a reader may
open while it is written (caches, adaptation state, pseudo-labels, the lock file).

fairseq writes the first checkpoint of a save through `torch_persistent_save` (a fixed `<name>.tmp` + rename, no
fsync) and then *copies* it onto the others, checkpoint_last.pt included, with `shutil.copyfile` straight onto the
destination: a job killed (SIGKILL, preemption, node failure) during that copy leaves a truncated
checkpoint_last.pt, which is exactly the file a restarted job resumes from. Here every checkpoint file, written or
copied, goes to a unique temporary file in the same folder, is fsync'ed and then `os.replace`d onto its name, so a
reader sees the old file or the new one, never a partial one. `install()` runs when `vega_toolkit` is imported.
"""
import os

import torch



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


def install():
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

