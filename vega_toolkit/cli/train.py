"""`vega-train`: fairseq-train with the vega plugins loaded. Same flags, same output.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny \
        --optimizer adam --lr 5e-4 --max-update 1000 --batch-size 16 --save-dir ckpt

Differences from stock `fairseq-train`, each a fix rather than a feature:
- the plugins are imported before fairseq builds its parser (so --arch/--task/--criterion choices include ours), and
  `--user-dir <installed vega_toolkit>` is injected so spawned distributed workers register them too;
- the fixes of vega_toolkit/fairseq_fixes apply (checkpoints load under torch>=2.6's `weights_only=True` default and
  are written atomically, `--bf16` no longer selects fairseq's TPU code path, batches keep every example);
- `vega-train --help` without `--arch` documents the `vega_encoder` options (as `--arch vega_base --help` does);
- the save dir is locked for the life of the run (vega_toolkit/launch/save_dir_lock.py), so a second run with the
  same `--save-dir` stops instead of overwriting the first one's checkpoints;
- a truncated `checkpoint_last.pt` is replaced by the newest readable checkpoint of the save dir (the broken file is
  renamed aside), instead of stopping the run or restarting it from update 0;
- re-running a finished command (checkpoint_last.pt at `--max-update`) is a no-op that says so, where fairseq would
  train one more update and rewrite the checkpoints;
- `--restore-file` with a classification head of another size than the task's is an error naming the head and
  the flag to use, not a shape error deep inside the optimizer.
"""
import contextlib
import os
import sys
from typing import Any, Callable, List, Optional, Tuple

import vega_toolkit

PLUGIN_DIR = os.path.dirname(os.path.abspath(vega_toolkit.__file__))


def with_user_dir(argv: List[str]) -> List[str]:
    """Append `--user-dir` pointing at the installed package unless the caller chose one."""
    if any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv):
        return list(argv)
    return list(argv) + ["--user-dir", PLUGIN_DIR]


def parse_training_args(argv: List[str]):
    """fairseq's training parser over `argv` (plugins loaded; `--bf16` keeps `tpu=False`: fairseq_fixes/bf16.py)."""
    from fairseq import options

    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, input_args=argv)


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


def run_training(argv: List[str]):
    """Parse `argv` like fairseq-train and train in this process (spawning local DDP workers as fairseq does)."""
    from fairseq import distributed_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli.train import main as train_main

    argv = with_user_dir(argv)
    args = parse_training_args(argv)
    return train_guarded(args, lambda: distributed_utils.call_main(convert_namespace_to_omegaconf(args), train_main),
                         argv)


def train_guarded(args, train: Callable[[], Any], argv: Optional[List[str]] = None):
    """`train()` (one fairseq training of `args`) inside vega-train's guards: the save-dir lock, the
    checkpoint_last.pt repair, the restored-head check and the finished-run no-op. Round-based tasks (transductive /
    self-calibrated) run their whole loop of trainings instead. vega-hydra-train shares it."""
    from fairseq.tasks import TASK_REGISTRY

    from vega_toolkit.checkpoints import recover_checkpoint_last
    from vega_toolkit.launch.save_dir_lock import SaveDirLock

    first = is_first_rank(args)
    with SaveDirLock(args.save_dir) if first and not args.no_save else contextlib.nullcontext():
        task_cls = TASK_REGISTRY.get(args.task)
        if task_cls is not None and hasattr(task_cls, "run_rounds"):
            return task_cls.run_rounds(argv, args)
        if first and args.restore_file == "checkpoint_last.pt":
            recover_checkpoint_last(args.save_dir)
        resume = resume_checkpoint(args)
        if resume is not None:
            check_restored_heads(args, resume)
            finished = finished_message(args, resume)
            if finished:
                print(finished, flush=True)
                return None
        return train()


def user_errors() -> Tuple[type, ...]:
    """Errors of bad input whose message says what to do: printed without a traceback, which would bury it."""
    from vega_toolkit.data.glue_readers import GlueFormatError
    from vega_toolkit.fairseq_fixes.checkpoint_loading import CheckpointError
    from vega_toolkit.launch.save_dir_lock import SaveDirLockedError
    from vega_toolkit.models.heads import HeadMismatchError

    return SaveDirLockedError, CheckpointError, HeadMismatchError, GlueFormatError


def cli_main(argv: Optional[List[str]] = None):
    from vega_toolkit.launch.submitit_launcher import split_launcher_args, submit

    argv = sys.argv[1:] if argv is None else list(argv)
    asks_help = any(a in ("-h", "--help") for a in argv)
    if asks_help and not any(a in ("-a", "--arch") or a.startswith("--arch=") for a in argv):
        # fairseq lists a model's options only once an --arch is chosen; ours are what a vega user looks for.
        argv += ["--arch", "vega_base"]
    launcher, argv = split_launcher_args(argv)  # --launcher/--slurm-* flags (see vega_toolkit/launch)
    if launcher.launcher == "submitit":
        submit(launcher, argv)
        return
    try:
        run_training(argv)
    except user_errors() as err:
        sys.exit(f"vega-train: {err}")


if __name__ == "__main__":
    cli_main()
