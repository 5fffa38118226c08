"""Adaptation algorithms that chain several fine-tunings: transductive (Algorithm 1, rounds.py) and self-calibrated
(Algorithm 2, self_calibration.py) fine-tuning. Their fairseq tasks (vega_toolkit/tasks/glue_transductive.py and
glue_self_calibrated.py) hold the flags; the loops live here.

`ROUND_DRIVERS` is the one place that says which task runs a loop of trainings instead of one: vega-train's local
launcher (vega_toolkit/launch/local.py) reads it. A new loop is a driver `f(args) -> dict` (the parsed command line
in, the final state out) and a row here.
"""

from collections.abc import Callable

from vega_toolkit.adaptation.rounds import drive_transductive
from vega_toolkit.adaptation.self_calibration import drive_self_calibrated

ROUND_DRIVERS: dict[str, Callable] = {
    "glue_transductive": drive_transductive,
    "glue_self_calibrated": drive_self_calibrated,
}


def round_driver(task_name: str) -> Callable | None:
    """The driver of `--task task_name`'s loop of trainings, or None for a task that trains once."""
    return ROUND_DRIVERS.get(task_name)
