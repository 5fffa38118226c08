"""A study folder's results.jsonl -> report.md, study.png and the transfer line.

    vega-study report results/study-cpu          # prints the effect, claim and transfer lines

Selection (selection.py): each run (pretraining seed, fine-tuning seed) of an arm is reported at the learning rate
chosen by the *other* runs of that arm and task (leave-one-run-out), on its last checkpoint; `--selection dev`
gives the first cpu study's rule (best median over the reported seeds, per-epoch best checkpoint) to compare. The
average is over the tasks marked `in_average` (WNLI, and the tasks declared at their majority-class floor, are
reported, not averaged). Each arm is compared with its declared baseline (`Arm.compare_with` in plan.py) on the
per-run task averages, over the averaged tasks or the arm's own `only_tasks`; an arm with several pretraining runs
enters as one value per pretraining run (the mean over its fine-tuning seeds), so the spread between pretraining
runs is in the standard error. Each comparison: the difference, its standard error, Welch's t, its degrees of
freedom and the two-sided p-value (stats.py); the claims of a report are one family, Holm-corrected at 5%
(stats.ALPHA), and the per-task verdicts of the claims another. One line per comparison, `effect ARM-vs-BASELINE
...`, one `claim ...` line per claim, the transfer line `transfer rtd_ternary-vs-random ... p_holm=<p>` last.
"""

import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from vega_toolkit.data.noising import label_prior_bits
from vega_toolkit.study.anchors import ANCHORS_FILE, anchors  # noqa: F401
from vega_toolkit.study.pretrain_lr import (
    at_label_prior,
    choose,
    chosen_pretrain_lrs,
    grid_runs,
    heldout_loss,
    validation_phases,
)
from vega_toolkit.study.runner import STUDY_FILE, expand_predictions, newest_records, read_results
from vega_toolkit.study.selection import (
    RULES,
    Run,
    chosen_rates,
    last_checkpoint_entries,
    run_label,
    score_grid,
    select,
)
from vega_toolkit.study.stats import ALPHA, holm, paired_bootstrap, verdict, welch

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.md"  # the selected-points table and the transfer lines: what docs/results.md quotes
FIGURE_FILE = "study.png"
HEADLINE = (
    "rtd_ternary",
    "random",
)  # the transfer line README.md and docs/results.md quote (does pretraining help?), printed last
NOT_MEASURED = (
    "MNLI initialisation (the recipes start RTE, MRPC and STS-B from the MNLI model) is not measured as "
    "such: MNLI is not in the GLUE data of this study. Arm `intermediate_task` measures the same mechanism "
    "with a task that is present (the scale's `intermediate_task`)."
)
BOOTSTRAP_RESAMPLES = 1000


_MODEL_FOLDER = re.compile(r"/models/(?P<arm>[^/\s]+)-(?P<key>[0-9a-f]{12})/")


def current_records(records: list[dict], scale: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(current, superseded): the newest record of each cell name, only fine-tunings of the model folders the
    newest pretraining records of their names produced and, given the declared SCALE (study.json), only
    fine-tunings at its learning rates (and the edge rule's steps) and seeds, from the pretraining learning rate the
    rule of pretrain_lr.py chose for the arm. A changed configuration (e.g. a longer pretraining budget, another
    learning-rate grid) leaves its predecessors in results.jsonl as history, but no report mixes them with the cells
    that replace them."""
    newest = newest_records(records)
    scale = scale or {}
    default_lr = float(scale.get("pretrain", {}).get("lr", 0.0))
    chosen = chosen_pretrain_lrs(list(newest.values()), tuple(scale.get("pretrain_lr_grid", ())), default_lr)
    models = defaultdict(set)  # arm -> keys of its current pretraining runs (seeds, learning rates, budgets)
    for r in newest.values():
        if r.get("kind") == "pretrain":
            models[r["arm"]].add(r["key"])
    not_chosen = {  # pretraining runs at a rate the rule did not choose: read by the rate table, fine-tuned by none
        r["key"]
        for r in newest.values()
        if r.get("kind") == "pretrain"
        and r["arm"] in chosen
        and float(r.get("pretrain_lr", default_lr)) != chosen[r["arm"]]
    }
    lrs = set(map(float, scale.get("learning_rates", []))) | set(map(float, scale.get("lr_edge_steps", [])))
    seeds = set(scale.get("seeds", []))

    def declared(r: dict) -> bool:
        if r.get("kind") != "finetune":
            return True
        return (not lrs or float(r["lr"]) in lrs) and (not seeds or r["seed"] in seeds)

    current = [
        r
        for r in newest.values()
        if declared(r)
        and all(
            m["key"] in models.get(m["arm"], {m["key"]}) and (r.get("kind") == "pretrain" or m["key"] not in not_chosen)
            for m in _MODEL_FOLDER.finditer(" ".join(r.get("commands", [])))
        )
    ]
    kept = {id(r) for r in current}
    return current, [r for r in records if id(r) not in kept]


def load_study(out: Path) -> tuple[dict, list[dict], list[dict]]:
    """(study.json's content or {}, current records, superseded records) of a study folder."""
    study = json.loads((out / STUDY_FILE).read_text()) if (out / STUDY_FILE).exists() else {}
    return (study, *current_records(read_results(out), study.get("scale", {})))


def _grid(records: list[dict], rule: str = "held-out"):
    """(task, arm) -> lr -> run -> score (selection.score_grid)."""
    return score_grid(records, rule)


def _wanted_runs(scale: dict, arm: str, last: bool) -> set:
    """The runs a finished entry of ARM has: every seed, of every pretraining run the scale declares for the arm
    (for entries scored on their last checkpoint: the cells of the first cpu study had one pretraining run)."""
    declared = _declared(arm)
    pretrain = (
        dict((a, tuple(s)) for a, s in scale.get("pretrain_seeds", [])).get(arm, (1,))
        if last and declared and declared.pretrained
        else (1,)
    )
    return {(int(p), int(s)) for p in pretrain for s in scale.get("seeds", [])}


def finished_entries(grid, learning_rates, seeds, wanted=None):
    """The (task, arm) entries of `grid` with every planned cell (each learning rate x each run) finished. An entry
    still running would choose its learning rate among those run so far, and a run that only one side has would
    leave the other's average out of step: the comparisons use finished entries only. WANTED(task, arm): the runs
    of a finished entry (default: each seed of pretraining run 1). Without a declared grid every entry counts."""
    if not learning_rates or not seeds:
        return grid
    lrs = {float(lr) for lr in learning_rates}
    wanted = wanted or (lambda task, arm: {(1, int(s)) for s in seeds})
    return {
        key: by_lr
        for key, by_lr in grid.items()
        if lrs <= set(by_lr) and all(wanted(*key) <= set(by_lr[lr]) for lr in lrs)
    }


def selected(grid, task: str, arm: str, rule: str = "held-out") -> dict[Run, float]:
    """{run: score at its chosen learning rate} of one entry."""
    return select(grid[(task, arm)], rule)[1]


def units(scores: dict[Run, float]) -> list[float]:
    """The independent values of an arm: one per pretraining run (the mean over its fine-tuning seeds) when the
    arm has several, else one per fine-tuning seed."""
    by_pretraining = defaultdict(list)
    for (pretraining, _), value in sorted(scores.items()):
        by_pretraining[pretraining].append(value)
    if len(by_pretraining) > 1:
        return [statistics.fmean(v) for _, v in sorted(by_pretraining.items())]
    return [v for _, v in sorted(scores.items())]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def run_averages(grid, tasks: list[str], arm: str, rule: str = "held-out") -> dict[Run, float]:
    """ARM's average over TASKS of each run's score at its chosen learning rate (runs every task has)."""
    points = {t: selected(grid, t, arm, rule) for t in tasks}
    runs = sorted(set.intersection(*(set(p) for p in points.values())))
    return {run: statistics.fmean(points[t][run] for t in tasks) for run in runs}


def seed_averages(grid, tasks: list[str], arm: str, rule: str = "held-out") -> list[float]:
    return list(run_averages(grid, tasks, arm, rule).values())


def compare(grid, tasks: list[str], arm: str, baseline: str, rule: str = "held-out") -> dict | None:
    """Per-run task averages of ARM and BASELINE at their chosen points, their difference, its standard error and
    Welch's test (stats.welch) on the arms' independent values (units)."""
    tasks = [t for t in tasks if (t, arm) in grid and (t, baseline) in grid]
    if not tasks:
        return None
    a, b = run_averages(grid, tasks, arm, rule), run_averages(grid, tasks, baseline, rule)
    if not a or not b:
        return None
    test = welch(units(a), units(b))
    better = sum(
        statistics.median(selected(grid, t, arm, rule).values())
        > statistics.median(selected(grid, t, baseline, rule).values())
        for t in tasks
    )
    return {
        "arm": arm,
        "baseline": baseline,
        "delta": test["difference"],
        "se": test["se"],
        "test": test,
        "better": better,
        "tasks": len(tasks),
        "task_names": tasks,
        "arm_avgs": list(a.values()),
        "baseline_avgs": list(b.values()),
        "arm_runs": a,
        "baseline_runs": b,
    }


def task_test(grid, task: str, arm: str, baseline: str, rule: str = "held-out") -> dict[str, float]:
    """ARM minus BASELINE on one task at their chosen learning rates: stats.welch on the arms' units."""
    return welch(units(selected(grid, task, arm, rule)), units(selected(grid, task, baseline, rule)))


def task_effect(grid, task: str, arm: str, baseline: str, rule: str = "held-out") -> tuple[float, float]:
    """The difference of the means and its Welch standard error (NaN with a single value on either side)."""
    test = task_test(grid, task, arm, baseline, rule)
    return test["difference"], test["se"]


def _fmt_p(p: float) -> str:
    return "nan" if p != p else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _fmt_effect(test: dict[str, float]) -> str:
    delta, se = test["difference"], test["se"]
    if se != se:
        return f"{delta:+.2f} (one run)"
    if test["p"] != test["p"]:
        return f"{delta:+.2f} ± {se:.2f}"
    return f"{delta:+.2f} ± {se:.2f} (t {test['t']:+.1f}, df {test['df']:.1f}, p {_fmt_p(test['p'])})"


def _declared(arm: str):
    from vega_toolkit.study.plan import ARMS

    return ARMS.get(arm)


def baseline_of(arm: str) -> str:
    declared = _declared(arm)
    return declared.compare_with if declared else "random"


def _stats_fields(c: dict) -> str:
    t = c["test"]
    return f"t={t['t']:+.2f} df={t['df']:.1f} p={_fmt_p(t['p'])}" if t["t"] == t["t"] else "t=nan df=nan p=nan"


def effect_line(c: dict) -> str:
    ratio = f"{c['delta'] / c['se']:+.1f}" if c["se"] == c["se"] and c["se"] > 0 else "nan"  # nan: one seed
    return (
        f"effect {c['arm']}-vs-{c['baseline']} avg_delta={c['delta']:+.2f} se={c['se']:.2f} "
        f"delta_over_se={ratio} tasks_better={c['better']}/{c['tasks']} p_holm={_fmt_p(c.get('p_holm', math.nan))}"
    )


def claim_line(c: dict) -> str:
    return (
        f"claim {c['arm']}-vs-{c['baseline']} difference={c['delta']:+.2f} se={c['se']:.2f} {_stats_fields(c)} "
        f"p_holm={_fmt_p(c['p_holm'])} verdict={c['verdict'].split(' (')[0].replace(' ', '_')}"
    )


def claim_verdict(c: dict, sign: int) -> str:
    """The verdict on a claim from its comparison C (task averages, with its Holm-adjusted p) in direction SIGN."""
    if c["se"] != c["se"]:
        return "no verdict (one run: no standard error)"
    if c["test"]["p"] != c["test"]["p"]:
        return "no verdict (no spread on either side: nothing to test)"
    return verdict(c["delta"], c["p_holm"], sign) or f"not resolved (p_holm {_fmt_p(c['p_holm'])} ≥ {ALPHA:g})"


def transfer_line(c: dict) -> str:
    return (
        f"transfer {c['arm']}-vs-{c['baseline']} avg_delta={c['delta']:+.2f} se={c['se']:.2f} "
        f"tasks_better={c['better']}/{c['tasks']} p_holm={_fmt_p(c.get('p_holm', math.nan))}"
    )


def _fmt(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{statistics.median(values):.2f} ({mean:.2f} ± {std:.2f}, n={len(values)})"


def _predictions_of(records: list[dict]) -> dict[tuple[str, str, float, Run], object]:
    return {
        (r["task"], r["arm"], float(r["lr"]), (int(r.get("pretrain_seed", 1)), int(r["seed"]))): next(
            iter(r["dev_predictions"].values())
        )
        for r in records
        if r.get("kind") == "finetune" and r.get("dev_predictions") and not r.get("pretrain_updates")
    }


def _bootstrap(c: dict, grid, predictions, found: dict, rule: str) -> list[float] | None:
    """The paired bootstrap interval of comparison C, or None when a selected run lacks dev predictions."""
    from vega_toolkit.data.glue_tasks import get_glue_task
    from vega_toolkit.metrics.glue_metrics import row_scores

    labels, sides = {}, []
    for arm, runs in ((c["arm"], c["arm_runs"]), (c["baseline"], c["baseline_runs"])):
        side = []
        for run in runs:
            preds = {}
            for task in c["task_names"]:
                chosen, _ = select(grid[(task, arm)], rule)
                kept = predictions.get((task, arm, chosen[run], run))
                gold = (found.get("dev_labels") or {}).get(task)
                if kept is None or gold is None:
                    return None
                glue = get_glue_task(task)
                cast = np.float64 if glue.is_regression else str
                preds[task] = np.asarray([cast(x) for x in expand_predictions(kept, glue.labels)])
                labels[task] = np.asarray([cast(x) for x in expand_predictions(gold, glue.labels)])
            side.append(preds)
        sides.append(side)

    return paired_bootstrap(sides[0], sides[1], labels, row_scores, BOOTSTRAP_RESAMPLES)


_SHOWN_PRETRAIN_METRICS = (
    "loss",
    "rtd_loss",
    "contrastive_acc",
    "rtd_acc",
    "orig_recall",
    "shuf_recall",
    "repl_recall",
    "ppl",
)


def _pretraining_section(pretrain: list[dict]) -> list[str]:
    if not pretrain:
        return []
    lines = [
        "## Pretraining (held-out metrics at the last validation)",
        "",
        "| arm | updates | metrics | wall |",
        "|---|---|---|---|",
    ]
    for r in pretrain:
        phases = validation_phases(r.get("valid_curve") or [])
        last = phases[-1][-1] if phases else {}
        shown = ", ".join(f"{k} {last[k]:g}" for k in _SHOWN_PRETRAIN_METRICS if k in last)
        if "shuf_frac" in last and "repl_frac" in last:  # an RTD arm: how far it got from learning nothing
            prior = label_prior_bits(last["shuf_frac"], last["repl_frac"])
            shown += f"; label prior {prior:.3f}" + (
                " (**at the prior: the objective learnt nothing**)" if at_label_prior(last) else ""
            )
        updates = " + ".join(f"{phase[-1]['num_updates']:g}" for phase in phases) or "?"
        lines.append(f"| `{_run_name(r)}` | {updates} | {shown} | {r['wall_s'] / 60:.1f} min |")
    lines += [
        "",
        "## Pretraining curves (held-out loss at each validation, update: loss; the RTD part of the loss in "
        "a contrastive phase)",
        "",
    ]
    for r in pretrain:
        phases = validation_phases(r.get("valid_curve") or [])
        shown = [
            ("phase 2: " if i and not j else "") + f"{p['num_updates']:g}: {p.get('rtd_loss', p['loss']):.3f}"
            for i, phase in enumerate(phases)
            for j, p in enumerate(phase)
            if "loss" in p
        ]
        lines.append(f"- `{_run_name(r)}`: " + (", ".join(shown) or "no validation"))
    return lines + [""]


def _run_name(record: dict) -> str:
    """A pretraining run as the report names it: its arm, and the seed, learning rate or budget that differ."""
    return record.get("name", record["arm"]).replace("pretrain ", "", 1)


def _pretrain_lr_section(pretrain: list[dict], scale: dict) -> list[str]:
    """Each objective's pretraining learning rates (seed 1, the scale's budget) and the rate the rule of
    pretrain_lr.py chooses; GLUE dev takes no part."""
    grid = [float(lr) for lr in scale.get("pretrain_lr_grid", [])]
    budget = scale.get("pretrain", {})
    if len(grid) < 2 or not budget:
        return []
    default = float(budget["lr"])
    lines = [
        "## Pretraining learning rate (held-out pretraining loss at the last validation, seed 1)",
        "",
        f"Rule, declared before these runs: each objective pretrains at the rate of the grid "
        f"({', '.join(f'{lr:g}' for lr in grid)}) with the lowest held-out loss, a run at its label prior "
        f"excluded (every rate at the prior: the scale's {default:g}). The arm's other pretraining seeds, its "
        f"fine-tunings and its compute axis start from the chosen rate once its grid has finished; fine-tunings "
        f"of a rate the rule did not choose are superseded.",
        "",
        "| arm | " + " | ".join(f"lr {lr:g}" for lr in grid) + " | the rule chooses |",
        "|---|" + "---|" * (len(grid) + 1),
    ]
    for arm, by_lr in grid_runs(pretrain, default).items():
        losses = {lr: heldout_loss(by_lr[lr]) for lr in grid if lr in by_lr}
        cells = [
            ("—" if lr not in losses else f"{losses[lr][0]:.3f}" + (" (at prior)" if losses[lr][1] else ""))
            if lr not in losses or losses[lr][0] is not None
            else "no validation"
            for lr in grid
        ]
        if len(losses) < len(grid):
            chosen = "— (grid not finished: its fine-tunings wait)"
        elif all(prior or loss is None for loss, prior in losses.values()):
            chosen = f"{default:g} (every rate at the prior)"
        else:
            chosen = f"{choose(losses, default):g}"
        lines.append(f"| `{arm}` | " + " | ".join(cells) + f" | {chosen} |")
    return lines + [""]


def write_report(out: Path, baseline: str | None = None, rule: str = "held-out", glue_dir: str | None = None) -> str:
    """BASELINE: compare every arm with this one instead of each arm's declared baseline. RULE: "held-out" (the
    learning rate chosen apart from the reported runs, last checkpoints) or "dev" (the first cpu study's rule, to
    compare). GLUE_DIR: the GLUE files of the anchors (default: study.json's, or OUT/anchors.json)."""
    if rule not in RULES:
        raise ValueError(f"--selection {rule!r}: choose one of {', '.join(RULES)}")
    out = Path(out)
    study, records, superseded = load_study(out)
    scale = study.get("scale", {})
    if not records:
        raise FileNotFoundError(f"{out}: no results.jsonl with finished cells")
    task_plans = {t["name"]: t for t in scale.get("tasks", [])}
    task_order = list(task_plans) or sorted({r["task"] for r in records if "task" in r})
    averaged = [t for t, plan in task_plans.items() if plan.get("in_average", True)] or task_order
    grid = _grid(records, rule)
    last_entries = last_checkpoint_entries(records) if rule == "held-out" else set()
    from vega_toolkit.study.plan import ALL_ARMS

    in_grid = {k[1] for k in grid}  # every arm with results, in the study's order, then the declaration order
    arms = [a for a in dict.fromkeys([*(study.get("arms") or scale.get("arms", [])), *ALL_ARMS]) if a in in_grid]
    arms += sorted(in_grid - set(arms))
    found = anchors(out, glue_dir or study.get("paths", {}).get("glue"), task_order)
    lines = [f"# vega-study report: {scale.get('name', '?')} scale", ""]
    commits = sorted({r.get("commit", "?") for r in records})
    planned, finished = study.get("cells"), len({r["key"] for r in records})
    incomplete = []
    if planned and finished < planned:
        incomplete = [
            f"**Incomplete: {finished} of {planned} cells finished.** Resume with the same `vega-study run` "
            f"command; averages and differences below cover only the tasks both arms have finished (every "
            f"learning rate and run).",
            "",
        ]
    lines += incomplete
    lines += [
        f"{len(records)} finished cells, "
        f"{sum(r.get('wall_s', 0) for r in records if not r.get('alias_of')) / 3600:.2f} h of cell time; "
        f"commit(s): {', '.join(commits)}. Every cell's exact commands are in results.jsonl.",
        "",
    ]
    if superseded:
        lines += [
            f"{len(superseded)} earlier records of a changed configuration (e.g. a shorter pretraining, "
            f"another learning-rate grid) are superseded: they stay in results.jsonl as history and enter no "
            f"table below.",
            "",
        ]
    if scale:
        lines += [
            f"Scale: {scale.get('about', '')}. Architecture `{scale.get('arch')}`; fine-tuning batch "
            f"{scale.get('batch_size')}, learning rates {', '.join(map(str, scale.get('learning_rates', [])))}, "
            f"seeds {', '.join(map(str, scale.get('seeds', [])))}.",
            "",
        ]
    pretrain = [r for r in records if r.get("kind") == "pretrain"]
    lines += _pretraining_section(pretrain)
    lines += _pretrain_lr_section(pretrain, scale)
    if any(_declared(a) and (_declared(a).starts_from or _declared(a).compare_with != "random") for a in arms):
        lines += [
            "## Arms (registry names: vega_toolkit/study/plan.py ARMS)",
            "",
            "| arm | compared with | what it is |",
            "|---|---|---|",
        ]
        for arm in arms:
            declared = _declared(arm)
            lines.append(
                f"| `{arm}` | {'—' if arm == baseline_of(arm) else f'`{baseline_of(arm)}`'} | "
                f"{declared.about if declared else ''} |"
            )
        lines += ["", NOT_MEASURED, ""]
    summary_start = len(lines)
    if rule == "held-out":
        how = (
            "each run (pretraining seed, fine-tuning seed) at the learning rate the arm's *other* runs of the task "
            "score best (median), on its last checkpoint; † marks an entry of the first cpu study's cells, scored "
            "on the per-epoch best checkpoint on dev"
        )
    else:
        how = "the learning rate with the best median over the reported seeds, on the per-epoch best checkpoint on dev"
    floors = [t for t, plan in task_plans.items() if plan.get("floor")]
    lines += [
        "## Dev scores at the selected learning rates (median over runs; mean ± std, n)",
        "",
        f"Selection: {how}. Floors, without fine-tuning: the majority class of the training labels, and on "
        f"STS-B the word overlap (Jaccard) of each pair against the gold scores."
        + (
            f" Reported, not averaged, as declared before these cells ran: {', '.join(floors)} "
            f"({task_plans[floors[0]]['floor']}), and WNLI (its dev set is adversarial to its training set)."
            if floors
            else ""
        ),
        "",
        "| task | " + " | ".join(f"`{a}`" for a in arms) + " | floor: majority class | floor: word overlap |",
        "|---|" + "---|" * (len(arms) + 2),
    ]

    def task_label(task):
        return task + ("" if task in averaged else " (at floor, not averaged)" if task in floors else " (not averaged)")

    for task in task_order:
        cells = []
        for arm in arms:
            if (task, arm) not in grid:
                cells.append("—")
                continue
            chosen, scores = select(grid[(task, arm)], rule)
            dagger = "†" if rule == "held-out" and (task, arm) not in last_entries else ""
            cells.append(f"{_fmt(list(scores.values()))} @ {chosen_rates(chosen)}{dagger}")
        majority = (found.get("majority") or {}).get(task)
        overlap = (found.get("overlap") or {}).get(task)
        cells += [f"{floor:.2f}" if floor is not None else "—" for floor in (majority, overlap)]
        lines.append(f"| {task_label(task)} | " + " | ".join(cells) + " |")
    comparisons = []
    lrs, seeds = scale.get("learning_rates"), scale.get("seeds")
    finished_grid = finished_entries(
        grid, lrs, seeds, lambda task, arm: _wanted_runs(scale, arm, (task, arm) in last_entries)
    )
    for arm in arms:
        base = baseline or baseline_of(arm)
        if arm == base or base not in arms:
            continue
        declared = _declared(arm)
        own = [t for t in task_order if declared and t in declared.only_tasks]
        c = compare(finished_grid, own or averaged, arm, base, rule)
        if c:
            c["own_tasks"] = bool(own)
            comparisons.append(c)
    # the average row: each arm over the averaged tasks every pretraining arm has finished
    full = [a for a in arms if not (_declared(a) and (_declared(a).starts_from or _declared(a).only_tasks))] or arms
    used = [t for t in averaged if all((t, a) in finished_grid for a in full)]
    avg_cells = [
        _fmt(seed_averages(finished_grid, used, arm, rule))
        if used and all((t, arm) in finished_grid for t in used)
        else "—"
        for arm in arms
    ]
    lines += [f"| **average** ({', '.join(used)}) | " + " | ".join(avg_cells) + " | | |", ""]
    claims = [(c, _declared(c["arm"])) for c in comparisons if not baseline]
    claims = [(c, declared) for c, declared in claims if declared and declared.claim]
    # the claims of the report are one family: Holm over their p-values; every other comparison gets none
    for (c, _), p in zip(claims, holm([c["test"]["p"] for c, _ in claims]), strict=True):
        c["p_holm"] = p
    for c, declared in claims:
        c["verdict"] = claim_verdict(c, declared.claim_sign)
    if comparisons:
        lines += ["## Transfer", ""]
        for c in comparisons:
            on = f" on {', '.join(c['task_names'])}" if c["own_tasks"] else ""
            t = c["test"]
            if c["se"] == c["se"]:  # not NaN: at least two values on each side
                shown = (
                    f"t {t['t']:+.2f}, df {t['df']:.1f}, p {_fmt_p(t['p'])}"
                    if t["p"] == t["p"]
                    else "no spread: no test"
                )
                lines.append(
                    f"- `{c['arm']}` vs `{c['baseline']}`{on}: average {c['delta']:+.2f} points, standard "
                    f"error {c['se']:.2f} ({shown}); better on {c['better']} of {c['tasks']} tasks."
                )
            else:
                lines.append(
                    f"- `{c['arm']}` vs `{c['baseline']}`{on}: average {c['delta']:+.2f} points (one run: "
                    f"no standard error); better on {c['better']} of {c['tasks']} tasks."
                )
        lines += [
            "",
            "Per task (difference of the means at the selected learning rates ± its standard error; "
            "Welch's t, degrees of freedom, two-sided p, uncorrected):",
            "",
            "| task | " + " | ".join(f"`{c['arm']}` − `{c['baseline']}`" for c in comparisons) + " |",
            "|---|" + "---|" * len(comparisons),
        ]
        for task in task_order:
            cells = [
                _fmt_effect(task_test(finished_grid, task, c["arm"], c["baseline"], rule))
                if (task, c["arm"]) in finished_grid and (task, c["baseline"]) in finished_grid
                else "—"
                for c in comparisons
            ]
            if any(cell != "—" for cell in cells):
                lines.append(f"| {task_label(task)} | " + " | ".join(cells) + " |")
        lines.append("")
    if claims:
        predictions = _predictions_of(records)
        # the per-task verdicts of every claim are a second family: Holm over all (claim, task) p-values
        per_task = [
            (c, task, task_test(finished_grid, task, c["arm"], c["baseline"], rule))
            for c, _ in claims
            for task in c["task_names"]
        ]
        for (_, _, test), p in zip(per_task, holm([test["p"] for _, _, test in per_task]), strict=True):
            test["p_holm"] = p
        lines += [
            "## The paper's claims at this scale",
            "",
            f"Each claim is tested by its arm against the arm it names, on the task average above, by Welch's "
            f"t-test on the arms' independent values (one per fine-tuning seed; one per pretraining run where "
            f"an arm has several). The family is the {len(claims)} claims of this table: a claim is reproduced "
            f"or contradicted when its Holm-corrected p-value is below {ALPHA:g} and the difference is in or "
            f"against the claimed direction, and not resolved otherwise. The per-task verdicts are a second "
            f"family, every claim × task of the table, by the same rule. The standard error counts seeds and "
            f"pretraining runs only; the dev-sampling interval (95%, paired bootstrap over dev examples and "
            f"runs, {BOOTSTRAP_RESAMPLES} resamples) also counts the dev set's own sampling, and needs every "
            f"selected cell's dev predictions (cells of the first cpu study have none).",
            "",
            "| claim | arms | difference | se | t | df | p | p_holm | verdict | dev-sampling interval | "
            "tasks where it holds / fails (Holm, per task) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c, declared in claims:
            on = f" on {', '.join(c['task_names'])}" if c["own_tasks"] else ""
            held = [
                task
                for cc, task, test in per_task
                if cc is c and verdict(test["difference"], test["p_holm"], declared.claim_sign) == "reproduced"
            ]
            failed = [
                task
                for cc, task, test in per_task
                if cc is c and verdict(test["difference"], test["p_holm"], declared.claim_sign) == "contradicted"
            ]
            interval = _bootstrap(c, finished_grid, predictions, found, rule)
            interval = f"[{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else "lacking (no dev predictions)"
            t = c["test"]
            lines.append(
                f"| {declared.claim} | `{c['arm']}` vs `{c['baseline']}`{on} | {c['delta']:+.2f} | "
                f"{c['se']:.2f} | {t['t']:+.2f} | {t['df']:.1f} | {_fmt_p(t['p'])} | {_fmt_p(c['p_holm'])} | "
                f"{c['verdict']} | "
                f"{interval} | "
                f"{', '.join(held) or 'none'} / {', '.join(failed) or 'none'} |"
            )
        lines += ["", f"Cannot be tested here: {NOT_MEASURED}", ""]
    summary = incomplete + lines[summary_start:]
    lines += [
        "## Whole grid (dev score per run: sN = fine-tuning seed N of pretraining run 1, pPsN of run P)",
        "",
        "| task | arm | lr | scores by run | median |",
        "|---|---|---|---|---|",
    ]
    for task in task_order:
        for arm in arms:
            for lr, runs in sorted(grid.get((task, arm), {}).items()):
                shown = ", ".join(f"{run_label(run)}: {v:.2f}" for run, v in sorted(runs.items()))
                lines.append(f"| {task} | `{arm}` | {lr:g} | {shown} | {statistics.median(runs.values()):.2f} |")
    lines.append("")
    # the first rule's report, kept to compare, never overwrites the study's own (nor the results page's source)
    suffix = "" if rule == "held-out" else f"-{rule}-selected"
    report_file, summary_file = (f"{Path(name).stem}{suffix}.md" for name in (REPORT_FILE, SUMMARY_FILE))
    figure = _figure(out, grid, task_order, arms, rule, f"{Path(FIGURE_FILE).stem}{suffix}.png")
    if figure:
        lines += [f"![per-task seed scores]({figure.name})", ""]
    (out / report_file).write_text("\n".join(lines), encoding="utf-8")
    (out / summary_file).write_text("\n".join(summary).replace("## ", "#### "), encoding="utf-8")
    comparisons.sort(key=lambda c: (c["arm"], c["baseline"]) == HEADLINE)
    printed = [f"wrote {out / report_file}" + (f" and {figure}" if figure else "")]
    printed += [claim_line(c) for c, _ in claims]
    printed += [transfer_line(c) if (c["arm"], c["baseline"]) == HEADLINE else effect_line(c) for c in comparisons]
    return "\n".join(printed)


def _figure(
    out: Path, grid, tasks: list[str], arms: list[str], rule: str = "held-out", name: str = FIGURE_FILE
) -> Path | None:
    """One panel per task: each arm's seed scores at its best learning rate as dots, the median as a bar."""
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's import leaves the root logger at DEBUG
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in tasks if any((t, a) in grid for a in arms)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, arm in enumerate(arms):
            if (task, arm) not in grid:
                continue
            values = list(select(grid[(task, arm)], rule)[1].values())
            ax.scatter([i] * len(values), values, s=18, alpha=0.8)
            ax.hlines(statistics.median(values), i - 0.25, i + 0.25, colors="k")
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(arms, rotation=30, ha="right", fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def readme_block(out: Path) -> str:
    """The generated block of a study folder, between `<!-- vega-study:NAME -->` and `<!-- /vega-study:NAME -->`
    (docs/results.md holds the cpu study's)."""
    name = Path(out).name
    body = (Path(out) / SUMMARY_FILE).read_text(encoding="utf-8").strip()
    return f"<!-- vega-study:{name} -->\n{body}\n<!-- /vega-study:{name} -->"


def update_readme(readme: Path, out: Path) -> bool:
    """Replace the study's block in a page such as docs/results.md (generated from its summary, never edited by
    hand); False if absent."""
    import re

    name = re.escape(Path(out).name)
    text = Path(readme).read_text(encoding="utf-8")
    pattern = re.compile(rf"<!-- vega-study:{name} -->.*?<!-- /vega-study:{name} -->", re.S)
    if not pattern.search(text):
        return False
    Path(readme).write_text(pattern.sub(lambda _: readme_block(out), text), encoding="utf-8")
    return True
