"""The floors of a study's dev sets, without fine-tuning: the majority class of each task's training labels and, on
STS-B, the word overlap of each pair; with the gold dev labels (for the paired bootstrap), kept in OUT/anchors.json.

STS-B rewards word overlap (docs/results.md): the word Jaccard of each pair (lower-cased `\\w+`
tokens), with no training at all, correlates with the gold scores of the dev split. overlap.py correlates each
cell's predictions with the same Jaccard.
"""

import json
import re
from pathlib import Path

import numpy as np

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.study.runner import compact_predictions

ANCHORS_FILE = "anchors.json"  # the dev sets' floors and gold labels, computed once from the GLUE files
TASK = "STS-B"  # the task of the word-overlap floor
_WORD = re.compile(r"\w+")


def word_jaccard(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
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


def anchors(out: Path, glue_dir: str | None, tasks: list[str]) -> dict:
    """The dev sets' floors (majority class of the training labels; STS-B: the word overlap of each pair, no
    training) and gold labels, from the GLUE files when GLUE_DIR has them (then kept in OUT/anchors.json, so
    that the report regenerates without the data), else from OUT/anchors.json ({} when neither)."""
    path = Path(out) / ANCHORS_FILE
    if glue_dir and all((Path(glue_dir) / t).is_dir() for t in tasks):
        from vega_toolkit.data.glue_tasks import get_glue_task
        from vega_toolkit.demo.report import majority_baseline
        from vega_toolkit.metrics.glue_metrics import task_score

        found = {"majority": {}, "overlap": {}, "dev_labels": {}}
        for task in tasks:
            rows = read_glue_split(glue_dir, task, "dev")
            found["dev_labels"][task] = compact_predictions([str(e.label) for e in rows], get_glue_task(task).labels)
            if task == TASK:
                found["overlap"][task] = round(dev_baseline(glue_dir), 4)
            else:
                found["majority"][task] = round(task_score(task, majority_baseline(Path(glue_dir), task)), 4)
        if not path.exists() or json.loads(path.read_text()) != found:
            path.write_text(json.dumps(found, sort_keys=True) + "\n")
        return found
    return json.loads(path.read_text()) if path.exists() else {}
