"""Helpers for the transductive / self-calibrated tests: a learnable synthetic task in SST-2's official layout
(the label is decided by the verb), written from the words of the GLUE fixtures so the fixture sentencepiece
model (glue_helpers.make_vocab_dir) covers it, and the vega-train command lines of the loops."""

import os
import random

from glue_helpers import glue_train_args, vega_train

SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "a small bird", "the old man", "our team", "she", "he"]
POSITIVE = ["likes", "finds", "visits", "remembers"]  # label 1
NEGATIVE = ["ignores", "follows", "paints", "builds"]  # label 0
OBJECTS = ["the house", "a red ball", "the river", "an idea", "the garden", "a long road", "the movie", "music"]
ADVERBS = ["quickly", "slowly", "today", "again", "happily", "at night", "with care"]


def sentences(rng: random.Random, n: int):
    """n distinct (sentence, label) pairs."""
    combos = [(s, v, o, a) for s in SUBJECTS for v in POSITIVE + NEGATIVE for o in OBJECTS for a in ADVERBS]
    return [(f"{s} {v} {o} {a} .", "1" if v in POSITIVE else "0") for s, v, o, a in rng.sample(combos, n)]


def write_synthetic_sst2(root: str, seed: int = 0, n_train: int = 160, n_dev: int = 40, n_test: int = 48):
    """SST-2 folder (train/dev with labels, test without). Returns (folder, hidden test labels, all rows used)."""
    rng = random.Random(seed)
    rows = sentences(rng, n_train + n_dev + n_test)
    train, dev, test = rows[:n_train], rows[n_train : n_train + n_dev], rows[n_train + n_dev :]
    folder = os.path.join(root, "SST-2")
    os.makedirs(folder, exist_ok=True)
    for name, part in (("train", train), ("dev", dev)):
        with open(os.path.join(folder, f"{name}.tsv"), "w") as f:
            f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in part))
    with open(os.path.join(folder, "test.tsv"), "w") as f:  # the official test layout: no label column
        f.write("index\tsentence\n" + "".join(f"{i}\t{s}\n" for i, (s, _) in enumerate(test)))
    return folder, [y for _, y in test], rows


TRAIN_FLAGS = [
    "--criterion",
    "glue_prediction",
    "--best-checkpoint-metric",
    "accuracy",
    "--maximize-best-checkpoint-metric",
    "--required-batch-size-multiple",
    "1",
]


def loop_args(task_name, glue_task, data, vocab_dir, save_dir, cache_dir, extra=()):
    args = glue_train_args(glue_task, data, vocab_dir, save_dir, cache_dir, [*TRAIN_FLAGS, *extra])
    args[args.index("--task") + 1] = task_name
    return args


def train_m0(data, vocab_dir, save_dir, cache_dir, epochs=8):
    """Fine-tune the tiny model on the synthetic task (M0); returns its checkpoint_best.pt."""
    r = vega_train(
        loop_args(
            "glue", "SST-2", data, vocab_dir, save_dir, cache_dir, ["--max-epoch", str(epochs), "--batch-size", "16"]
        )
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return os.path.join(save_dir, "checkpoint_best.pt")
