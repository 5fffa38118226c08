"""Word overlap on STS-B: how much of what a fine-tuned cell predicts is the pair's shared words.

    vega-study overlap results/study-cpu --glue-dir glue_data

STS-B decides several of the study's comparisons by far more than any other task (docs/results.md),
and a bag-of-words reader scores well on it without any training: the word Jaccard of each pair (lower-cased
`\\w+` tokens) correlates with the gold scores of the dev split. For every finished STS-B cell of a study this
module correlates its *test* predictions (the file vega-generate wrote, no labels needed) with the same Jaccard: a
model that learnt to compare the two sentences' words tracks it; one that predicts from either sentence alone does
not. A cell whose predictions are constant (fine-tuning collapsed to the mean score) has no correlation and is
counted as such, not as 0.
"""

import shlex
from collections import defaultdict
from pathlib import Path

import numpy as np

from vega_toolkit.study.anchors import TASK, dev_baseline, pearson, split_overlap, word_jaccard  # noqa: F401
from vega_toolkit.study.report import load_study
from vega_toolkit.study.runner import code_version


def _predictions_file(record: dict, out: Path) -> Path:
    # the first vega-generate: the scored checkpoint's (a cell scored on its last checkpoint also scores its best)
    generate = shlex.split(next(c for c in record["commands"] if c.startswith("vega-generate")))
    folder = generate[generate.index("--out-dir") + 1].replace("{out}", str(out))
    return Path(folder) / f"{TASK}.tsv"


def read_predictions(path: Path, rows: int) -> np.ndarray:
    lines = path.read_text().splitlines()
    if len(lines) != rows + 1:
        raise ValueError(f"{path}: {len(lines) - 1} predictions for {rows} test pairs")
    values = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values.append(float(line.split("\t")[1]))
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{number}: expected 'index<TAB>score', got {line!r}") from None
    return np.array(values)


def prediction_overlap(
    out: Path, records: list[dict], glue_dir: str
) -> dict[tuple[str, float], dict[int, float | None]]:
    """{(arm, lr): {seed: Pearson (x 100) of the cell's test predictions with the pairs' word Jaccard}}."""
    overlap = split_overlap(glue_dir, "test")
    table: dict[tuple[str, float], dict[int, float | None]] = defaultdict(dict)
    for r in records:
        if r.get("kind") == "finetune" and r.get("task") == TASK:
            correlation = pearson(read_predictions(_predictions_file(r, out), len(overlap)), overlap)
            table[(r["arm"], float(r["lr"]))][r["seed"]] = None if correlation is None else 100 * correlation
    return dict(table)


def overlap_report(out: Path, glue_dir: str) -> str:
    out = Path(out)
    _, records, _ = load_study(out)
    table = prediction_overlap(out, records, glue_dir)
    if not table:
        raise FileNotFoundError(f"{out}: no finished {TASK} cells")
    lines = [
        f"# {TASK} predictions against word overlap: `vega-study overlap {out}` at commit {code_version()}",
        "",
        f"{TASK} dev: word Jaccard alone correlates {dev_baseline(glue_dir):.2f} with the gold scores (Pearson x 100)",
        "",
        f"Pearson x 100 of each cell's {TASK} test predictions with the pairs' word Jaccard "
        "(mean over the seeds with non-constant predictions; '-' = constant):",
        "",
        "| arm | lr | by seed | mean |",
        "|---|---|---|---|",
    ]
    arm_order = list(dict.fromkeys(arm for arm, _ in table))
    for (arm, lr), by_seed in sorted(table.items(), key=lambda item: (arm_order.index(item[0][0]), item[0][1])):
        defined = [v for v in by_seed.values() if v is not None]
        seeds = ", ".join(f"s{s}: {'-' if v is None else f'{v:.1f}'}" for s, v in sorted(by_seed.items()))
        mean = f"{np.mean(defined):.1f}" if defined else "-"
        lines.append(f"| `{arm}` | {lr:g} | {seeds} | {mean} |")
    return "\n".join(lines)
