"""Atomic file writes: a reader (a resumed run, another rank, a second study runner) sees the old file or the new
one, never a partial one.

    from vega_toolkit.io.atomic import atomic_write
    atomic_write("out/state.json", lambda f: f.write(b"{}"))

The bytes go to a unique temporary file in the destination's folder, are fsync'ed, and `os.replace` puts the file
on its name; the file gets the mode open() would give it (0666 minus the umask). fairseq's checkpoint writes and
copies go through here too (fairseq_fixes/atomic_writes.py).
"""

import os
import shutil
import tempfile


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


def atomic_torch_save(obj, path: str):
    """`torch.save(obj, path)`, atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    """Copy `src_path` onto `dst_path` atomically (True on success; False where `dst_path` exists and `overwrite`
    is not set). fairseq's PathManager signature: remote paths go to fairseq's own copy."""
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
