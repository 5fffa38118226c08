"""Reading a job's state from SLURM itself (`scontrol show job`), for `--wait` and for the launcher tests; submitting
a plain command (`sbatch --wrap`) and requeueing a job, for the paper plan's rehearsal (study/rehearsal.py).

    from vega_toolkit.launch.slurm import show_job, wait_for_state, sbatch, requeue
    show_job("1234")["JobState"], show_job("1234")["Dependency"]
    sbatch(["vega-generate", ...], name="vega-generate", log_dir="out/slurm", after=["1234", "1235"])
    requeue("1234")        # killed, queued again, and started 3 s later
    release(["1234", "1235"]); cancel(["1236"])

submitit reads job states through `sacct`, which needs SLURM's accounting database; `scontrol show job` answers from
the controller on every cluster (finished jobs stay visible for the cluster's MinJobAge, 300 s by default).
"""

import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence

# Job states after which a job never runs again (a requeued job goes back to PENDING instead).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
    }
)


_KEY = re.compile(r"^[A-Za-z][\w/:]*=")  # JobState=..., CPUs/Task=..., ReqB:S:C:T=...


def show_job(job_id: str) -> dict[str, str] | None:
    """`scontrol show job -o JOB_ID` as a dict (JobState, Restarts, Dependency, ...); None once SLURM forgot it. For a
    job array (one line per task), the first task's fields with the array's JobState (`array_state`)."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return None
        raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}")
    records = [_fields(line) for line in proc.stdout.strip().splitlines() if line.strip()]
    if len(records) > 1:
        records[0]["JobState"] = array_state([r["JobState"] for r in records])
    return records[0]


def _fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    # One line of space-separated Key=Value pairs; a value may itself contain spaces only for the last keys
    # (Command=..., WorkDir=...), which are joined back onto the previous key.
    key = None
    for token in line.strip().split(" "):
        if _KEY.match(token):
            key, value = token.split("=", 1)
            fields[key] = value
        elif key is not None:
            fields[key] += " " + token
    return fields


def array_state(states) -> str:
    """One state for the tasks of a job array: running or pending while any task is; else the first task's that did
    not complete (a failed task fails the array, as `afterok` sees it); else COMPLETED."""
    live = [s for s in states if s not in TERMINAL_STATES]
    if live:
        return "RUNNING" if "RUNNING" in live else live[0]
    return next((s for s in states if s != "COMPLETED"), "COMPLETED")


def job_state(job_id: str) -> str | None:
    """The job's JobState (PENDING, RUNNING, COMPLETED, ...), or None once SLURM forgot the job."""
    info = show_job(job_id)
    return None if info is None else info["JobState"]


def wait_for_state(
    job_id: str,
    accept: Callable[[dict[str, str]], bool],
    timeout_s: float,
    poll_s: float = 0.5,
    what: str = "condition",
) -> dict[str, str]:
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


def wait_until_finished(job_id: str, poll_s: float = 2.0, timeout_s: float | None = None) -> str | None:
    """Block until the job reaches a terminal state (a requeued job is PENDING again and keeps being waited for).
    Returns that JobState, or None when SLURM already forgot the job."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        state = job_state(job_id)
        if state is None or state in TERMINAL_STATES:
            return state
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still {job_state(job_id)} after {timeout_s}s")


def sbatch(argv: Sequence[str], name: str, log_dir: str, after: Sequence[str] = (), hold: bool = False) -> str:
    """Submit `argv` as a one-task batch job and return its id. With `after`, it waits until those jobs have
    succeeded (afterok) and is cancelled if one of them fails (--kill-on-invalid-dep), instead of pending forever.
    The job inherits this process's environment (sbatch's default), so PATH and PYTHONPATH reach it."""
    cmd = ["sbatch", "--parsable", "--job-name", name, "--ntasks", "1", "--output", f"{log_dir}/%x-%j.out"]
    if after:
        cmd += ["--dependency", "afterok:" + ":".join(after), "--kill-on-invalid-dep=yes"]
    if hold:
        cmd.append("--hold")
    proc = subprocess.run(cmd + ["--wrap", shlex.join(argv)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {name}: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]  # --parsable: "<id>[;<cluster>]"


def requeue(job_id: str, timeout_s: float = 60) -> dict[str, str]:
    """`scontrol requeue JOB_ID`, as a preemption does: SLURM kills the running job and queues it again (same id,
    Restarts + 1). SLURM holds a requeued job back for two minutes (BeginTime); it is released 3 s later instead,
    and not within the second of the requeue: slurmd refuses to launch a job whose credential it revoked in that same
    second ("Job credential revoked") and the job would end FAILED. Returns the job's fields once it is pending."""
    restarts = int(show_job(job_id)["Restarts"])
    subprocess.run(["scontrol", "requeue", str(job_id)], check=True, capture_output=True, timeout=30)
    info = wait_for_state(
        job_id,
        lambda i: int(i["Restarts"]) > restarts and i["JobState"] == "PENDING",
        timeout_s=timeout_s,
        what="requeue",
    )
    subprocess.run(
        ["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"], check=True, capture_output=True, timeout=30
    )
    return info


def release(job_ids: Sequence[str]) -> None:
    """`scontrol release`: let held jobs (sbatch --hold, vega-train --slurm-hold) start."""
    if job_ids:
        subprocess.run(["scontrol", "release", ",".join(job_ids)], check=True, capture_output=True, timeout=30)


def cancel(job_ids: Sequence[str]) -> None:
    """`scancel` these jobs (those already finished are ignored by SLURM)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)
