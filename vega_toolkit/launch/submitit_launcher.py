"""`vega-train ... --launcher submitit`: the same training, submitted to SLURM through submitit.

    vega-train DATA_BIN --task denoising_pretrain --arch vega_base ... \
        --save-dir ckpt/base --save-interval-updates 1000 \
        --launcher submitit --slurm-partition gpu --slurm-nodes 2 --slurm-gpus-per-node 8 \
        --slurm-time 4320 --slurm-job-dir ckpt/base/slurm          # prints "Submitted job <id>" and returns
    vega-train ... --launcher submitit --slurm-dependency afterok:1234 --wait   # chain; block until it ends

Every `--slurm-*` flag can also come from a yaml file (`--slurm-config cluster.yaml`, keys are the flag names
without the `slurm-` prefix, e.g. `partition: gpu`); flags on the command line win.

Each SLURM task runs the local launcher's `run_local(argv)`; a preempted job is requeued with the same argv and
resumes from `<save-dir>/checkpoint_last.pt` (set `--save-interval-updates` to bound the lost work). Ranks, ports,
CPU-only nodes, preemption signals and `--wait`: docs/design.md#slurm-launcher-submitit.
"""

import argparse
import contextlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from vega_toolkit.errors import UserError
from vega_toolkit.launch import slurm
from vega_toolkit.runtime.preemption import signals_deferred

logger = logging.getLogger(__name__)

# Flags whose names, minus the prefix, are also the keys of a --slurm-config yaml.
_YAML_KEYS = (
    "partition",
    "nodes",
    "tasks_per_node",
    "gpus_per_node",
    "cpus_per_task",
    "mem_gb",
    "time",
    "account",
    "qos",
    "constraint",
    "exclude",
    "job_name",
    "job_dir",
    "dependency",
    "hold",
    "signal",
    "signal_delay_s",
    "max_num_timeout",
    "setup",
    "cluster",
)


def add_launcher_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `--launcher` and `--slurm-*` flags (never seen by fairseq: `split_launcher_args` removes them)."""
    group = parser.add_argument_group("launcher (vega-toolkit)")
    group.add_argument(
        "--launcher",
        choices=("local", "submitit"),
        default="local",
        help="local: train in this process (fairseq spawns local DDP workers); "
        "submitit: submit the training as a SLURM job and return",
    )
    group.add_argument(
        "--wait",
        action="store_true",
        help="with --launcher submitit: block until the job ends; exit non-zero if it failed",
    )
    group.add_argument(
        "--slurm-config",
        metavar="YAML",
        help="yaml with defaults for the --slurm-* flags (keys: " + ", ".join(_YAML_KEYS) + ")",
    )
    group.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's default partition)")
    group.add_argument("--slurm-nodes", type=int, default=1, help="number of nodes")
    group.add_argument(
        "--slurm-tasks-per-node",
        type=int,
        default=None,
        help="SLURM tasks (= fairseq ranks) per node; default: --slurm-gpus-per-node, or 1",
    )
    group.add_argument("--slurm-gpus-per-node", type=int, default=0, help="GPUs per node")
    group.add_argument("--slurm-cpus-per-task", type=int, default=None, help="CPUs per task")
    group.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per node in GB")
    group.add_argument("--slurm-time", type=int, default=60, help="time limit in minutes")
    group.add_argument("--slurm-account", help="SLURM account")
    group.add_argument("--slurm-qos", help="SLURM quality of service")
    group.add_argument("--slurm-constraint", help="SLURM node constraint (features)")
    group.add_argument("--slurm-exclude", help="nodes to exclude")
    group.add_argument("--slurm-job-name", default="vega-train", help="SLURM job name")
    group.add_argument(
        "--slurm-job-dir",
        default=None,
        help="folder for submitit's pickles and the job logs (%%j = job id); default: <--save-dir>/slurm/%%j",
    )
    group.add_argument("--slurm-dependency", help="SLURM dependency, e.g. afterok:1234 (recipes chain jobs)")
    group.add_argument(
        "--slurm-hold",
        action="store_true",
        help="submit the job held (sbatch --hold): inspect a chain, then `scontrol release <id>`",
    )
    group.add_argument(
        "--slurm-signal",
        default="USR2",
        choices=("USR1", "USR2"),
        help="signal SLURM sends before preemption/time limit; it makes the job requeue itself",
    )
    group.add_argument(
        "--slurm-signal-delay-s",
        type=int,
        default=120,
        help="seconds between the signal and the kill at the time limit",
    )
    group.add_argument(
        "--slurm-max-num-timeout",
        type=int,
        default=30,
        help="how many times a job that hit its time limit is requeued (preemptions: unlimited)",
    )
    group.add_argument(
        "--slurm-setup",
        action="append",
        default=None,
        metavar="SHELL_LINE",
        help="shell line run in the sbatch script before training (repeatable), e.g. 'module load cuda'",
    )
    group.add_argument(
        "--slurm-cluster",
        default="slurm",
        choices=("slurm", "local", "debug"),
        help="submitit executor: slurm, or submitit's local/debug executors (no SLURM needed)",
    )
    return parser


def _launcher_parser(prog: str = "vega-train") -> argparse.ArgumentParser:
    # allow_abbrev=False: a fairseq flag must never be taken for an abbreviation of ours (or vice versa).
    return add_launcher_args(argparse.ArgumentParser(add_help=False, allow_abbrev=False, prog=prog))


def _load_yaml_defaults(path: str) -> dict[str, Any]:
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--slurm-config: no such file: {path}")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"--slurm-config {path}: expected a mapping of flag names to values")
    defaults = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name.startswith("slurm_"):
            name = name[len("slurm_") :]
        if name not in _YAML_KEYS:
            raise ValueError(f"--slurm-config {path}: unknown key '{key}' (known: {', '.join(_YAML_KEYS)})")
        defaults["slurm_" + name] = value
    return defaults


def split_launcher_args(argv: list[str], prog: str = "vega-train") -> tuple[argparse.Namespace, list[str]]:
    """Separate the launcher flags from the tool's own (fairseq's for vega-train): `(launcher_args, rest)`."""
    parser = _launcher_parser(prog)
    if "-h" in argv or "--help" in argv:
        parser.print_help()  # fairseq's parser prints the rest and exits
    args, rest = parser.parse_known_args(argv)
    if args.slurm_config:
        parser.set_defaults(**_load_yaml_defaults(args.slurm_config))
        args, rest = parser.parse_known_args(argv)
    if args.launcher == "local" and (args.wait or args.slurm_dependency):
        raise ValueError("--wait and --slurm-dependency only apply to --launcher submitit")
    return args, rest


def _flag_value(argv: list[str], flag: str) -> str | None:
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def _has_flag(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def save_dir_of(argv: list[str]) -> str:
    """fairseq's --save-dir (default `checkpoints`), where the job finds checkpoint_last.pt after a requeue."""
    return _flag_value(argv, "--save-dir") or "checkpoints"


class FairseqTrainingJob:
    """The callable submitit runs in every SLURM task: fairseq training of `argv` (vega-train's flags, no launcher
    flags). An importable class of this package: submitit pickles it by reference, so it must not come from a
    `--user-dir`.

    Checkpointable: SLURM sends `--slurm-signal` (default USR2, submitit's default, which warns that NCCL may catch
    USR1; `scancel --signal=USR2 JOB` fakes a preemption) `--slurm-signal-delay-s` seconds before the kill, and
    submitit calls `checkpoint()`, which requeues the same argv; fairseq resumes from `<save-dir>/checkpoint_last.pt`
    (its default `--restore-file`), so `--save-interval-updates` bounds the lost work. A signal that arrives while
    fairseq writes a checkpoint is handled once the save is complete (`guarded_checkpoint_saves`).
    """

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self) -> dict[str, Any]:
        """Train; return this rank's summary: rank, num_updates and a sha256 of its final parameters (equal on
        every rank of a healthy DDP job; `--wait` prints them)."""
        import submitit

        env = submitit.JobEnvironment()
        argv = distributed_argv(self.argv, env)
        logger.info("%s: fairseq training with %s", env, " ".join(argv))
        from vega_toolkit.launch.local import run_local

        with guarded_checkpoint_saves() as last:
            run_local(argv)
        trainer = last.get("trainer")
        if trainer is None:  # e.g. --no-save or a task that trains in rounds
            return {"rank": env.global_rank}
        return {
            "rank": env.global_rank,
            "num_updates": trainer.get_num_updates(),
            "params_sha256": params_digest(trainer.model),
        }

    def checkpoint(self, *args, **kwargs):
        import submitit

        last = os.path.join(save_dir_of(self.argv), "checkpoint_last.pt")
        if os.path.exists(last):
            logger.warning(
                "requeueing: the job resumes from %s (written %s)",
                last,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(last))),
            )
        else:
            logger.warning(
                "requeueing: no %s yet, the job restarts from the beginning "
                "(set --save-interval-updates to checkpoint more often)",
                last,
            )
        return submitit.helpers.DelayedSubmission(type(self)(self.argv))


@contextlib.contextmanager
def guarded_checkpoint_saves():
    """Wrap fairseq's `checkpoint_utils.save_checkpoint`, which fairseq_cli.train calls on every rank (after the last
    update too), so that each save finishes before a preemption signal is handled (runtime/preemption.py says why),
    and record the Trainer passed to it, which `fairseq_cli.train.main` does not return."""
    from fairseq import checkpoint_utils

    seen: dict[str, Any] = {}
    original = checkpoint_utils.save_checkpoint

    def guarded_save_checkpoint(cfg, trainer, *args, **kwargs):
        seen["trainer"] = trainer
        with signals_deferred():
            return original(cfg, trainer, *args, **kwargs)

    checkpoint_utils.save_checkpoint = guarded_save_checkpoint
    try:
        yield seen
    finally:
        checkpoint_utils.save_checkpoint = original


def params_digest(model) -> str:
    """sha256 over the model's parameters (names, dtypes, bytes): equal iff the parameters are bitwise equal."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(param.dtype).encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def distributed_argv(argv: list[str], env) -> list[str]:
    """`argv` plus the distributed flags fairseq needs in the SLURM task described by `env` (a submitit
    JobEnvironment: num_nodes, num_tasks, job_id, global_rank, hostnames).

    fairseq infers rank and world size from the SLURM environment (fairseq/distributed/utils.py
    `_infer_slurm_init`): with `--slurm-tasks-per-node` > 1 every task is one rank; with one task per node fairseq
    spawns one rank per visible GPU. Added unless given: `--distributed-world-size` and an explicit
    `--distributed-port` (without it fairseq falls back to `tcp://localhost`, single-node only); on CPU-only nodes
    `--distributed-backend gloo`, `--ddp-backend legacy_ddp` and the rank/init method fairseq would infer."""
    argv = list(argv)
    gpus = _torch_cuda_count()
    tasks_per_node = max(1, env.num_tasks // max(1, env.num_nodes))
    # One task per node: fairseq spawns a rank per visible GPU; several tasks per node: one rank per task.
    world_size = env.num_nodes * max(1, gpus) if tasks_per_node == 1 else env.num_tasks
    if world_size == 1:
        return argv
    if not _has_flag(argv, "--distributed-world-size"):
        argv += ["--distributed-world-size", str(world_size)]
    port = _flag_value(argv, "--distributed-port")
    if port is None:
        # Deterministic per job (the same after a requeue), in the unprivileged range; without an explicit port
        # fairseq falls back to tcp://localhost, which only works on one node.
        digits = "".join(c for c in str(env.job_id) if c.isdigit()) or "0"
        port = str(20000 + int(digits) % 20000)
        argv += ["--distributed-port", port]
    if gpus == 0:
        if not _has_flag(argv, "--distributed-backend"):
            argv += ["--distributed-backend", "gloo"]  # fairseq's default, nccl, needs GPUs
        if not _has_flag(argv, "--ddp-backend"):
            # fairseq's default pytorch_ddp wraps the model with device_ids=[device_id], which torch rejects for
            # CPU modules; fairseq's own all-reduce DDP (legacy_ddp) works with gloo.
            argv += ["--ddp-backend", "legacy_ddp"]
        if not _has_flag(argv, "--distributed-init-method"):
            # fairseq's SLURM inference would compute exactly this, but then calls torch.cuda.set_device(
            # SLURM_LOCALID) unconditionally (fairseq/distributed/utils.py infer_init_method), which fails on
            # CPU-only nodes; so on CPU the rank and init method are passed explicitly.
            argv += [
                "--distributed-init-method",
                f"tcp://{env.hostnames[0]}:{port}",
                "--distributed-rank",
                str(env.global_rank),
                "--distributed-no-spawn",
            ]
    return argv


def build_executor(
    args: argparse.Namespace, fairseq_argv: list[str], default_job_dir: str | None = None, job_name: str | None = None
):
    """A submitit AutoExecutor configured from the launcher flags (`default_job_dir` and `job_name` for tools other
    than vega-train: where the job folder goes without --slurm-job-dir, the name without --slurm-job-name)."""
    import submitit

    if args.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError(
            "--launcher submitit submits to SLURM, but there is no sbatch on this machine's PATH: run it "
            "on a SLURM login node, or train here with --launcher local (the default)"
        )
    job_dir = args.slurm_job_dir or default_job_dir or os.path.join(save_dir_of(fairseq_argv), "slurm", "%j")
    executor = submitit.AutoExecutor(
        folder=job_dir, cluster=args.slurm_cluster, slurm_max_num_timeout=args.slurm_max_num_timeout
    )
    tasks_per_node = args.slurm_tasks_per_node or max(1, args.slurm_gpus_per_node)
    params: dict[str, Any] = dict(
        name=job_name if job_name and args.slurm_job_name == "vega-train" else args.slurm_job_name,
        timeout_min=args.slurm_time,
        nodes=args.slurm_nodes,
        tasks_per_node=tasks_per_node,
    )
    if args.slurm_gpus_per_node:
        params["gpus_per_node"] = args.slurm_gpus_per_node
    if args.slurm_cpus_per_task:
        params["cpus_per_task"] = args.slurm_cpus_per_task
    if args.slurm_mem_gb:
        params["mem_gb"] = args.slurm_mem_gb
    if executor.cluster == "slurm":
        # The signal is both what SLURM sends (sbatch --signal) and what submitit's handler in the job listens to
        # (SUBMITIT_PREEMPT_SIGNAL is read when the job imports submitit).
        additional = {"signal": f"{args.slurm_signal}@{args.slurm_signal_delay_s}"}
        if args.slurm_dependency:
            additional["dependency"] = args.slurm_dependency
        if args.slurm_hold:
            additional["hold"] = True
        setup = [f"export SUBMITIT_PREEMPT_SIGNAL={args.slurm_signal}", *(args.slurm_setup or [])]
        # --kill-on-bad-exit: a rank that crashes takes the others down instead of leaving them blocked in a
        # collective until the time limit.
        params.update(
            slurm_additional_parameters=additional,
            slurm_setup=setup,
            slurm_signal_delay_s=args.slurm_signal_delay_s,
            slurm_srun_args=["--kill-on-bad-exit=1"],
        )
        for name in ("partition", "account", "qos", "constraint", "exclude"):
            value = getattr(args, "slurm_" + name)
            if value:
                params["slurm_" + name] = value
    elif args.slurm_dependency:
        raise ValueError("--slurm-dependency needs --slurm-cluster slurm")
    executor.update_parameters(**params)
    return executor


def submit(args: argparse.Namespace, fairseq_argv: list[str]):
    """Submit `FairseqTrainingJob(fairseq_argv)`; print `Submitted job <id>` and the log paths; wait if asked.

    Returns the submitit Job (its `.job_id` is the SLURM job id).
    """
    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    # Fail on bad fairseq flags here, not minutes later in the queue.
    parse_training_args(with_user_dir(fairseq_argv))
    if not _has_flag(fairseq_argv, "--save-interval-updates"):
        logger.warning(
            "--launcher submitit without --save-interval-updates: a preempted job loses the work done "
            "since the last end-of-epoch checkpoint"
        )
    executor = build_executor(args, fairseq_argv)
    job = executor.submit(FairseqTrainingJob(fairseq_argv))
    print(f"Submitted job {job.job_id}", flush=True)
    print(f"  stdout: {job.paths.stdout}", flush=True)
    print(f"  stderr: {job.paths.stderr}", flush=True)
    if args.wait:
        state = wait_for_job(job)
        print(f"Job {job.job_id} finished (state {state})", flush=True)
    return job


def wait_for_job(job) -> str:
    """Wait for a submitted job (through requeues) and return its final state; SystemExit(1) if training failed.

    Polls `scontrol` rather than submitit's `job.result()`, which reads states through `sacct` and so never returns
    on clusters without SLURM accounting when a job dies before writing its result.
    """
    from submitit.core.utils import pickle_load

    if job.__class__.__name__ != "SlurmJob":
        job.results()  # submitit's local/debug executors
        return "COMPLETED"
    state = slurm.wait_until_finished(job.job_id) or "UNKNOWN"
    result = Path(str(job.paths.result_pickle))
    for _ in range(20):  # the result file can land a moment after SLURM marks the job finished
        if result.exists():
            break
        time.sleep(0.5)
    outcome = pickle_load(result)[0] if result.exists() else "no result"
    if state != "COMPLETED" or outcome != "success":
        detail = pickle_load(result)[1] if outcome == "error" else ""
        print(
            f"Job {job.job_id} failed (state {state}, outcome {outcome}); logs: {job.paths.stderr}\n{detail}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)
    for summary in rank_summaries(job.paths.folder, job.job_id):
        print("  " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return state


def rank_summaries(job_folder, job_id: str) -> list[dict[str, Any]]:
    """The per-rank results (`FairseqTrainingJob.__call__`) a finished job left in its folder, by rank."""
    from submitit.core.utils import pickle_load

    summaries = []
    for path in sorted(Path(job_folder).glob(f"{job_id}_*_result.pkl")):
        outcome, value = pickle_load(path)
        if outcome == "success" and isinstance(value, dict):
            summaries.append(value)
    return sorted(summaries, key=lambda s: s.get("rank", 0))
