"""The training core: one fairseq training of a parsed command line, inside vega-train's guards.

    from vega_toolkit.training import parse_training_args, train_once, with_user_dir
    args = parse_training_args(with_user_dir(["DATA_BIN", "--task", "denoising_pretrain", "--arch", "vega_tiny", ...]))
    train_once(args)                      # fairseq_cli.train.main, spawning local DDP workers as fairseq does

Who calls it: the local launcher (vega_toolkit/launch/local.py: `vega-train`, `vega-hydra-train` and every SLURM
task of `--launcher submitit`), the round drivers of vega_toolkit/adaptation (one `train_once` per round) and the
benchmarks. The guards (`guarded_training`), each a fix rather than a feature:
- the save dir is locked for the life of the run (`locked_save_dir`, vega_toolkit/save_dir_lock.py), so a
  second run with the same `--save-dir` stops instead of overwriting the first one's checkpoints;
- a truncated `checkpoint_last.pt` is replaced by the newest readable checkpoint of the save dir (the broken file is
  renamed aside), instead of stopping the run or restarting it from update 0;
- re-running a finished command (checkpoint_last.pt at `--max-update`) is a no-op that says so, where fairseq would
  train one more update and rewrite the checkpoints;
- `--restore-file` with a classification head of another size than the task's is an error naming the head and
  the flag to use, not a shape error deep inside the optimizer;
- SIGTERM or SIGUSR1 (preemption, a stopped study) stop a single-process run at its next update with
  checkpoint_last.pt saved, and the command exits with 128 + the signal (vega_toolkit/graceful_stop.py).
The fixes of fairseq itself (checkpoint loading under torch>=2.6, atomic checkpoint writes, `--bf16` without the TPU
path, full `--help`, batching) are installed on `import vega_toolkit` (vega_toolkit/fairseq_fixes).
"""
import contextlib
import os
from typing import Any, Callable, List, Optional, Tuple

# `--user-dir` of spawned distributed workers and SLURM jobs: the installed package itself
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def with_user_dir(argv: List[str]) -> List[str]:
    """Append `--user-dir` pointing at the installed package unless the caller chose one."""
    if any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv):
        return list(argv)
    return list(argv) + ["--user-dir", PLUGIN_DIR]


def parse_training_args(argv: List[str], add_extra_args: Optional[Callable] = None):
    """fairseq's training parser over `argv` (plugins loaded; `--bf16` keeps `tpu=False`: fairseq_fixes/bf16.py).
    `add_extra_args(parser)` adds a tool's own flags beside vega-train's (vega-plan's --gpu, ...)."""
    from fairseq import options

    parser = options.get_training_parser()
    if add_extra_args is not None:
        add_extra_args(parser)
    return options.parse_args_and_arch(parser, input_args=argv)


def train_once(args):
    """One fairseq training of the parsed `args` in this process (fairseq spawns local DDP workers itself)."""
    from fairseq import distributed_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli.train import main as train_main

    return distributed_utils.call_main(convert_namespace_to_omegaconf(args), train_main)


def reset_fairseq_globals():
    """Forget what a previous fairseq training in this process left behind (round drivers, local sweeps)."""
    # fairseq keeps the best validation metric and the early-stopping counter as function attributes; a second
    # training in the same process would otherwise compare against the previous round's best and never write
    # checkpoint_best.pt (or stop early at once).
    # Its TensorBoard writers are cached per split name ("train", "valid"), not per folder: without closing them,
    # every round would log into the first round's --tensorboard-logdir.
    from fairseq import checkpoint_utils
    from fairseq.logging import progress_bar
    from fairseq_cli import train as fairseq_train

    for fn, attrs in ((checkpoint_utils.save_checkpoint, ("best",)),
                      (fairseq_train.should_stop_early, ("best", "num_runs"))):
        for attr in attrs:
            if hasattr(fn, attr):
                delattr(fn, attr)
    progress_bar._close_writers()
    progress_bar._tensorboard_writers.clear()


# --- the guards --------------------------------------------------------------------------------------------------
def resume_checkpoint(args) -> Optional[str]:
    """The checkpoint fairseq will resume this run from (fairseq's `load_checkpoint` rule); None on a fresh start
    or where the rule is fairseq's alone (sharded checkpoints with a suffix)."""
    if getattr(args, "checkpoint_suffix", ""):
        return None
    if args.restore_file == "checkpoint_last.pt":
        last = os.path.join(args.save_dir, "checkpoint_last.pt")
        return last if os.path.exists(last) else None
    return args.restore_file


def check_restored_heads(args, path: str):
    """A restored classification head must have the task's size: its optimizer state cannot fit another one."""
    from vega_toolkit.data.glue_tasks import get_glue_task
    from vega_toolkit.fairseq_fixes.checkpoint_loading import CheckpointError, peek_checkpoint
    from vega_toolkit.models.heads import HeadMismatchError, classification_head_sizes

    head, glue_task = getattr(args, "classification_head_name", None), getattr(args, "glue_task", None)
    num_classes = get_glue_task(glue_task).num_classes if glue_task else getattr(args, "num_classes", -1)
    if head is None or num_classes < 1 or args.reset_optimizer:
        return
    try:
        stored = peek_checkpoint(path).get("model") or {}
    except CheckpointError:  # fairseq's own load reports it (another rank may be repairing checkpoint_last.pt)
        return
    for name, size in classification_head_sizes(stored).items():
        if size != num_classes:
            task = f"--glue-task {glue_task}" if glue_task else f"--num-classes {num_classes}"
            raise HeadMismatchError(
                f"--restore-file {path}: its classification head '{name}' has {size} outputs, but {task} trains "
                f"'{head}' with {num_classes}, and the checkpoint's optimizer state cannot be restored onto it. To "
                f"start a new fine-tuning from its weights, pass it as --finetune-from-model {path} (fresh head and "
                f"optimizer) instead of --restore-file.")


def finished_message(args, path: str) -> Optional[str]:
    """What to say when `path` (the save dir's checkpoint_last.pt) is already at --max-update."""
    from vega_toolkit.checkpoints import read_num_updates
    from vega_toolkit.fairseq_fixes.checkpoint_loading import CheckpointError

    if args.restore_file != "checkpoint_last.pt" or not args.max_update:
        return None
    try:
        num_updates = read_num_updates(path)
    except CheckpointError:  # as above: fairseq's load reports it
        return None
    if num_updates < args.max_update:
        return None
    return (f"vega-train: {path} is at update {num_updates} and --max-update is {args.max_update}: this run has "
            f"finished, nothing to do (raise --max-update to train further, or give another --save-dir)")


def is_first_rank(args) -> bool:
    """Whether this process is rank 0 of its job: the one that locks the save dir and repairs checkpoint_last.pt
    (processes started per rank by SLURM tasks or torchrun would otherwise lock each other out)."""
    env_ranks = (os.environ.get("RANK", "0"), os.environ.get("SLURM_PROCID", "0"))
    return all(r == "0" for r in env_ranks) and (getattr(args, "distributed_rank", 0) or 0) == 0


def locked_save_dir(args):
    """The save-dir lock of this run (rank 0 only; none with --no-save), as a context manager."""
    from vega_toolkit.save_dir_lock import SaveDirLock

    return SaveDirLock(args.save_dir) if is_first_rank(args) and not args.no_save else contextlib.nullcontext()


def guarded_training(args, train: Callable[[], Any]):
    """`train()` (one fairseq training of `args`) after vega-train's checks: the checkpoint_last.pt repair, the
    restored-head check and the finished-run no-op. The caller holds the save-dir lock (`locked_save_dir`)."""
    from vega_toolkit.checkpoints import recover_checkpoint_last
    from vega_toolkit.graceful_stop import stop_with_checkpoint

    if is_first_rank(args) and args.restore_file == "checkpoint_last.pt":
        recover_checkpoint_last(args.save_dir)
    resume = resume_checkpoint(args)
    if resume is not None:
        check_restored_heads(args, resume)
        finished = finished_message(args, resume)
        if finished:
            print(finished, flush=True)
            return None
    with stop_with_checkpoint(args) as stop:
        result = train()
    if stop is not None and stop.stopped:
        print(stop.exit_message(args.save_dir), flush=True)
        raise SystemExit(128 + stop.signum)  # not 0: the run has not finished (callers, SLURM requeue)
    return result


def user_errors() -> Tuple[type, ...]:
    """Errors of bad input whose message says what to do: printed without a traceback, which would bury it."""
    from vega_toolkit.data.glue_readers import GlueFormatError
    from vega_toolkit.fairseq_fixes.checkpoint_loading import CheckpointError
    from vega_toolkit.save_dir_lock import SaveDirLockedError
    from vega_toolkit.models.heads import HeadMismatchError

    return SaveDirLockedError, CheckpointError, HeadMismatchError, GlueFormatError
