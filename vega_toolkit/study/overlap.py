"""Word overlap on STS-B: how much of what a fine-tuned cell predicts is the pair's shared words.

    vega-study overlap results/study-cpu --glue-dir glue_data

STS-B decides several of the study's comparisons by far more than any other task (README, "Results on real data"),
and a bag-of-words reader scores well on it without any training: the word Jaccard of each pair (lower-cased
`\\w+` tokens) correlates with the gold scores of the dev split. For every finished STS-B cell of a study this
module correlates its *test* predictions (the file vega-generate wrote, no labels needed) with the same Jaccard: a
model that learnt to compare the two sentences' words tracks it; one that predicts from either sentence alone does
not. A cell whose predictions are constant (fine-tuning collapsed to the mean score) has no correlation and is
counted as such, not as 0.
"""
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.study.report import load_study
from vega_toolkit.study.runner import code_version

TASK = "STS-B"
_WORD = re.compile(r"\w+")


def word_jaccard(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """None when either side is constant (the coefficient is undefined). Checked on the values themselves: the
    mean of 1,379 copies of 2.755 is not exactly 2.755, and the rounding residue would read as a correlation."""
    if x.min() == x.max() or y.min() == y.max():
        return None
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else None


def split_overlap(glue_dir: str, split: str) -> np.ndarray:
    return np.array([word_jaccard(e.text_a, e.text_b) for e in read_glue_split(glue_dir, TASK, split)])


def dev_baseline(glue_dir: str) -> float:
    """Pearson (x 100, the GLUE scale) of the word Jaccard with the gold dev scores."""
    gold = np.array([float(e.label) for e in read_glue_split(glue_dir, TASK, "dev")])
    return 100 * pearson(split_overlap(glue_dir, "dev"), gold)


def _predictions_file(record: Dict, out: Path) -> Path:
    generate = shlex.split(record["commands"][-1])
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


def prediction_overlap(out: Path, records: List[Dict], glue_dir: str) -> Dict[Tuple[str, float], Dict[int, Optional[float]]]:
    """{(arm, lr): {seed: Pearson (x 100) of the cell's test predictions with the pairs' word Jaccard}}."""
    overlap = split_overlap(glue_dir, "test")
    table: Dict[Tuple[str, float], Dict[int, Optional[float]]] = defaultdict(dict)
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
    lines = [f"# {TASK} predictions against word overlap: `vega-study overlap {out}` at commit {code_version()}",
             "",
             f"{TASK} dev: word Jaccard alone correlates {dev_baseline(glue_dir):.2f} with the gold scores (Pearson x 100)",
             "",
             f"Pearson x 100 of each cell's {TASK} test predictions with the pairs' word Jaccard "
             "(mean over the seeds with non-constant predictions; '-' = constant):",
             "",
             "| arm | lr | by seed | mean |", "|---|---|---|---|"]
    arm_order = list(dict.fromkeys(arm for arm, _ in table))
    for (arm, lr), by_seed in sorted(table.items(), key=lambda item: (arm_order.index(item[0][0]), item[0][1])):
        defined = [v for v in by_seed.values() if v is not None]
        seeds = ", ".join(f"s{s}: {'-' if v is None else f'{v:.1f}'}" for s, v in sorted(by_seed.items()))
        mean = f"{np.mean(defined):.1f}" if defined else "-"
        lines.append(f"| `{arm}` | {lr:g} | {seeds} | {mean} |")
    return "\n".join(lines)
