"""The demo's results table (report.md) and figure (curves.png), from TensorBoard logs and dev-set predictions.

Every number in the report is measured here: pretraining curves are read back from the event files fairseq
wrote (`--tensorboard-logdir`), fine-tuned models are scored on the dev sets with the GLUE metrics, and each is
compared with the trivial baseline (all-original tokens for RTD, 1/batch for InfoNCE, the majority class for GLUE).
"""

from collections import Counter
from pathlib import Path

from vega_toolkit.metrics.tensorboard import read_scalars

Curve = list[tuple[int, float]]


def _curve(logdir: Path, split: str, tag: str) -> Curve:
    # fairseq writes one sub-folder per split: train_inner (every --log-interval), train (epoch), valid
    path = logdir / split
    return read_scalars(path).get(tag, []) if path.is_dir() else []


def _stage_curves(root: Path, task: str, tag: str) -> dict[str, Curve]:
    """{label: curve} of one fine-tuning run (TensorBoard folder `root`): the plain run, or every round/stage of an
    adaptation loop."""
    curves = {task: _curve(root, "valid", tag)} if (root / "valid").is_dir() else {}
    for stage in sorted(p for p in root.glob("*") if (p / "valid").is_dir()):
        curves[f"{task} {stage.name}"] = _curve(stage, "valid", tag)
    return curves


def majority_baseline(glue_dir: Path, task: str) -> dict[str, float]:
    """The GLUE metrics of always predicting the most frequent training label, on the dev set."""
    from vega_toolkit.data.glue_readers import read_glue_split
    from vega_toolkit.metrics.glue_metrics import task_metrics

    majority = Counter(e.label for e in read_glue_split(str(glue_dir), task, "train")).most_common(1)[0][0]
    dev = [e.label for e in read_glue_split(str(glue_dir), task, "dev")]
    return task_metrics(task, [majority] * len(dev), dev)


def dev_metrics(checkpoint: Path, glue_dir: Path) -> dict[str, float]:
    from vega_toolkit.models.glue_predictor import GluePredictor, score_dev

    predictor = GluePredictor.from_checkpoint(str(checkpoint), str(glue_dir), device="cpu")
    return next(iter(score_dev(predictor).values()))


def _first_last(curve: Curve) -> tuple[float | None, float | None]:
    return (curve[0][1], curve[-1][1]) if curve else (None, None)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def write_figure(path: Path, panels: dict[str, dict[str, Curve]]):
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's logging setup would print font searches
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, curves) in zip(axes.flat, panels.items(), strict=False):
        for label, curve in curves.items():
            if curve:
                ax.plot(
                    [s for s, _ in curve], [v for _, v in curve], marker="." if len(curve) < 30 else None, label=label
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seed_stats(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one seed), min and max of one row's per-seed scores."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return {"mean": mean, "std": var**0.5, "min": min(values), "max": max(values)}


def beats_spread(pretrained: list[float], random_init: list[float]) -> bool:
    """Pretrained above random init by more than the seed spread: its worst seed above random init's best."""
    return min(pretrained) > max(random_init)


TABLE_HEADER = [
    "| task | recipe | dev metric | seeds | vega (pretrained): mean ± std [min, max] "
    "| random init, same fine-tuning: mean ± std [min, max] | gap of means | gap above seed spread "
    "| majority baseline |",
    "|---|---|---|---|---|---|---|---|---|",
]


def seed_rows(
    task: str,
    recipe: str,
    pretrained: dict[str, list[float]],
    random_init: dict[str, list[float]],
    baseline: dict[str, float],
) -> list[str]:
    """One markdown row per dev metric: both inits' per-seed scores summarised, their gap, and the verdict."""
    rows = []
    for name, p in pretrained.items():
        r = random_init[name]
        ps, rs = seed_stats(p), seed_stats(r)
        rows.append(
            f"| {task} | {recipe} | {name} | {len(p)} vs {len(r)} | {_spread(ps)} | {_spread(rs)} | "
            f"{ps['mean'] - rs['mean']:+.3f} | {'yes' if beats_spread(p, r) else 'no'} | "
            f"{baseline[name]:.3f} |"
        )
    return rows


def seed_table(
    glue_dir: Path,
    finetune_dirs: dict[str, list[Path]],
    random_init_dirs: dict[str, list[Path]],
    recipes: dict[str, str],
) -> list[str]:
    """Markdown table: per task and dev metric, pretrained and random init over the same fine-tuning seeds."""
    rows = list(TABLE_HEADER)
    for task, save_dirs in finetune_dirs.items():
        pre = [dev_metrics(d / "checkpoint_best.pt", glue_dir) for d in save_dirs]
        rnd = [dev_metrics(d / "checkpoint_best.pt", glue_dir) for d in random_init_dirs[task]]
        rows += seed_rows(
            task,
            recipes.get(task, ""),
            {k: [m[k] for m in pre] for k in pre[0]},
            {k: [m[k] for m in rnd] for k in rnd[0]},
            majority_baseline(glue_dir, task),
        )
    return rows


def _spread(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]"


def write_report(
    out: Path,
    glue_dir: Path,
    finetune_dirs: dict[str, list[Path]],
    timings: dict[str, float],
    contrastive_batch: int,
    random_init_dirs: dict[str, list[Path]],
) -> dict:
    """`finetune_dirs`/`random_init_dirs`: {task: [save_dir per fine-tuning seed]}; `contrastive_batch`: sequences
    per phase-2 batch (InfoNCE picks the positive among them: chance = 1/B)."""
    tb = out / "tb"
    p1_valid = _curve(tb / "phase1", "valid", "rtd_acc")
    p1_train = _curve(tb / "phase1", "train_inner", "rtd_acc")
    p2_valid = _curve(tb / "phase2", "valid", "contrastive_acc")
    p2_train = _curve(tb / "phase2", "train_inner", "contrastive_acc")
    shuf = _curve(tb / "phase1", "valid", "shuf_frac")
    repl = _curve(tb / "phase1", "valid", "repl_frac")
    all_original = 1 - shuf[-1][1] - repl[-1][1] if shuf and repl else None
    chance = 1 / contrastive_batch

    rows = ["| stage | metric | first | last | baseline | above baseline |", "|---|---|---|---|---|---|"]

    def row(stage, metric, first, last, baseline):
        above = "yes" if last is not None and baseline is not None and last > baseline else "no"
        rows.append(f"| {stage} | {metric} | {_fmt(first)} | {_fmt(last)} | {_fmt(baseline)} (trivial) | {above} |")

    row("phase 1 (rtd_ternary)", "valid rtd_acc", *_first_last(p1_valid), all_original)
    for tag in ("shuf_recall", "repl_recall"):
        row("phase 1 (rtd_ternary)", f"valid {tag}", *_first_last(_curve(tb / "phase1", "valid", tag)), 0.0)
    row("phase 2 (rtd_contrastive)", "valid contrastive_acc", *_first_last(p2_valid), chance)

    recipes = {"SST-2": "SiFT (adversarial_ce)", "RTE": "transductive", "CoLA": "self-calibrated (KenLM)"}
    task_rows = seed_table(glue_dir, finetune_dirs, random_init_dirs, recipes)
    ft_panels = {}
    for task, save_dirs in finetune_dirs.items():
        metric = "mcc" if task == "CoLA" else "accuracy"
        first = save_dirs[0]  # the first seed's curves: .../finetune/seed1/SST-2 -> tb/finetune_seed1_SST-2
        ft_panels[f"{task}, {recipes.get(task, 'fine-tuning')}: dev {metric}"] = _stage_curves(
            tb / f"{first.parent.parent.name}_{first.parent.name}_{first.name}", task, metric
        )

    timing_rows = ["| stage | seconds |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    figure = out / "curves.png"
    write_figure(
        figure,
        {
            "phase 1: rtd_acc": {"train": p1_train, "valid": p1_valid},
            "phase 2: contrastive_acc": {"train": p2_train, "valid": p2_valid},
            **ft_panels,
        },
    )
    report = out / "report.md"
    report.write_text(
        "\n".join(
            [
                "# Vega v1 recipe, toy scale: results",
                "",
                "Pretraining (curves read back from the TensorBoard event files):",
                "",
                *rows,
                "",
                (
                    "Fine-tuning, the same recipe from the pretrained encoder and from random init, over the same "
                    'fine-tuning seeds (dev sets scored with the GLUE metrics; "gap above seed spread": every '
                    "pretrained seed above every random-init seed):"
                ),
                "",
                *task_rows,
                "",
                f"![curves]({figure.name})",
                "",
                "Time per stage:",
                "",
                *timing_rows,
                "",
            ]
        )
    )
    return {"report": report, "figure": figure}
