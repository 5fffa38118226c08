"""Toy English and three learnable GLUE-format tasks, generated from a small grammar (no downloads).

    python -m vega_toolkit.demo.toy_data OUT_DIR        # writes corpus/ and glue/{SST-2,RTE,CoLA}/ + external pool

The grammar gives the pretraining corpus real word-order structure (so shuffled and replaced tokens are
detectable) and each task a rule a small encoder can learn:
- SST-2 (sentiment): the label is the polarity of the evaluative words, with negation flipping it;
- RTE (entailment): the hypothesis restates a fact of the premise, denies it, or swaps its subject or object;
- CoLA (acceptability): grammatical sentences versus ones with two words swapped or an agreement error.
Test files carry no labels, in the official formats, so the same readers and `vega-generate` apply.
"""
import argparse
import csv
import random
from pathlib import Path
from typing import List, Tuple

NAMES = ["anna", "ben", "clara", "david", "elena", "frank", "grace", "henry", "iris", "jack", "kate", "leo",
         "maria", "nick", "olga", "peter", "rosa", "sam", "tina", "victor"]
NOUNS = ["dog", "cat", "teacher", "farmer", "doctor", "child", "painter", "sailor", "baker", "student",
         "king", "queen", "driver", "writer", "singer", "pilot"]
OBJECTS = ["book", "letter", "apple", "song", "house", "boat", "garden", "picture", "story", "window",
           "bridge", "river", "horse", "bread", "lamp", "coat"]
ADJECTIVES = ["old", "young", "tall", "small", "quiet", "busy", "happy", "tired", "clever", "kind"]
VERBS_PAST = ["found", "painted", "bought", "wrote", "saw", "built", "sold", "carried", "opened", "liked",
              "cleaned", "visited"]
PLACES = ["in the town", "near the sea", "at the market", "by the river", "in the garden", "on the hill",
          "at school", "in the morning", "after dinner", "before the storm"]
ADVERBS = ["slowly", "quickly", "carefully", "quietly", "happily", "finally"]
POSITIVE = ["wonderful", "delightful", "brilliant", "charming", "moving", "beautiful", "excellent", "warm"]
NEGATIVE = ["boring", "dull", "awful", "clumsy", "tedious", "painful", "weak", "bland"]
WORKS = ["film", "movie", "story", "play", "show", "novel", "performance", "script"]


def noun_phrase(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(NAMES)
    adjective = rng.choice(ADJECTIVES) + " " if rng.random() < 0.5 else ""
    return f"the {adjective}{rng.choice(NOUNS)}"


def object_phrase(rng: random.Random) -> str:
    adjective = rng.choice(ADJECTIVES) + " " if rng.random() < 0.3 else ""
    return f"{rng.choice(['a', 'the'])} {adjective}{rng.choice(OBJECTS)}"


def sentence(rng: random.Random) -> str:
    parts = [noun_phrase(rng)]
    if rng.random() < 0.3:
        parts.append(rng.choice(ADVERBS))
    parts += [rng.choice(VERBS_PAST), object_phrase(rng)]
    if rng.random() < 0.6:
        parts.append(rng.choice(PLACES))
    text = " ".join(parts)
    if rng.random() < 0.25:
        text += f" and {rng.choice(['then', 'later'])} {rng.choice(VERBS_PAST)} {object_phrase(rng)}"
    return text + " ."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 8)))


def review(rng: random.Random) -> Tuple[str, int]:
    positive = rng.random() < 0.5
    words = POSITIVE if positive else NEGATIVE
    negated = rng.random() < 0.2
    label = int(positive != negated)
    work = rng.choice(WORKS)
    adjective = rng.choice(words)
    templates = [
        f"the {work} is {'not ' if negated else ''}{adjective}",
        f"a {'not very ' if negated else ''}{adjective} {work} about {noun_phrase(rng)}",
        f"{noun_phrase(rng)} found the {work} {'hardly ' if negated else ''}{adjective} and {rng.choice(words)}",
    ]
    return rng.choice(templates) + " .", label


def entailment_pair(rng: random.Random) -> Tuple[str, str, str]:
    subject, verb, obj = noun_phrase(rng), rng.choice(VERBS_PAST), object_phrase(rng)
    place = rng.choice(PLACES)
    premise = f"{subject} {verb} {obj} {place} ."
    if rng.random() < 0.5:
        return premise, f"{subject} {verb} {obj} .", "entailment"
    roll = rng.random()
    if roll < 0.5:  # the hypothesis denies the premise's fact
        return premise, f"{subject} did not {rng.choice(['see', 'find', 'get', 'like'])} {obj} .", "not_entailment"
    other = noun_phrase(rng)
    while other == subject:
        other = noun_phrase(rng)
    if roll < 0.75:  # somebody else did it
        return premise, f"{other} {verb} {obj} .", "not_entailment"
    return premise, f"{subject} {verb} {object_phrase(rng)} {place} .", "not_entailment"  # something else


def unacceptable(rng: random.Random) -> str:
    words = sentence(rng)[:-2].split()
    if rng.random() < 0.5 and len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        words.insert(rng.randrange(1, len(words)), rng.choice(["was", "the", "of", "and"]))
    return " ".join(words) + " ."


def acceptability(rng: random.Random) -> Tuple[str, int]:
    return (sentence(rng), 1) if rng.random() < 0.6 else (unacceptable(rng), 0)


def _write_tsv(path: Path, header: List[str], rows: List[List]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def write_toy_data(out: Path, seed: int = 1, corpus_paragraphs: int = 6000, task_sizes=(800, 200, 200)):
    """Write `out/corpus/toy.txt`, `out/glue/{SST-2,RTE,CoLA}/{train,dev,test}.tsv` and `out/external/cola_pool.tsv`."""
    rng = random.Random(seed)
    out = Path(out)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    with (out / "corpus" / "toy.txt").open("w") as f:
        for _ in range(corpus_paragraphs):
            f.write(paragraph(rng) + "\n")
    n_train, n_dev, n_test = task_sizes
    glue = out / "glue"
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        reviews = [review(rng) for _ in range(n)]
        if split == "test":
            _write_tsv(glue / "SST-2" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(reviews)])
        else:
            _write_tsv(glue / "SST-2" / f"{split}.tsv", ["sentence", "label"], [[s, y] for s, y in reviews])
        pairs = [entailment_pair(rng) for _ in range(n)]
        rows = [[i, a, b] + ([] if split == "test" else [y]) for i, (a, b, y) in enumerate(pairs)]
        header = ["index", "sentence1", "sentence2"] + ([] if split == "test" else ["label"])
        _write_tsv(glue / "RTE" / f"{split}.tsv", header, rows)
        sentences = [acceptability(rng) for _ in range(n)]
        if split == "test":
            _write_tsv(glue / "CoLA" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(sentences)])
        else:  # CoLA's train/dev files have no header: source, label, original-annotation, sentence
            _write_tsv(glue / "CoLA" / f"{split}.tsv", [], [["toy", y, "", s] for s, y in sentences])
    # A labelled external pool for self-calibration: in-domain sentences (20% with flipped labels, as a noisy
    # external source would have) mixed with off-domain review sentences the KenLM selection should skip.
    pool = []
    for _ in range(n_train):
        s, y = acceptability(rng)
        pool.append(["pool", 1 - y if rng.random() < 0.2 else y, "", s])
    for _ in range(n_train // 2):
        pool.append(["pool", 1, "", review(rng)[0]])
    rng.shuffle(pool)
    _write_tsv(out / "external" / "cola_pool.tsv", [], pool)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(write_toy_data(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
