"""Toy English and three GLUE-format tasks whose answers the unlabelled corpus teaches (no downloads).

    python -m vega_toolkit.demo.toy_data OUT_DIR        # writes corpus/ and glue/{SST-2,RTE,CoLA}/ + external pool

Each task has a few hundred labels, and each answer depends on word knowledge that only the pretraining corpus
carries, so a pretrained encoder can beat a random one under the same fine-tuning:
- SST-2 (sentiment): the label is the polarity of an evaluative word. Labelled training sentences use a quarter of
  the lexicon; dev and test use all of it. The corpus gives every word's polarity by its company: each polarity
  has its own frames ("so superb that the crowd cheered", "too dull to finish") and reviews keep one polarity.
- RTE (entailment): "ben bought the plum ." entails "ben bought a fruit ." and not "ben bought a tool .". Labelled
  training pairs use a quarter of each category's members; the corpus says what each member is and does.
- CoLA (acceptability): grammatical sentences versus ones with two adjacent words swapped or one word replaced by a
  word of another class. Which words may go where is the grammar of the corpus, over more words than a few hundred
  labelled sentences show.
Test files carry no labels, in the official formats, so the same readers and `vega-generate` apply.
"""

import argparse
import csv
import random
from pathlib import Path

NAMES = [
    "anna",
    "ben",
    "clara",
    "david",
    "elena",
    "frank",
    "grace",
    "henry",
    "iris",
    "jack",
    "kate",
    "leo",
    "maria",
    "nick",
    "olga",
    "peter",
    "rosa",
    "sam",
    "tina",
    "victor",
]
NOUNS = [
    "dog",
    "cat",
    "teacher",
    "farmer",
    "doctor",
    "child",
    "painter",
    "sailor",
    "baker",
    "student",
    "king",
    "queen",
    "driver",
    "writer",
    "singer",
    "pilot",
]
OBJECTS = [
    "book",
    "letter",
    "song",
    "house",
    "boat",
    "garden",
    "picture",
    "story",
    "window",
    "bridge",
    "river",
    "horse",
    "bread",
    "lamp",
]
ADJECTIVES = ["old", "young", "tall", "small", "quiet", "busy", "happy", "tired", "clever", "kind"]
VERBS_PAST = [
    "found",
    "painted",
    "bought",
    "wrote",
    "saw",
    "built",
    "sold",
    "carried",
    "opened",
    "liked",
    "cleaned",
    "visited",
]
PLACES = [
    "in the town",
    "near the sea",
    "at the market",
    "by the river",
    "in the garden",
    "on the hill",
    "at school",
    "in the morning",
    "after dinner",
    "before the storm",
]
ADVERBS = ["slowly", "quickly", "carefully", "quietly", "happily", "finally"]
POSITIVE = [
    "wonderful",
    "delightful",
    "brilliant",
    "charming",
    "moving",
    "beautiful",
    "excellent",
    "warm",
    "superb",
    "lovely",
    "gripping",
    "witty",
    "elegant",
    "fresh",
    "tender",
    "vivid",
]
NEGATIVE = [
    "boring",
    "dull",
    "awful",
    "clumsy",
    "tedious",
    "painful",
    "weak",
    "bland",
    "dreadful",
    "messy",
    "stale",
    "shallow",
    "silly",
    "flat",
    "lazy",
    "ugly",
]
WORKS = ["film", "movie", "play", "show", "novel", "concert", "opera", "script"]
# reactions that only the corpus pairs with a polarity (labelled reviews never contain them)
CHEERS = ["the crowd cheered", "everyone smiled", "people clapped", "we laughed a lot", "nobody wanted it to end"]
JEERS = ["the crowd left early", "everyone yawned", "people sighed", "we wanted our money back", "nobody stayed"]
# what each category's members are, and the verbs the corpus uses with them
CATEGORIES: dict[str, list[str]] = {
    "fruit": ["apple", "pear", "plum", "cherry", "peach", "lemon", "melon", "grape"],
    "tool": ["hammer", "spade", "drill", "wrench", "chisel", "ladder", "rake", "axe"],
    "vehicle": ["car", "truck", "bus", "van", "tram", "cart", "wagon", "scooter"],
    "instrument": ["piano", "violin", "drum", "flute", "harp", "guitar", "trumpet", "cello"],
    "garment": ["coat", "shirt", "hat", "scarf", "glove", "jacket", "dress", "sweater"],
}
CATEGORY_VERBS = {
    "fruit": ["ate", "peeled", "tasted"],
    "tool": ["used", "fixed", "sharpened"],
    "vehicle": ["drove", "parked", "repaired"],
    "instrument": ["played", "tuned", "practised"],
    "garment": ["wore", "folded", "ironed"],
}
NEUTRAL_VERBS = ["bought", "found", "saw", "sold", "carried"]  # the verbs of RTE pairs: no hint of the category
# The labelled training sets see only these (every fourth word); dev and test draw from the whole lexicon.
SEEN_POSITIVE, SEEN_NEGATIVE = POSITIVE[::4], NEGATIVE[::4]
SEEN_MEMBERS = {category: members[::4] for category, members in CATEGORIES.items()}


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


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


def review_sentence(rng: random.Random, positive: bool) -> str:
    # Each polarity has its own local frames ("so superb that", "too dull to") besides the shared ones
    # ("the film was superb ."): replaced-token detection can then tell the two classes apart from nearby words,
    # as it tells nouns from verbs, and every word of a class gets the class's features.
    words, reactions = (POSITIVE, CHEERS) if positive else (NEGATIVE, JEERS)
    work, a, b = rng.choice(WORKS), rng.choice(words), rng.choice(words)
    own = (
        [
            f"the {work} was so {a} that {rng.choice(reactions)} .",
            f"what {_a(a)} {work} , truly {b} !",
            f"{noun_phrase(rng)} loved the {a} {work} .",
        ]
        if positive
        else [
            f"the {work} was too {a} to finish , so {rng.choice(reactions)} .",
            f"such {_a(a)} {work} , sadly {b} .",
            f"{noun_phrase(rng)} hated the {a} {work} .",
        ]
    )
    return rng.choice(own + [f"the {work} was {a} .", f"it was {a} and {b} ."])


def category_sentence(rng: random.Random) -> str:
    category = rng.choice(sorted(CATEGORIES))
    member = rng.choice(CATEGORIES[category])
    return rng.choice(
        [
            f"the {member} is {_a(category)} .",
            f"{noun_phrase(rng)} {rng.choice(CATEGORY_VERBS[category])} the {member} {rng.choice(PLACES)} .",
            f"{noun_phrase(rng)} {rng.choice(CATEGORY_VERBS[category])} {_a(member)} .",
            f"every {member} is {_a(category)} and {rng.choice(CATEGORIES[category])} is one too .",
        ]
    )


def paragraph(rng: random.Random) -> str:
    """A short story: 3-8 sentences of the grammar (the tests' small corpora)."""
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 8)))


def corpus_paragraph(rng: random.Random) -> str:
    """A paragraph of the pretraining corpus: a story, a review (one polarity throughout) or things and their use."""
    n, roll = rng.randint(3, 8), rng.random()
    if roll < 0.4:
        return " ".join(sentence(rng) for _ in range(n))
    if roll < 0.7:
        positive = rng.random() < 0.5
        return " ".join(review_sentence(rng, positive) for _ in range(n))
    return " ".join(category_sentence(rng) if rng.random() < 0.7 else sentence(rng) for _ in range(n))


def review(rng: random.Random, seen_only: bool = False) -> tuple[str, int]:
    positive = rng.random() < 0.5
    words = (SEEN_POSITIVE if positive else SEEN_NEGATIVE) if seen_only else (POSITIVE if positive else NEGATIVE)
    work, adjective = rng.choice(WORKS), rng.choice(words)
    templates = [
        f"the {work} is {adjective} .",
        f"{_a(adjective)} {work} about {noun_phrase(rng)} .",
        f"{noun_phrase(rng)} found the {work} {adjective} .",
    ]
    return rng.choice(templates), int(positive)


def entailment_pair(rng: random.Random, seen_only: bool = False) -> tuple[str, str, str]:
    category = rng.choice(sorted(CATEGORIES))
    member = rng.choice((SEEN_MEMBERS if seen_only else CATEGORIES)[category])
    subject, verb = noun_phrase(rng), rng.choice(NEUTRAL_VERBS)
    premise = f"{subject} {verb} the {member} {rng.choice(PLACES)} ."
    if rng.random() < 0.5:
        return premise, f"{subject} {verb} {_a(category)} .", "entailment"
    other = rng.choice([c for c in sorted(CATEGORIES) if c != category])
    return premise, f"{subject} {verb} {_a(other)} .", "not_entailment"


# words that may replace one of another class in an unacceptable sentence
WORD_CLASSES = [NAMES, NOUNS, OBJECTS, ADJECTIVES, VERBS_PAST, ADVERBS]


def unacceptable(rng: random.Random) -> str:
    words = sentence(rng)[:-2].split()
    if rng.random() < 0.5:
        i = rng.randrange(len(words) - 1)
        while words[i] == words[i + 1]:
            i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    else:  # a content word replaced by a word of another class ("the tall found bought a book")
        slots = [(i, c) for i, w in enumerate(words) for c, cls in enumerate(WORD_CLASSES) if w in cls]
        i, c = rng.choice(slots)
        words[i] = rng.choice(rng.choice([cls for k, cls in enumerate(WORD_CLASSES) if k != c]))
    return " ".join(words) + " ."


def acceptability(rng: random.Random) -> tuple[str, int]:
    return (sentence(rng), 1) if rng.random() < 0.6 else (unacceptable(rng), 0)


def _write_tsv(path: Path, header: list[str], rows: list[list]):
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
            f.write(corpus_paragraph(rng) + "\n")
    n_train, n_dev, n_test = task_sizes
    glue = out / "glue"
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        seen_only = split == "train"
        reviews = [review(rng, seen_only) for _ in range(n)]
        if split == "test":
            _write_tsv(glue / "SST-2" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(reviews)])
        else:
            _write_tsv(glue / "SST-2" / f"{split}.tsv", ["sentence", "label"], [[s, y] for s, y in reviews])
        pairs = [entailment_pair(rng, seen_only) for _ in range(n)]
        rows = [[i, a, b] + ([] if split == "test" else [y]) for i, (a, b, y) in enumerate(pairs)]
        header = ["index", "sentence1", "sentence2"] + ([] if split == "test" else ["label"])
        _write_tsv(glue / "RTE" / f"{split}.tsv", header, rows)
        sentences = [acceptability(rng) for _ in range(n)]
        if split == "test":
            _write_tsv(
                glue / "CoLA" / "test.tsv", ["index", "sentence"], [[i, s] for i, (s, _) in enumerate(sentences)]
            )
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
