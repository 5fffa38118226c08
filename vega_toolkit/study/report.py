"""A study folder's results.jsonl -> report.md, study.png and the transfer line.

Selection rule (as GLUE papers report): for each task and arm, the learning rate with the best median dev score over
seeds; that point's median, mean ± std and n are reported, and the whole grid is listed below it. The GLUE-style
average is over the tasks marked `in_average` (WNLI is reported, not averaged). Each arm is compared with its
declared baseline (`Arm.compare_with` in plan.py: random for rtd_ternary, rtd_ternary for every ablation) on the
per-seed task averages at each arm's selected points, over the averaged tasks or the arm's own `only_tasks`:
avg_delta is the difference of their means and se its standard error (Welch: sqrt(s1²/n1 + s2²/n2)). One line per
comparison, `effect ARM-vs-BASELINE ...`, the transfer line `transfer rtd_ternary-vs-random ...` last.
"""
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from vega_toolkit.data.noising import label_prior_bits
from vega_toolkit.study.runner import STUDY_FILE, read_results

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.md"  # the selected-points table and the transfer lines: what the README quotes
FIGURE_FILE = "study.png"
HEADLINE = ("rtd_ternary", "random")  # the transfer line the issue tracker and the README quote, printed last
NOT_MEASURED = ("MNLI initialisation (the recipes start RTE, MRPC and STS-B from the MNLI model) is not measured as "
                "such: MNLI is not in the GLUE data of this study. Arm `intermediate_task` measures the same mechanism "
                "with a task that is present (the scale's `intermediate_task`).")


_MODEL_FOLDER = re.compile(r"/models/(?P<arm>[^/\s]+)-(?P<key>[0-9a-f]{12})/")


def current_records(records: List[Dict], scale: Optional[Dict] = None) -> Tuple[List[Dict], List[Dict]]:
    """(current, superseded): the newest record of each cell name, only fine-tunings of the model folders the
    newest pretraining records produced and, given the declared SCALE (study.json), only fine-tunings at its
    learning rates and seeds. A changed configuration (e.g. a longer pretraining budget, another learning-rate grid)
    leaves its predecessors in results.jsonl as history, but no report mixes them with the cells that replace them."""
    newest: Dict[str, Dict] = {}
    for r in records:
        newest[r.get("name", r["key"])] = r
    models = {r["arm"]: r["key"] for r in newest.values() if r.get("kind") == "pretrain"}
    lrs, seeds = set(map(float, (scale or {}).get("learning_rates", []))), set((scale or {}).get("seeds", []))

    def declared(r: Dict) -> bool:
        if r.get("kind") != "finetune":
            return True
        return (not lrs or float(r["lr"]) in lrs) and (not seeds or r["seed"] in seeds)

    current = [r for r in newest.values()
               if declared(r) and all(models.get(m["arm"], m["key"]) == m["key"]
                                      for m in _MODEL_FOLDER.finditer(" ".join(r.get("commands", []))))]
    kept = {id(r) for r in current}
    return current, [r for r in records if id(r) not in kept]


def load_study(out: Path) -> Tuple[Dict, List[Dict], List[Dict]]:
    """(study.json's content or {}, current records, superseded records) of a study folder."""
    study = json.loads((out / STUDY_FILE).read_text()) if (out / STUDY_FILE).exists() else {}
    return (study, *current_records(read_results(out), study.get("scale", {})))


def _grid(records: List[Dict]) -> Dict[Tuple[str, str], Dict[float, Dict[int, float]]]:
    """(task, arm) -> lr -> seed -> score, the newest record winning when a cell was re-run."""
    grid = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("kind") == "finetune":
            grid[(r["task"], r["arm"])][float(r["lr"])][int(r["seed"])] = float(r["score"])
    return grid


def finished_entries(grid, learning_rates, seeds):
    """The (task, arm) entries of `grid` with every planned cell (each learning rate x each seed) finished. An entry
    still running would choose its best learning rate among those run so far, and a seed that only one side has
    would leave the other's average out of step: the comparisons use finished entries only. Without a declared
    grid (no study.json) every entry counts."""
    if not learning_rates or not seeds:
        return grid
    lrs, wanted = {float(lr) for lr in learning_rates}, {int(s) for s in seeds}
    return {key: by_lr for key, by_lr in grid.items()
            if lrs <= set(by_lr) and all(wanted <= set(by_lr[lr]) for lr in lrs)}


def best_point(by_lr: Dict[float, Dict[int, float]]) -> Tuple[float, Dict[int, float]]:
    """The learning rate with the highest median over seeds (ties: the smaller learning rate)."""
    lr = max(sorted(by_lr), key=lambda x: statistics.median(by_lr[x].values()))
    return lr, by_lr[lr]


def _mean_std(values: List[float]) -> Tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def compare(grid, tasks: List[str], arm: str, baseline: str) -> Optional[Dict]:
    """Per-seed task averages of ARM and BASELINE at their selected points, their difference and its SE."""
    tasks = [t for t in tasks if (t, arm) in grid and (t, baseline) in grid]
    if not tasks:
        return None
    a, b = seed_averages(grid, tasks, arm), seed_averages(grid, tasks, baseline)
    if not a or not b:
        return None
    delta = statistics.fmean(a) - statistics.fmean(b)
    var = (statistics.variance(a) / len(a) if len(a) > 1 else float("nan")) + \
          (statistics.variance(b) / len(b) if len(b) > 1 else float("nan"))
    better = sum(statistics.median(best_point(grid[(t, arm)])[1].values())
                 > statistics.median(best_point(grid[(t, baseline)])[1].values()) for t in tasks)
    return {"arm": arm, "baseline": baseline, "delta": delta, "se": math.sqrt(var) if var == var else float("nan"),
            "better": better, "tasks": len(tasks), "task_names": tasks, "arm_avgs": a, "baseline_avgs": b}


def task_effect(grid, task: str, arm: str, baseline: str) -> Tuple[float, float]:
    """ARM minus BASELINE on one task at their selected learning rates: the difference of the seed means and its
    Welch standard error (NaN with a single seed on either side)."""
    a, b = (list(best_point(grid[(task, x)])[1].values()) for x in (arm, baseline))
    var = sum(statistics.variance(v) / len(v) if len(v) > 1 else float("nan") for v in (a, b))
    return statistics.fmean(a) - statistics.fmean(b), math.sqrt(var) if var == var else float("nan")


def _fmt_effect(delta: float, se: float) -> str:
    if se != se:
        return f"{delta:+.2f} (one seed)"
    return f"{delta:+.2f} ± {se:.2f}" + (f" ({delta / se:+.1f} SE)" if se > 0 else "")


def seed_averages(grid, tasks: List[str], arm: str) -> List[float]:
    """ARM's average over TASKS of each seed's score at the task's selected learning rate (seeds every task has)."""
    points = {t: best_point(grid[(t, arm)])[1] for t in tasks}
    seeds = sorted(set.intersection(*(set(p) for p in points.values())))
    return [statistics.fmean(points[t][s] for t in tasks) for s in seeds]


def _declared(arm: str):
    from vega_toolkit.study.plan import ARMS

    return ARMS.get(arm)


def baseline_of(arm: str) -> str:
    declared = _declared(arm)
    return declared.compare_with if declared else "random"


def effect_line(c: Dict) -> str:
    ratio = f"{c['delta'] / c['se']:+.1f}" if c["se"] == c["se"] and c["se"] > 0 else "nan"  # nan: one seed
    return (f"effect {c['arm']}-vs-{c['baseline']} avg_delta={c['delta']:+.2f} se={c['se']:.2f} "
            f"delta_over_se={ratio} tasks_better={c['better']}/{c['tasks']}")


CLAIM_SE = 2.0  # a difference of at least this many standard errors decides a claim either way


def _decided(delta: float, se: float, sign: int) -> Optional[str]:
    """"reproduced" / "contradicted" when DELTA is at least CLAIM_SE standard errors for / against the claimed
    direction SIGN; None when it is not, or when there is no standard error (one seed)."""
    if se != se or se <= 0:
        return None
    z = sign * delta / se
    return "reproduced" if z >= CLAIM_SE else "contradicted" if z <= -CLAIM_SE else None


def claim_verdict(c: Dict, sign: int) -> str:
    """The verdict on a claim from its comparison C (task averages) in the claimed direction SIGN."""
    if c["se"] != c["se"] or c["se"] <= 0:
        return "no verdict (one seed: no standard error)"
    return _decided(c["delta"], c["se"], sign) or f"not resolved (|difference| < {CLAIM_SE:g} SE)"


def _decided_tasks(grid, c: Dict, sign: int) -> Tuple[List[str], List[str]]:
    """The comparison's tasks whose own difference is at least CLAIM_SE standard errors for / against the claim."""
    verdicts = {task: _decided(*task_effect(grid, task, c["arm"], c["baseline"]), sign) for task in c["task_names"]}
    return ([t for t, v in verdicts.items() if v == "reproduced"],
            [t for t, v in verdicts.items() if v == "contradicted"])


def transfer_line(c: Dict) -> str:
    return (f"transfer {c['arm']}-vs-{c['baseline']} avg_delta={c['delta']:+.2f} se={c['se']:.2f} "
            f"tasks_better={c['better']}/{c['tasks']}")


def _fmt(values: List[float]) -> str:
    mean, std = _mean_std(values)
    return f"{statistics.median(values):.2f} ({mean:.2f} ± {std:.2f}, n={len(values)})"


def _phases(curve: List[Dict]) -> List[List[Dict]]:
    """A pretraining's validations split where the update count starts again (rtd_ternary+rtd_contrastive's second
    phase counts from 0)."""
    phases: List[List[Dict]] = []
    for point in curve:
        if not isinstance(point.get("num_updates"), float):
            continue
        if not phases or point["num_updates"] < phases[-1][-1]["num_updates"]:
            phases.append([])
        phases[-1].append(point)
    return phases


_SHOWN_PRETRAIN_METRICS = ("loss", "rtd_loss", "contrastive_acc", "rtd_acc", "orig_recall", "shuf_recall",
                           "repl_recall", "ppl")


def _pretraining_section(pretrain: List[Dict]) -> List[str]:
    if not pretrain:
        return []
    lines = ["## Pretraining (held-out metrics at the last validation)", "",
             "| arm | updates | metrics | wall |", "|---|---|---|---|"]
    for r in pretrain:
        phases = _phases(r.get("valid_curve") or [])
        last = phases[-1][-1] if phases else {}
        shown = ", ".join(f"{k} {last[k]:g}" for k in _SHOWN_PRETRAIN_METRICS if k in last)
        if "shuf_frac" in last and "repl_frac" in last:  # an RTD arm: how far it got from learning nothing
            prior = label_prior_bits(last["shuf_frac"], last["repl_frac"])
            shown += f"; label prior {prior:.3f}" + (
                " (**at the prior: the objective learnt nothing**)"
                if last.get("rtd_loss", last.get("loss", 0)) >= prior - 0.01 else "")
        updates = " + ".join(f"{phase[-1]['num_updates']:g}" for phase in phases) or "?"
        lines.append(f"| `{r['arm']}` | {updates} | {shown} | {r['wall_s'] / 60:.1f} min |")
    lines += ["", "## Pretraining curves (held-out loss at each validation, update: loss; the RTD part of the loss in "
                  "a contrastive phase)", ""]
    for r in pretrain:
        phases = _phases(r.get("valid_curve") or [])
        shown = [("phase 2: " if i and not j else "") + f"{p['num_updates']:g}: {p.get('rtd_loss', p['loss']):.3f}"
                 for i, phase in enumerate(phases) for j, p in enumerate(phase) if "loss" in p]
        lines.append(f"- `{r['arm']}`: " + (", ".join(shown) or "no validation"))
    return lines + [""]


def write_report(out: Path, baseline: Optional[str] = None) -> str:
    """BASELINE: compare every arm with this one instead of each arm's declared baseline."""
    out = Path(out)
    study, records, superseded = load_study(out)
    scale = study.get("scale", {})
    if not records:
        raise FileNotFoundError(f"{out}: no results.jsonl with finished cells")
    task_order = [t["name"] for t in scale.get("tasks", [])] or sorted({r["task"] for r in records if "task" in r})
    averaged = [t["name"] for t in scale.get("tasks", []) if t.get("in_average", True)] or task_order
    grid = _grid(records)
    from vega_toolkit.study.plan import ALL_ARMS

    in_grid = {k[1] for k in grid}  # every arm with results, in the study's order, then the declaration order
    arms = [a for a in dict.fromkeys([*(study.get("arms") or scale.get("arms", [])), *ALL_ARMS]) if a in in_grid]
    arms += sorted(in_grid - set(arms))
    lines = [f"# vega-study report: {scale.get('name', '?')} scale", ""]
    commits = sorted({r.get("commit", "?") for r in records})
    planned, finished = study.get("cells"), len({r["key"] for r in records})
    incomplete = []
    if planned and finished < planned:
        incomplete = [f"**Incomplete: {finished} of {planned} cells finished.** Resume with the same `vega-study run` "
                      f"command; averages and differences below cover only the tasks both arms have finished (every "
                      f"learning rate and seed).", ""]
    lines += incomplete
    lines += [f"{len(records)} finished cells, {sum(r.get('wall_s', 0) for r in records) / 3600:.2f} h of cell time; "
              f"commit(s): {', '.join(commits)}. Every cell's exact commands are in results.jsonl.", ""]
    if superseded:
        lines += [f"{len(superseded)} earlier records of a changed configuration (e.g. a shorter pretraining, "
                  f"another learning-rate grid) are superseded: they stay in results.jsonl as history and enter no "
                  f"table below.", ""]
    if scale:
        lines += [f"Scale: {scale.get('about', '')}. Architecture `{scale.get('arch')}`; fine-tuning batch "
                  f"{scale.get('batch_size')}, learning rates {', '.join(map(str, scale.get('learning_rates', [])))}, "
                  f"seeds {', '.join(map(str, scale.get('seeds', [])))}.", ""]
    lines += _pretraining_section([r for r in records if r.get("kind") == "pretrain"])
    if any(_declared(a) and (_declared(a).starts_from or _declared(a).compare_with != "random") for a in arms):
        lines += ["## Arms (registry names: vega_toolkit/study/plan.py ARMS)", "", "| arm | compared with | what it is |",
                  "|---|---|---|"]
        for arm in arms:
            declared = _declared(arm)
            lines.append(f"| `{arm}` | {'—' if arm == baseline_of(arm) else f'`{baseline_of(arm)}`'} | "
                         f"{declared.about if declared else ''} |")
        lines += ["", NOT_MEASURED, ""]
    summary_start = len(lines)
    lines += ["## Dev scores at each arm's best learning rate (median over seeds; mean ± std, n)", "",
              "| task | " + " | ".join(f"`{a}`" for a in arms) + " |", "|---|" + "---|" * len(arms)]
    for task in task_order:
        cells = []
        for arm in arms:
            if (task, arm) not in grid:
                cells.append("—")
                continue
            lr, seeds = best_point(grid[(task, arm)])
            cells.append(f"{_fmt(list(seeds.values()))} @ lr {lr:g}")
        suffix = "" if task in averaged else " (not averaged)"
        lines.append(f"| {task}{suffix} | " + " | ".join(cells) + " |")
    comparisons = []
    finished_grid = finished_entries(grid, scale.get("learning_rates"), scale.get("seeds"))
    for arm in arms:
        base = baseline or baseline_of(arm)
        if arm == base or base not in arms:
            continue
        declared = _declared(arm)
        own = [t for t in task_order if declared and t in declared.only_tasks]
        c = compare(finished_grid, own or averaged, arm, base)
        if c:
            c["own_tasks"] = bool(own)
            comparisons.append(c)
    # the average row: each arm over the averaged tasks every pretraining arm has finished
    full = [a for a in arms if not (_declared(a) and (_declared(a).starts_from or _declared(a).only_tasks))] or arms
    used = [t for t in averaged if all((t, a) in finished_grid for a in full)]
    avg_cells = [_fmt(seed_averages(finished_grid, used, arm))
                 if used and all((t, arm) in finished_grid for t in used) else "—" for arm in arms]
    lines += [f"| **average** ({', '.join(used)}) | " + " | ".join(avg_cells) + " |", ""]
    if comparisons:
        lines += ["## Transfer", ""]
        for c in comparisons:
            on = f" on {', '.join(c['task_names'])}" if c["own_tasks"] else ""
            if c["se"] == c["se"]:  # not NaN: at least two seeds on each side
                ratio = f" ({c['delta'] / c['se']:+.1f} SE)" if c["se"] > 0 else ""
                lines.append(f"- `{c['arm']}` vs `{c['baseline']}`{on}: average {c['delta']:+.2f} points, standard "
                             f"error {c['se']:.2f}{ratio}; better on {c['better']} of {c['tasks']} tasks.")
            else:
                lines.append(f"- `{c['arm']}` vs `{c['baseline']}`{on}: average {c['delta']:+.2f} points (one seed: "
                             f"no standard error); better on {c['better']} of {c['tasks']} tasks.")
        # per task: which differences stand out of the seed noise, and which are noise at a task's floor
        lines += ["", "Per task (difference of the seed means at the selected learning rates ± its standard error):",
                  "", "| task | " + " | ".join(f"`{c['arm']}` − `{c['baseline']}`" for c in comparisons) + " |",
                  "|---|" + "---|" * len(comparisons)]
        for task in task_order:
            cells = [_fmt_effect(*task_effect(finished_grid, task, c["arm"], c["baseline"]))
                     if (task, c["arm"]) in finished_grid and (task, c["baseline"]) in finished_grid else "—"
                     for c in comparisons]
            if any(cell != "—" for cell in cells):
                lines.append(f"| {task}{'' if task in averaged else ' (not averaged)'} | " + " | ".join(cells) + " |")
        lines.append("")
    claims = [(c, _declared(c["arm"])) for c in comparisons if not baseline]
    claims = [(c, declared) for c, declared in claims if declared and declared.claim]
    if claims:
        lines += ["## The paper's claims at this scale", "",
                  f"Each claim is tested by its arm against the arm it names, on the task average above; it is "
                  f"reproduced or contradicted when the difference is at least {CLAIM_SE:g} standard errors in or "
                  f"against the claimed direction, and not resolved otherwise.", "",
                  "| claim | arms | difference (SE) | verdict | tasks where it holds / fails by 2 SE |",
                  "|---|---|---|---|---|"]
        for c, declared in claims:
            on = f" on {', '.join(c['task_names'])}" if c["own_tasks"] else ""
            held, failed = _decided_tasks(finished_grid, c, declared.claim_sign)
            lines.append(f"| {declared.claim} | `{c['arm']}` vs `{c['baseline']}`{on} | "
                         f"{_fmt_effect(c['delta'], c['se'])} | {claim_verdict(c, declared.claim_sign)} | "
                         f"{', '.join(held) or 'none'} / {', '.join(failed) or 'none'} |")
        lines += ["", f"Cannot be tested here: {NOT_MEASURED}", ""]
    summary = incomplete + lines[summary_start:]
    lines += ["## Whole grid (dev score per seed)", "", "| task | arm | lr | scores by seed | median |",
              "|---|---|---|---|---|"]
    for task in task_order:
        for arm in arms:
            for lr, seeds in sorted(grid.get((task, arm), {}).items()):
                shown = ", ".join(f"s{s}: {v:.2f}" for s, v in sorted(seeds.items()))
                lines.append(f"| {task} | `{arm}` | {lr:g} | {shown} | {statistics.median(seeds.values()):.2f} |")
    lines.append("")
    figure = _figure(out, grid, task_order, arms)
    if figure:
        lines += [f"![per-task seed scores]({FIGURE_FILE})", ""]
    (out / REPORT_FILE).write_text("\n".join(lines), encoding="utf-8")
    (out / SUMMARY_FILE).write_text("\n".join(summary).replace("## ", "#### "), encoding="utf-8")
    comparisons.sort(key=lambda c: (c["arm"], c["baseline"]) == HEADLINE)
    summary = [f"wrote {out / REPORT_FILE}" + (f" and {figure}" if figure else "")]
    summary += [transfer_line(c) if (c["arm"], c["baseline"]) == HEADLINE else effect_line(c) for c in comparisons]
    return "\n".join(summary)


def _figure(out: Path, grid, tasks: List[str], arms: List[str]) -> Optional[Path]:
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
    for ax, task in zip(axes[0], tasks):
        for i, arm in enumerate(arms):
            if (task, arm) not in grid:
                continue
            lr, seeds = best_point(grid[(task, arm)])
            values = list(seeds.values())
            ax.scatter([i] * len(values), values, s=18, alpha=0.8)
            ax.hlines(statistics.median(values), i - 0.25, i + 0.25, colors="k")
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(arms, rotation=30, ha="right", fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / FIGURE_FILE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def readme_block(out: Path) -> str:
    """The README block of a study folder: between `<!-- vega-study:NAME -->` and `<!-- /vega-study:NAME -->`."""
    name = Path(out).name
    body = (Path(out) / SUMMARY_FILE).read_text(encoding="utf-8").strip()
    return f"<!-- vega-study:{name} -->\n{body}\n<!-- /vega-study:{name} -->"


def update_readme(readme: Path, out: Path) -> bool:
    """Replace the study's block in README (generated from its summary, never edited by hand); False if absent."""
    import re

    name = re.escape(Path(out).name)
    text = Path(readme).read_text(encoding="utf-8")
    pattern = re.compile(rf"<!-- vega-study:{name} -->.*?<!-- /vega-study:{name} -->", re.S)
    if not pattern.search(text):
        return False
    Path(readme).write_text(pattern.sub(lambda _: readme_block(out), text), encoding="utf-8")
    return True
