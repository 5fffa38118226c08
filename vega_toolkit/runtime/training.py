"""One fairseq training of a parsed command line, inside vega-train's guards (see vega_toolkit/runtime/__init__.py).

    from vega_toolkit.runtime.training import parse_training_args, train_once, with_user_dir
    args = parse_training_args(with_user_dir(["DATA_BIN", "--task", "denoising_pretrain", "--arch", "vega_tiny", ...]))
    train_once(args)                      # fairseq_cli.train.main, spawning local DDP workers as fairseq does

Called by the local launcher (launch/local.py: vega-train, vega-hydra-train, every SLURM task of --launcher
submitit), the round drivers of adaptation/ (one `train_once` per round) and the benchmarks.
"""

import contextlib
import os
from collections.abc import Callable
from typing import Any

from vega_toolkit.errors import UserError

# `--user-dir` of spawned distributed workers and SLURM jobs: the installed package itself
PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_user_dir(argv: list[str]) -> list[str]:
    """Append `--user-dir` pointing at the installed package unless the caller chose one."""
    if any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv):
        return list(argv)
    return list(argv) + ["--user-dir", PLUGIN_DIR]


def parse_training_args(argv: list[str], add_extra_args: Callable | None = None):
    """fairseq's training parser over `argv` (plugins loaded; `--bf16` keeps `tpu=False`: fairseq_fixes/bf16.py).
    `add_extra_args(parser)` adds a tool's own flags beside vega-train's (vega-plan's --gpu, ...)."""
    from fairseq import options

    if explicit_value(argv, "--arch") is None and explicit_value(argv, "-a") is None:
        # fairseq would stop on a bare RuntimeError() (its default --arch is not registered)
        raise UserError("give --arch (e.g. --arch vega_base; `vega-train --help` lists the vega architectures)")
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

    for fn, attrs in (
        (checkpoint_utils.save_checkpoint, ("best",)),
        (fairseq_train.should_stop_early, ("best", "num_runs")),
    ):
        for attr in attrs:
            if hasattr(fn, attr):
                delattr(fn, attr)
    progress_bar._close_writers()
    progress_bar._tensorboard_writers.clear()


# --- the guards --------------------------------------------------------------------------------------------------
def resume_checkpoint(args) -> str | None:
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
    from vega_toolkit.io.checkpoints import CheckpointError, peek_checkpoint
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
                f"optimizer) instead of --restore-file."
            )


def vocabulary_folder(args) -> tuple[str, str] | None:
    """(folder, flag) of the vocabulary a training of the toolkit's tasks reads; None for other tasks."""
    if getattr(args, "vocab_dir", None) and getattr(args, "glue_task", None):
        return args.vocab_dir, "--vocab-dir"
    if args.task == "denoising_pretrain":
        from vega_toolkit.data.corpus_pipeline import data_paths

        return data_paths(args.data)[0], "DATA"  # a folder of shards: shard 0, the one the task records
    return None


def check_not_a_gdes_pretraining(path: str):
    """A GDES pretraining checkpoint keeps the discriminator's embedding delta in the criterion's state, which
    --finetune-from-model does not read: its weights alone are the generator's embedding, not the discriminator's."""
    from vega_toolkit.io.checkpoints import CheckpointError, peek_checkpoint
    from vega_toolkit.models.replacement_generator import EMBEDDING_DELTA_KEY

    try:
        criterion_state = peek_checkpoint(path).get("criterion") or {}
    except CheckpointError:  # fairseq's own load reports it
        return
    if EMBEDDING_DELTA_KEY in criterion_state:
        raise UserError(
            f"--finetune-from-model {path} is an rtd_electra --embedding-sharing gdes pretraining "
            f"checkpoint: its discriminator embedding is E_G + E_delta, which only the export merges. "
            f"Run `vega-convert export {path} --data-bin DATA OUT` and fine-tune from OUT/model.pt"
        )


def check_checkpoint_vocabulary(args, path: str, flag: str):
    """The checkpoint a training starts from must have been trained with the task's dict.txt + spm.model: the same
    number of rows is not enough (two vocabularies of one size share almost no ids). Checked before fairseq loads
    it, which would call a wrong number of rows an architecture mismatch, and a wrong vocabulary of the right size
    nothing at all."""
    from fairseq.data import Dictionary

    from vega_toolkit.data.vocabulary import check_embedding_rows, check_vocabulary, stored_vocabulary_id
    from vega_toolkit.io.checkpoints import CheckpointError, peek_checkpoint
    from vega_toolkit.models.model_folder import DICT_FILE, EMBEDDING_KEY

    found = vocabulary_folder(args)
    if found is None or not os.path.isfile(os.path.join(found[0], DICT_FILE)):
        return  # the task reports a missing dict.txt itself
    folder, folder_flag = found
    try:
        ckpt = peek_checkpoint(path)
    except CheckpointError:  # fairseq's own load reports it (another rank may be repairing checkpoint_last.pt)
        return
    described = f"{flag} {path}"
    check_vocabulary(described, stored_vocabulary_id(ckpt), folder, folder_flag)
    embedding = (ckpt.get("model") or {}).get(EMBEDDING_KEY)
    stored_task = str(((ckpt.get("cfg") or {}).get("task") or {}).get("_name", ""))
    if embedding is not None and stored_task != "masked_lm":  # masked_lm appends <mask> (exported folders trim it)
        check_embedding_rows(
            described, embedding.size(0), len(Dictionary.load(os.path.join(folder, DICT_FILE))), folder, folder_flag
        )


def architecture_mismatch(args, path: str, error: Exception) -> UserError:
    """fairseq's "please ensure that the architectures match" with the first parameter that does not fit (the
    vocabulary was checked before: check_checkpoint_vocabulary) and where to read the right flags."""
    cause = str(error.__cause__ or error.__context__ or error)
    detail = next(
        (
            line.strip()
            for line in cause.splitlines()
            if line.strip().startswith(("size mismatch", "Missing key", "Unexpected key"))
        ),
        cause.strip(),
    )
    return UserError(
        f"{path}: its weights do not fit --arch {args.arch} with the model flags given ({detail[:300]}); "
        f"give the flags it was trained with (`vega-glue arch MODEL_DIR` prints a model folder's)"
    )


def explicit_value(argv: list[str], flag: str) -> str | None:
    """The value of `flag` as given on the command line (`--flag V` or `--flag=V`), or None."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def check_training_numbers(args, max_update_given: str | None = None):
    """Numbers fairseq would take without a word: a learning rate at or below 0 (a negative one trains
    uphill), a negative --max-update/--max-epoch, and an explicit --max-update 0 (fairseq reads 0 as "no limit",
    so a run capped at 0 updates would train without end)."""
    if getattr(args, "max_tokens", None) is None and getattr(args, "batch_size", None) is None:
        raise UserError("give --batch-size (sentences per batch) or --max-tokens (tokens per batch)")  # else an assert
    lrs = args.lr if isinstance(args.lr, (list, tuple)) else [args.lr]
    if any(lr is not None and float(lr) <= 0 for lr in lrs):
        raise UserError(f"--lr {','.join(map(str, lrs))}: a learning rate must be positive")
    for name in ("max_update", "max_epoch"):
        value = getattr(args, name, 0) or 0
        if value < 0:
            raise UserError(f"--{name.replace('_', '-')} {value} is negative; leave the flag out for no limit")
    if max_update_given is not None and args.max_update == 0:
        raise UserError(
            f'--max-update {max_update_given}: fairseq reads 0 as "no limit", so this run would '
            f"never end; give a positive number of updates, or leave the flag out for no limit"
        )


def finished_message(args, path: str) -> str | None:
    """What to say when `path` (the save dir's checkpoint_last.pt) is already at --max-update."""
    from vega_toolkit.io.checkpoints import CheckpointError, read_num_updates

    if args.restore_file != "checkpoint_last.pt" or not args.max_update:
        return None
    try:
        num_updates = read_num_updates(path)
    except CheckpointError:  # as above: fairseq's load reports it
        return None
    if num_updates < args.max_update:
        return None
    return (
        f"vega-train: {path} is at update {num_updates} and --max-update is {args.max_update}: this run has "
        f"finished, nothing to do (raise --max-update to train further, or give another --save-dir)"
    )


def is_first_rank(args) -> bool:
    """Whether this process is rank 0 of its job: the one that locks the save dir and repairs checkpoint_last.pt
    (processes started per rank by SLURM tasks or torchrun would otherwise lock each other out)."""
    env_ranks = (os.environ.get("RANK", "0"), os.environ.get("SLURM_PROCID", "0"))
    return all(r == "0" for r in env_ranks) and (getattr(args, "distributed_rank", 0) or 0) == 0


def locked_save_dir(args):
    """The save-dir lock of this run (rank 0 only; none with --no-save), as a context manager."""
    from vega_toolkit.runtime.save_dir_lock import SaveDirLock

    return SaveDirLock(args.save_dir) if is_first_rank(args) and not args.no_save else contextlib.nullcontext()


def guarded_training(args, train: Callable[[], Any]):
    """`train()` (one fairseq training of `args`) after vega-train's checks: the checkpoint_last.pt repair, the
    restored-head check and the finished-run no-op. The caller holds the save-dir lock (`locked_save_dir`)."""
    from vega_toolkit.io.checkpoints import recover_checkpoint_last
    from vega_toolkit.runtime.graceful_stop import stop_with_checkpoint

    if is_first_rank(args) and args.restore_file == "checkpoint_last.pt":
        recover_checkpoint_last(args.save_dir)
    resume = resume_checkpoint(args)
    if resume is not None:
        check_checkpoint_vocabulary(args, resume, "--restore-file")
        check_restored_heads(args, resume)
        finished = finished_message(args, resume)
        if finished:
            print(finished, flush=True)
            return None
    start = resume or getattr(args, "finetune_from_model", None)
    if resume is None and start:
        if not os.path.isfile(start):
            raise UserError(f"--finetune-from-model {start}: file not found")
        check_checkpoint_vocabulary(args, start, "--finetune-from-model")
        check_not_a_gdes_pretraining(start)
    with stop_with_checkpoint(args) as stop:
        try:
            result = train()
        except Exception as error:
            if start and "please ensure that the architectures match" in str(error):
                raise architecture_mismatch(args, start, error) from error
            raise
    if stop is not None and stop.stopped:
        print(stop.exit_message(args.save_dir), flush=True)
        raise SystemExit(128 + stop.signum)  # not 0: the run has not finished (callers, SLURM requeue)
    return result
