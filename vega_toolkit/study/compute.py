"""The compute axis: transfer over random init against pretraining compute, per objective and task.

    vega-study compute results/study-cpu      # -> results/study-cpu/compute.md and compute.png

The scale declares which arms are pretrained for fewer updates (`compute_updates`, the same schedule shape: warmup,
linear decay to the run's own last update) and on which tasks they are fine-tuned (`compute_tasks`); the scale's own
pretraining budget is the axis' last point. Transfer is the arm's mean dev score minus random init's, both under the
report's selection rule (each run at the learning rate its other runs choose, last checkpoint), ± the Welch standard
error (report.task_test). Pretraining FLOPs are the usual estimate 6 x N x D (Kaplan et al. 2020: a forward and a
backward pass over D tokens of a model of N parameters), with N the exported encoder's parameters: the heads of
the objectives (RTD's 3-way classifier, MLM's projection tied to the embeddings) are left out.
"""

from pathlib import Path

from vega_toolkit.study.report import load_study, task_test
from vega_toolkit.study.runner import code_version
from vega_toolkit.study.selection import checkpoint_of, run_of, score_grid, select

COMPUTE_FILE = "compute.md"
COMPUTE_FIGURE = "compute.png"


def _parameters(model_dir: Path) -> int | None:
    """Parameters of an exported model folder's encoder (its model.pt), None when the folder is not here."""
    path = model_dir / "model.pt"
    if not path.exists():
        return None
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    weights = state.get("model", state)
    return int(sum(v.numel() for v in weights.values() if hasattr(v, "numel")))


def compute_points(out: Path) -> list[dict]:
    """One row per (arm, task, pretraining updates): transfer over random init, its SE and the runs behind it."""
    study, records, _ = load_study(out)
    scale = study.get("scale", {})
    budget = scale.get("pretrain", {})
    axis = [int(u) for u in scale.get("compute_updates", [])]
    if not axis or not budget:
        raise ValueError(f"{out}: its scale declares no compute axis (compute_updates)")
    tokens_per_update = int(budget["batch"]) * int(budget["tokens"])
    main = score_grid(records)  # the scale's own budget and random init
    rows = []
    for arm in scale.get("compute_arms", []):
        pretrainings = {
            int(r.get("pretrain_updates", budget["updates"])): r
            for r in records
            if r.get("kind") == "pretrain"
            and r["arm"] == arm
            and int(r.get("pretrain_seed", 1)) == 1
            and float(r.get("pretrain_lr", budget["lr"])) == float(budget["lr"])
        }
        for updates in [*axis, int(budget["updates"])]:
            if updates == int(budget["updates"]):
                grid = main
            else:
                grid = score_grid(
                    [
                        dict(r, pretrain_updates=None)
                        for r in records
                        if r.get("kind") == "finetune"
                        and r["arm"] == arm
                        and int(r.get("pretrain_updates") or 0) == updates
                        and checkpoint_of(r) == "last"
                    ]
                )
            pretraining = pretrainings.get(updates)
            n = _parameters(out / "models" / f"{arm}-{pretraining['key']}") if pretraining else None
            for task in scale.get("compute_tasks", []):
                if (task, arm) not in grid or (task, "random") not in main:
                    continue
                both = dict(main)
                both[(task, arm)] = grid[(task, arm)]
                test = task_test(both, task, arm, "random")
                runs = select(grid[(task, arm)])[1]
                rows.append(
                    {
                        "arm": arm,
                        "task": task,
                        "updates": updates,
                        "tokens": updates * tokens_per_update,
                        "flops": 6.0 * n * updates * tokens_per_update if n else None,
                        "transfer": test["difference"],
                        "se": test["se"],
                        "runs": len(runs),
                        "last_checkpoint": all(
                            checkpoint_of(r) == "last"
                            for r in records
                            if r.get("kind") == "finetune"
                            and r["arm"] == arm
                            and r.get("task") == task
                            and run_of(r) in runs
                            and int(r.get("pretrain_updates") or budget["updates"]) == updates
                        ),
                    }
                )
    return rows


def write_compute(out: Path) -> str:
    out = Path(out)
    rows = compute_points(out)
    lines = [
        f"# Compute axis (`vega-study compute {out}`, commit {code_version()})",
        "",
        "Transfer = the arm's mean dev score minus random init's on the same task, each run at the learning "
        "rate its other runs choose, ± the Welch standard error over runs (fine-tuning seeds; pretraining "
        "runs where there are several). FLOPs ≈ 6 × encoder parameters × pretraining tokens. † = cells "
        "scored on the per-epoch best checkpoint (the first cpu study's rule).",
        "",
        "| arm | task | pretraining updates | tokens | FLOPs | transfer over random init | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["arm"], r["task"], r["updates"])):
        transfer = f"{r['transfer']:+.2f}" + (f" ± {r['se']:.2f}" if r["se"] == r["se"] else "")
        lines.append(
            f"| `{r['arm']}` | {r['task']} | {r['updates']:,} | {r['tokens']:.3g} | "
            f"{r['flops']:.3g} | {transfer}{'' if r['last_checkpoint'] else '†'} | {r['runs']} |"
            if r["flops"]
            else f"| `{r['arm']}` | {r['task']} | {r['updates']:,} | {r['tokens']:.3g} | — | "
            f"{transfer}{'' if r['last_checkpoint'] else '†'} | {r['runs']} |"
        )
    figure = _figure(out, rows)
    if figure:
        lines += ["", f"![transfer against pretraining FLOPs]({COMPUTE_FIGURE})"]
    (out / COMPUTE_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"wrote {out / COMPUTE_FILE}" + (f" and {figure}" if figure else "") + f" ({len(rows)} points)"


def _figure(out: Path, rows: list[dict]) -> Path | None:
    """One panel per task: transfer against pretraining FLOPs (log scale), one line per objective, ± SE bars."""
    rows = [r for r in rows if r["flops"]]
    if not rows:
        return None
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for arm in sorted({r["arm"] for r in rows}):
            points = sorted((r for r in rows if r["task"] == task and r["arm"] == arm), key=lambda r: r["flops"])
            if points:
                ax.errorbar(
                    [p["flops"] for p in points],
                    [p["transfer"] for p in points],
                    yerr=[p["se"] if p["se"] == p["se"] else 0 for p in points],
                    marker="o",
                    capsize=3,
                    label=arm,
                )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("pretraining FLOPs")
        ax.set_ylabel("transfer over random init (points)")
        ax.set_title(task, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / COMPUTE_FIGURE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
