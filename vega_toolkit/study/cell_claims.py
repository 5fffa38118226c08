"""Claims on a study folder's cells, so that several `vega-study run` processes can share one folder.

Two runners on one folder (`--tasks SST-2` in one shell, `--arms masked_lm` in another, or the same command started
twice) would otherwise both run a cell they share: the second wipes the first's fine-tuning folder or resumes the
same pretraining checkpoint under it, and the results file gets the key twice. A runner therefore claims a cell
before it starts it: an exclusive `flock` on OUT/locks/<key>.lock, held until the cell's result line is written.
The kernel drops the lock when its process dies, even by SIGKILL, so a claim never outlives its runner and a
killed runner's cell is simply claimed again by the next one.
"""

import fcntl
import os
from pathlib import Path

LOCKS_DIR = "locks"


class CellClaims:
    def __init__(self, out: Path):
        self.dir = Path(out) / LOCKS_DIR
        self._held: dict[str, int] = {}  # key -> file descriptor holding its lock

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.lock"

    def try_claim(self, key: str) -> bool:
        """True if this process now holds KEY (or already did); False while another process holds it."""
        if key in self._held:
            return True
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._held[key] = fd
        return True

    def holder(self, key: str) -> str:
        """The pid written by the process holding KEY, for messages ('?' if unreadable)."""
        try:
            return self._path(key).read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self, key: str):
        fd = self._held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock; the file stays, harmlessly
