"""`vega-train` (`--launcher local`, the default): the training runs in this process; fairseq spawns one worker per
local GPU itself. The SLURM launcher (submitit_launcher.py) runs this same function in every task of its job.

    from vega_toolkit.launch.local import run_local
    run_local(["DATA_BIN", "--task", "glue_transductive", ...])   # = vega-train DATA_BIN --task glue_transductive ...

What runs is chosen here and only here: a task with a round driver in vega_toolkit/adaptation (`ROUND_DRIVERS`:
transductive and self-calibrated fine-tuning) runs its whole loop of trainings; any other task trains once, inside
vega-train's guards (vega_toolkit/runtime/training.py). Either way the save dir is locked for the life of the run.
"""

from collections.abc import Callable
from typing import Any

from vega_toolkit.adaptation import round_driver
from vega_toolkit.errors import check_output_dir
from vega_toolkit.runtime.training import (
    check_training_numbers,
    explicit_value,
    guarded_training,
    locked_save_dir,
    parse_training_args,
    train_once,
    with_user_dir,
)


def run_guarded(args, train: Callable[[], Any], max_update_given: str | None = None):
    """Under the save-dir lock: the round driver of `args.task`, or `train()` (one training of `args`) inside the
    guards. vega-hydra-train passes its own `train` (fairseq-hydra-train's main on the composed config).
    `max_update_given`: --max-update as the user wrote it (0 is refused: fairseq would read it as no limit)."""
    check_training_numbers(args, max_update_given)
    check_output_dir(args.save_dir, "--save-dir")
    with locked_save_dir(args):
        driver = round_driver(args.task)
        if driver is not None:
            return driver(args)
        return guarded_training(args, train)


def run_local(argv: list[str]):
    """Parse `argv` like fairseq-train (plugins passed on to workers with `--user-dir`) and run it here."""
    args = parse_training_args(with_user_dir(argv))
    return run_guarded(args, lambda: train_once(args), explicit_value(argv, "--max-update"))
