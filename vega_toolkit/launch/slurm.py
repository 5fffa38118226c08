"""Reading a job's state from SLURM itself (`scontrol show job`), for `--wait` and for the launcher tests.

    from vega_toolkit.launch.slurm import show_job, wait_for_state
    show_job("1234")["JobState"], show_job("1234")["Dependency"]

submitit reads job states through `sacct`, which needs SLURM's accounting database; `scontrol show job` answers from
the controller on every cluster (finished jobs stay visible for the cluster's MinJobAge, 300 s by default).
"""
import re
import subprocess
import time
from typing import Callable, Dict, Optional

# Job states after which a job never runs again (a requeued job goes back to PENDING instead).
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                             "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT"})


_KEY = re.compile(r"^[A-Za-z][\w/:]*=")  # JobState=..., CPUs/Task=..., ReqB:S:C:T=...


def show_job(job_id: str) -> Optional[Dict[str, str]]:
    """`scontrol show job -o JOB_ID` as a dict (JobState, Restarts, Dependency, ...); None once SLURM forgot it."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return None
        raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}")
    fields: Dict[str, str] = {}
    # One line of space-separated Key=Value pairs; a value may itself contain spaces only for the last keys
    # (Command=..., WorkDir=...), which are joined back onto the previous key.
    key = None
    for token in proc.stdout.strip().split(" "):
        if _KEY.match(token):
            key, value = token.split("=", 1)
            fields[key] = value
        elif key is not None:
            fields[key] += " " + token
    return fields


def job_state(job_id: str) -> Optional[str]:
    """The job's JobState (PENDING, RUNNING, COMPLETED, ...), or None once SLURM forgot the job."""
    info = show_job(job_id)
    return None if info is None else info["JobState"]


def wait_for_state(job_id: str, accept: Callable[[Dict[str, str]], bool], timeout_s: float,
                   poll_s: float = 0.5, what: str = "condition") -> Dict[str, str]:
    """Poll `scontrol show job` until `accept(fields)`; raise TimeoutError naming the last state otherwise."""
    deadline = time.monotonic() + timeout_s
    info = None
    while time.monotonic() < deadline:
        info = show_job(job_id)
        if info is not None and accept(info):
            return info
        time.sleep(poll_s)
    state = None if info is None else {k: info.get(k) for k in ("JobState", "Reason", "Restarts")}
    raise TimeoutError(f"job {job_id}: no {what} after {timeout_s:.0f}s (last seen: {state})")


def wait_until_finished(job_id: str, poll_s: float = 2.0, timeout_s: Optional[float] = None) -> Optional[str]:
    """Block until the job reaches a terminal state (a requeued job is PENDING again and keeps being waited for).
    Returns that JobState, or None when SLURM already forgot the job."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        state = job_state(job_id)
        if state is None or state in TERMINAL_STATES:
            return state
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still {job_state(job_id)} after {timeout_s}s")
