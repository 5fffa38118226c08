"""Which fine-tuning learning rate a study reports, chosen apart from the numbers it reports, and the edge rule.

A study's grid is (task, arm) -> learning rate -> run -> dev score, where a run is (pretraining seed, fine-tuning
seed). Two rules choose the learning rate of a run:
- "held-out" (the default): leave-one-run-out. Run r is reported at the learning rate with the best median dev score
  over the *other* runs, so no reported score takes part in choosing its own learning rate; cells are scored on
  their last checkpoint (Scale.checkpoint), never on the per-epoch best of the dev set.
- "dev": the first cpu study's rule, kept to compare the two: the learning rate with the best median over all runs,
  the very scores it then reports, on the per-epoch best checkpoint (a cell's `score_best`).
The edge rule (declared in Scale.lr_edge_steps before any selection): when a run's chosen learning rate is the
grid's lowest (highest), that arm and task also run one step below (above) it; the step is then a grid point like
any other for that arm and task.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterable

Run = tuple[int, int]  # (pretraining seed, fine-tuning seed)
RULES = ("held-out", "dev")


def run_of(record: dict) -> Run:
    return int(record.get("pretrain_seed", 1)), int(record["seed"])


def run_label(run: Run) -> str:
    return f"s{run[1]}" if run[0] == 1 else f"p{run[0]}s{run[1]}"


def checkpoint_of(record: dict) -> str:
    """The checkpoint a fine-tuning's `score` is of: records before the rule was declared are the per-epoch best."""
    return record.get("checkpoint", "best")


def score_grid(records: Iterable[dict], rule: str = "held-out"):
    """(task, arm) -> lr -> run -> score of the fine-tunings of the scale's own pretraining budget (the compute
    axis' shorter budgets are apart: compute.py). Under "held-out" an entry with last-checkpoint cells uses only
    those; under "dev" every cell's per-epoch best score (`score_best` where the cell also scored its last)."""
    by_checkpoint = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for r in records:
        if r.get("kind") != "finetune" or r.get("pretrain_updates"):
            continue
        if rule == "dev":
            score = r["score_best"] if "score_best" in r else r["score"] if checkpoint_of(r) == "best" else None
            if score is not None:
                by_checkpoint["best"][(r["task"], r["arm"])][float(r["lr"])][run_of(r)] = float(score)
        else:
            by_checkpoint[checkpoint_of(r)][(r["task"], r["arm"])][float(r["lr"])][run_of(r)] = float(r["score"])
    if rule == "dev":
        return by_checkpoint["best"]
    grid = dict(by_checkpoint["best"])
    grid.update(by_checkpoint["last"])  # an entry's last-checkpoint cells replace its older ones
    return grid


def last_checkpoint_entries(records: Iterable[dict]) -> set:
    """The (task, arm) entries scored on their last checkpoint."""
    return {
        (r["task"], r["arm"])
        for r in records
        if r.get("kind") == "finetune" and checkpoint_of(r) == "last" and not r.get("pretrain_updates")
    }


def complete_rates(by_lr: dict[float, dict[Run, float]]) -> list[float]:
    """The learning rates every run of the entry has (a running grid point is not a candidate yet)."""
    runs = set().union(*(set(v) for v in by_lr.values())) if by_lr else set()
    return sorted(lr for lr, scores in by_lr.items() if set(scores) == runs)


def best_point(by_lr: dict[float, dict[Run, float]], runs: Iterable[Run] | None = None) -> float:
    """The learning rate with the highest median over RUNS (default: all; ties: the smaller learning rate)."""
    rates = complete_rates(by_lr) or sorted(by_lr)
    keep = set(runs) if runs is not None else None

    def median(lr):
        values = [v for run, v in by_lr[lr].items() if keep is None or run in keep]
        return statistics.median(values) if values else float("-inf")

    return max(rates, key=median)


def select(by_lr: dict[float, dict[Run, float]], rule: str = "held-out") -> tuple[dict[Run, float], dict[Run, float]]:
    """({run: chosen lr}, {run: its score there}) under RULE (see the module's docstring). A run alone in its
    entry has no other run to choose by: it gets the best median of its own (shown with n=1, compared nowhere)."""
    rates = complete_rates(by_lr)
    runs = sorted(set().union(*(set(by_lr[lr]) for lr in rates))) if rates else []
    if not runs:  # no learning rate with every run yet: the best median of what there is
        lr = best_point(by_lr)
        return {run: lr for run in by_lr[lr]}, dict(by_lr[lr])
    if rule == "dev" or len(runs) == 1:
        lr = best_point(by_lr)
        return {run: lr for run in runs}, {run: by_lr[lr][run] for run in runs}
    chosen = {run: best_point(by_lr, [r for r in runs if r != run]) for run in runs}
    return chosen, {run: by_lr[lr][run] for run, lr in chosen.items()}


def chosen_rates(chosen: dict[Run, float]) -> str:
    rates = sorted(set(chosen.values()))
    return f"lr {rates[0]:g}" if len(rates) == 1 else "lr " + "/".join(f"{lr:g}" for lr in rates) + " (by run)"


def edge_extensions(
    grid, learning_rates: Iterable[float], edge_steps: Iterable[float], wanted_runs=None
) -> dict[tuple[str, str], tuple[float, ...]]:
    """{(arm, task): (extra learning rate,)} of the edge rule, from the entries whose declared grid is finished
    (WANTED_RUNS(task, arm): the runs a finished entry has; None: whatever it has). One step, once: a run chosen
    at the step itself asks for nothing more."""
    declared = sorted(float(lr) for lr in learning_rates)
    steps = sorted(float(s) for s in edge_steps)
    if not declared or len(steps) != 2:
        return {}
    out = {}
    for (task, arm), by_lr in grid.items():
        if not set(declared) <= set(complete_rates(by_lr)):
            continue
        if wanted_runs is not None and not wanted_runs(task, arm) <= set(by_lr[declared[0]]):
            continue
        chosen, _ = select({lr: by_lr[lr] for lr in declared}, "held-out")
        extra = tuple(
            step for edge, step in ((declared[0], steps[0]), (declared[-1], steps[1])) if edge in chosen.values()
        )
        if extra:
            out[(arm, task)] = extra
    return out
