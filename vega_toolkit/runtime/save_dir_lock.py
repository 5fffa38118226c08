"""One `vega-train` run per --save-dir: a lock file naming the run that holds the folder.

    with SaveDirLock("runs/rte"):        # runs/rte/vega-train.lock: {"host", "pid", "started", "slurm_job_id", ...}
        train(...)

Without it, two runs given the same --save-dir overwrite each other's checkpoints. Stale locks, requeued
SLURM jobs and live holders: docs/design.md#save-dir-lock.
"""

import json
import logging
import os
import socket
import time

from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)

LOCK_FILE = "vega-train.lock"


class SaveDirLockedError(UserError, RuntimeError):
    """Another live run holds the --save-dir; the message names it."""


def _process_start_ticks(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22); None where unknown.
    Together with the pid it identifies a process: a pid reused by a later process has another start time."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            after_name = f.read().rsplit(")", 1)[1].split()  # the name (field 2) may contain spaces and ')'
        return after_name[19]
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, start_ticks: str | None) -> bool:
    if pid <= 0:  # never signal 0 or -1 (process groups / every process)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return start_ticks is None or _process_start_ticks(pid) in (None, start_ticks)


def _this_run() -> dict[str, object]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _process_start_ticks(pid),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def _describe(holder: dict[str, object]) -> str:
    job = f", SLURM job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}{job}"


class SaveDirLock:
    """Hold `save_dir`/vega-train.lock for the life of a `with` block (see the module docstring)."""

    def __init__(self, save_dir: str):
        self.save_dir = save_dir
        self.path = os.path.join(save_dir, LOCK_FILE)
        self.me = _this_run()
        self.owned = False

    def __enter__(self) -> "SaveDirLock":
        os.makedirs(self.save_dir, exist_ok=True)
        for _ in range(10):  # retried only when a stale lock was removed or the holder vanished meanwhile
            if self._create():
                return self
            holder = self._read()
            if holder is None:
                continue
            if self._is_own_job(holder):
                logger.warning(
                    f"{self.path}: held by this SLURM job ({_describe(holder)}); a requeued job resumes "
                    f"its own run, taking the lock over"
                )
                self._write()
                return self
            if holder.get("host") == self.me["host"] and not _process_alive(
                int(holder.get("pid", -1)), holder.get("pid_start")
            ):
                logger.warning(
                    f"{self.path}: stale lock of a run that is no longer alive ({_describe(holder)}); taking it over"
                )
                self._remove()
                continue
            raise SaveDirLockedError(
                f"--save-dir {self.save_dir} is in use by another vega-train run ({_describe(holder)}; lock file "
                f"{self.path}). Two runs in one save dir overwrite each other's checkpoints: give this run another "
                f"--save-dir, or wait for that run to end. If that run is dead (e.g. its node crashed), delete "
                f"{self.path} and start again."
            )
        raise SaveDirLockedError(f"{self.path}: could not take the lock (it keeps changing hands)")

    def __exit__(self, *exc):
        holder = self._read()
        if self.owned and holder is not None and self._is_me(holder):
            self._remove()
        return False

    def _is_me(self, holder) -> bool:
        return holder.get("host") == self.me["host"] and holder.get("pid") == self.me["pid"]

    def _is_own_job(self, holder) -> bool:
        return self._is_me(holder) or (
            self.me["slurm_job_id"] is not None and holder.get("slurm_job_id") == self.me["slurm_job_id"]
        )

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.me, f)
        self.owned = True
        return True

    def _write(self):
        from vega_toolkit.io.atomic import atomic_write

        atomic_write(self.path, lambda f: f.write(json.dumps(self.me).encode("utf-8")))
        self.owned = True

    def _read(self) -> dict[str, object] | None:
        """The holder recorded in the lock file; None when it vanished. A lock that cannot be parsed (e.g. cut by a
        full disk) names nobody alive and is treated as stale."""
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            if isinstance(holder, dict) and "pid" in holder:
                return holder
        except ValueError:
            pass
        time.sleep(0.2)  # a lock being written this instant: look again before calling it stale
        try:
            with open(self.path, encoding="utf-8") as f:
                if f.read() != text:
                    return None
        except FileNotFoundError:
            return None
        return {"host": self.me["host"], "pid": -1, "started": "unknown (unreadable lock file)"}

    def _remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
