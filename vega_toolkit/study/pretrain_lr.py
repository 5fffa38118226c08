"""The pretraining learning rate of each objective, chosen by the rule of `Scale.pretrain_lr_grid`.

The rule, declared before its runs: each pretrained arm's seed-1 run is made at every rate of the grid (the scale's
budget otherwise), and the arm pretrains at the rate whose run has the lowest held-out loss at its last validation
(the RTD part of the loss for an RTD objective). A run that sits at its label prior learnt nothing and is excluded;
when every rate is at the prior, the arm keeps the scale's own rate (and the report says it is at the prior). GLUE dev
takes no part.

What follows the choice: the arm's other pretraining seeds, its fine-tunings and its compute axis start from the
chosen rate. The runner plans them only once the arm's grid has finished (runner.StudyRunner), so that no
fine-tuning is spent on a rate the rule rejects. The report supersedes the fine-tunings of a rate it did not choose
(report.current_records).
"""

from vega_toolkit.data.noising import label_prior_bits


def validation_phases(curve: list[dict]) -> list[list[dict]]:
    """A pretraining's validations split where the update count starts again (rtd_ternary+rtd_contrastive's second
    phase counts from 0)."""
    phases: list[list[dict]] = []
    for point in curve:
        if not isinstance(point.get("num_updates"), float):
            continue
        if not phases or point["num_updates"] < phases[-1][-1]["num_updates"]:
            phases.append([])
        phases[-1].append(point)
    return phases


def objective_loss(point: dict) -> float | None:
    """The loss a validation point is judged by: the RTD part where the objective has one."""
    return point.get("rtd_loss", point.get("loss"))


def at_label_prior(point: dict) -> bool:
    """True when an RTD objective's held-out loss is within 0.01 bits of the entropy of its label mix: it predicts the
    class frequencies and has learnt nothing from the tokens."""
    loss = objective_loss(point)
    return (
        "shuf_frac" in point
        and "repl_frac" in point
        and loss is not None
        and loss >= label_prior_bits(point["shuf_frac"], point["repl_frac"]) - 0.01
    )


def heldout_loss(record: dict) -> tuple[float | None, bool]:
    """(the objective's held-out loss at the last validation of a pretraining record, True when at the label prior);
    (None, False) without a validation."""
    phases = validation_phases(record.get("valid_curve") or [])
    if not phases:
        return None, False
    last = phases[-1][-1]
    return objective_loss(last), at_label_prior(last)


def grid_runs(records: list[dict], default_lr: float) -> dict[str, dict[float, dict]]:
    """arm -> pretraining learning rate -> its seed-1 pretraining record at the scale's budget (the compute axis'
    shorter runs, named `pretrain ARM@UPDATES`, are not the grid's). RECORDS: the newest record of each name."""
    runs: dict[str, dict[float, dict]] = {}
    for r in records:
        if r.get("kind") == "pretrain" and int(r.get("pretrain_seed", 1)) == 1 and "@" not in r.get("name", ""):
            runs.setdefault(r["arm"], {})[float(r.get("pretrain_lr", default_lr))] = r
    return runs


def choose(losses: dict[float, tuple[float | None, bool]], default_lr: float) -> float:
    """The rule on one arm's finished grid: {rate: (held-out loss, at the prior)} -> the chosen rate."""
    eligible = {lr: loss for lr, (loss, prior) in losses.items() if loss is not None and not prior}
    return min(eligible, key=lambda lr: (eligible[lr], lr)) if eligible else default_lr


def chosen_pretrain_lrs(records: list[dict], grid: tuple[float, ...], default_lr: float) -> dict[str, float]:
    """{arm: chosen pretraining rate} of every arm whose grid has finished; an arm still running its grid is absent,
    and so is every arm of a scale without a grid."""
    chosen: dict[str, float] = {}
    if not grid:
        return chosen
    for arm, by_lr in grid_runs(records, default_lr).items():
        if all(float(lr) in by_lr for lr in grid):
            chosen[arm] = choose({float(lr): heldout_loss(by_lr[float(lr)]) for lr in grid}, default_lr)
    return chosen
