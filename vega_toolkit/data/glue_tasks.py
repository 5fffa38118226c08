"""The GLUE task table: one row per task, everything else (readers, task, metrics, submission) reads it.

    from vega_toolkit.data.glue_tasks import get_glue_task
    t = get_glue_task("mnli")            # names are case-insensitive; "sst2" and "SST-2" both work
    t.splits["dev_matched"].file         # 'dev_matched.tsv'
    t.labels, t.metrics, t.submission    # ('entailment', 'neutral', 'contradiction'), ('accuracy',), {...}

Column positions and headers are those of the official `glue_data/` release (download_glue_data.py), as also
hard-coded by fairseq's examples/roberta/preprocess_GLUE_tasks.sh. Row counts are the official data-row counts
(huggingface/datasets glue card; ../shared/glue/SOURCES.md); `vega-glue validate` and the tests compare against them.
"""

from dataclasses import dataclass, field

from vega_toolkit.errors import UserError


@dataclass(frozen=True)
class GlueSplit:
    """One TSV file of a task: where its text, label and index live."""

    file: str
    num_fields: int
    text_columns: tuple[int, ...]  # 1 (single sentence) or 2 (pair) zero-based columns
    label_column: int | None = None  # None: unlabeled (test) split
    index_column: int | None = None  # None: the example index is its row number (train/dev files)
    header: tuple[str, ...] | None = None  # None: the file has no header row (CoLA train/dev)
    rows: int | None = None  # official number of data rows
    fairseq_split: str = ""  # the split name fairseq asks for (train, valid, valid1, test, test1)


@dataclass(frozen=True)
class GlueTaskSpec:
    name: str  # official spelling, e.g. "SST-2"
    folder: str  # folder inside GLUE_DIR
    splits: dict[str, GlueSplit]
    labels: tuple[str, ...]  # label strings as written in the files and in submissions; () for regression
    metrics: tuple[str, ...]  # reported dev metrics; the GLUE score averages these
    best_metric: str  # --best-checkpoint-metric (always maximised)
    submission: dict[str, str] = field(default_factory=dict)  # test split -> submission file name
    predicted_by: str | None = None  # AX has no training data: predicted with this task's model
    in_glue_score: bool = True

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_classes(self) -> int:
        return len(self.labels) or 1

    @property
    def is_pair(self) -> bool:
        return len(next(iter(self.splits.values())).text_columns) == 2

    def split_name(self, fairseq_split: str) -> str:
        """The table's split name ("dev_matched") for a fairseq split name ("valid")."""
        for name, split in self.splits.items():
            if split.fairseq_split == fairseq_split:
                return name
        known = ", ".join(s.fairseq_split for s in self.splits.values())
        raise KeyError(f"GLUE task {self.name} has no split {fairseq_split!r} (known: {known})")


def _h(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_RTE_LIKE = _h("index sentence1 sentence2 label")
_RTE_LIKE_TEST = _h("index sentence1 sentence2")
_MNLI_PREFIX = (
    "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
    "sentence1_parse sentence2_parse sentence1 sentence2"
)
_STSB = "index genre filename year old_index source1 source2 sentence1 sentence2"
_MRPC = ("#1 ID", "#2 ID", "#1 String", "#2 String")
_NLI3 = ("entailment", "neutral", "contradiction")  # HF datasets' glue/mnli label order
_NLI2 = ("entailment", "not_entailment")
_BINARY = ("0", "1")


def _tsv(file, num_fields, text, label=None, index=None, header=None, rows=None, fairseq_split=""):
    return GlueSplit(file, num_fields, text, label, index, header, rows, fairseq_split)


GLUE_TASKS: dict[str, GlueTaskSpec] = {
    t.name: t
    for t in [
        GlueTaskSpec(
            "CoLA",
            "CoLA",
            {
                # train/dev: source, label, original-mark, sentence; no header (the only such files in GLUE)
                "train": _tsv("train.tsv", 4, (3,), label=1, rows=8551, fairseq_split="train"),
                "dev": _tsv("dev.tsv", 4, (3,), label=1, rows=1043, fairseq_split="valid"),
                "test": _tsv(
                    "test.tsv", 2, (1,), index=0, header=_h("index sentence"), rows=1063, fairseq_split="test"
                ),
            },
            _BINARY,
            ("mcc",),
            "mcc",
            {"test": "CoLA.tsv"},
        ),
        GlueTaskSpec(
            "SST-2",
            "SST-2",
            {
                "train": _tsv(
                    "train.tsv", 2, (0,), label=1, header=_h("sentence label"), rows=67349, fairseq_split="train"
                ),
                "dev": _tsv("dev.tsv", 2, (0,), label=1, header=_h("sentence label"), rows=872, fairseq_split="valid"),
                "test": _tsv(
                    "test.tsv", 2, (1,), index=0, header=_h("index sentence"), rows=1821, fairseq_split="test"
                ),
            },
            _BINARY,
            ("accuracy",),
            "accuracy",
            {"test": "SST-2.tsv"},
        ),
        GlueTaskSpec(
            "MRPC",
            "MRPC",
            {
                # the official train/dev header starts with a UTF-8 BOM; readers decode with utf-8-sig
                "train": _tsv(
                    "train.tsv", 5, (3, 4), label=0, header=("Quality",) + _MRPC, rows=3668, fairseq_split="train"
                ),
                "dev": _tsv(
                    "dev.tsv", 5, (3, 4), label=0, header=("Quality",) + _MRPC, rows=408, fairseq_split="valid"
                ),
                "test": _tsv(
                    "test.tsv", 5, (3, 4), index=0, header=("index",) + _MRPC, rows=1725, fairseq_split="test"
                ),
            },
            _BINARY,
            ("f1", "accuracy"),
            "acc_and_f1",
            {"test": "MRPC.tsv"},
        ),
        GlueTaskSpec(
            "STS-B",
            "STS-B",
            {
                "train": _tsv(
                    "train.tsv", 10, (7, 8), label=9, header=_h(_STSB + " score"), rows=5749, fairseq_split="train"
                ),
                "dev": _tsv(
                    "dev.tsv", 10, (7, 8), label=9, header=_h(_STSB + " score"), rows=1500, fairseq_split="valid"
                ),
                "test": _tsv("test.tsv", 9, (7, 8), index=0, header=_h(_STSB), rows=1379, fairseq_split="test"),
            },
            (),
            ("pearson", "spearman"),
            "pearson_and_spearman",
            {"test": "STS-B.tsv"},
        ),
        GlueTaskSpec(
            "QQP",
            "QQP",
            {
                "train": _tsv(
                    "train.tsv",
                    6,
                    (3, 4),
                    label=5,
                    header=_h("id qid1 qid2 question1 question2 is_duplicate"),
                    rows=363846,
                    fairseq_split="train",
                ),
                "dev": _tsv(
                    "dev.tsv",
                    6,
                    (3, 4),
                    label=5,
                    header=_h("id qid1 qid2 question1 question2 is_duplicate"),
                    rows=40430,
                    fairseq_split="valid",
                ),
                "test": _tsv(
                    "test.tsv",
                    3,
                    (1, 2),
                    index=0,
                    header=_h("id question1 question2"),
                    rows=390965,
                    fairseq_split="test",
                ),
            },
            _BINARY,
            ("f1", "accuracy"),
            "acc_and_f1",
            {"test": "QQP.tsv"},
        ),
        GlueTaskSpec(
            "MNLI",
            "MNLI",
            {
                "train": _tsv(
                    "train.tsv",
                    12,
                    (8, 9),
                    label=11,
                    header=_h(_MNLI_PREFIX + " label1 gold_label"),
                    rows=392702,
                    fairseq_split="train",
                ),
                "dev_matched": _tsv(
                    "dev_matched.tsv",
                    16,
                    (8, 9),
                    label=15,
                    header=_h(_MNLI_PREFIX + " label1 label2 label3 label4 label5 gold_label"),
                    rows=9815,
                    fairseq_split="valid",
                ),
                "dev_mismatched": _tsv(
                    "dev_mismatched.tsv",
                    16,
                    (8, 9),
                    label=15,
                    header=_h(_MNLI_PREFIX + " label1 label2 label3 label4 label5 gold_label"),
                    rows=9832,
                    fairseq_split="valid1",
                ),
                "test_matched": _tsv(
                    "test_matched.tsv", 10, (8, 9), index=0, header=_h(_MNLI_PREFIX), rows=9796, fairseq_split="test"
                ),
                "test_mismatched": _tsv(
                    "test_mismatched.tsv",
                    10,
                    (8, 9),
                    index=0,
                    header=_h(_MNLI_PREFIX),
                    rows=9847,
                    fairseq_split="test1",
                ),
            },
            _NLI3,
            ("accuracy",),
            "accuracy",
            {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        ),
        GlueTaskSpec(
            "QNLI",
            "QNLI",
            {
                "train": _tsv(
                    "train.tsv",
                    4,
                    (1, 2),
                    label=3,
                    header=_h("index question sentence label"),
                    rows=104743,
                    fairseq_split="train",
                ),
                "dev": _tsv(
                    "dev.tsv",
                    4,
                    (1, 2),
                    label=3,
                    header=_h("index question sentence label"),
                    rows=5463,
                    fairseq_split="valid",
                ),
                "test": _tsv(
                    "test.tsv",
                    3,
                    (1, 2),
                    index=0,
                    header=_h("index question sentence"),
                    rows=5463,
                    fairseq_split="test",
                ),
            },
            _NLI2,
            ("accuracy",),
            "accuracy",
            {"test": "QNLI.tsv"},
        ),
        GlueTaskSpec(
            "RTE",
            "RTE",
            {
                "train": _tsv("train.tsv", 4, (1, 2), label=3, header=_RTE_LIKE, rows=2490, fairseq_split="train"),
                "dev": _tsv("dev.tsv", 4, (1, 2), label=3, header=_RTE_LIKE, rows=277, fairseq_split="valid"),
                "test": _tsv("test.tsv", 3, (1, 2), index=0, header=_RTE_LIKE_TEST, rows=3000, fairseq_split="test"),
            },
            _NLI2,
            ("accuracy",),
            "accuracy",
            {"test": "RTE.tsv"},
        ),
        GlueTaskSpec(
            "WNLI",
            "WNLI",
            {
                "train": _tsv("train.tsv", 4, (1, 2), label=3, header=_RTE_LIKE, rows=635, fairseq_split="train"),
                "dev": _tsv("dev.tsv", 4, (1, 2), label=3, header=_RTE_LIKE, rows=71, fairseq_split="valid"),
                "test": _tsv("test.tsv", 3, (1, 2), index=0, header=_RTE_LIKE_TEST, rows=146, fairseq_split="test"),
            },
            _BINARY,
            ("accuracy",),
            "accuracy",
            {"test": "WNLI.tsv"},
        ),
        GlueTaskSpec(
            # the diagnostic set: test only, predicted with the MNLI model, not part of the GLUE score
            "AX",
            "diagnostic",
            {
                "test": _tsv(
                    "diagnostic.tsv", 3, (1, 2), index=0, header=_RTE_LIKE_TEST, rows=1104, fairseq_split="test"
                ),
            },
            _NLI3,
            ("accuracy",),
            "accuracy",
            {"test": "AX.tsv"},
            predicted_by="MNLI",
            in_glue_score=False,
        ),
    ]
}

GLUE_TASK_NAMES = tuple(GLUE_TASKS)
_ALIASES = {name.lower().replace("-", ""): name for name in GLUE_TASKS}
_ALIASES["diagnostic"] = "AX"


class UnknownGlueTaskError(UserError, KeyError):
    """A task name outside the table; a KeyError (a lookup) whose message is not quoted as KeyError's is."""

    def __str__(self):
        return str(self.args[0])


def get_glue_task(name: str | GlueTaskSpec) -> GlueTaskSpec:
    """Look a task up by its official name or any case/dash variant ("sst2", "sts-b", "mnli"); a GlueTaskSpec is
    returned as it is, so every function taking a task accepts either."""
    if isinstance(name, GlueTaskSpec):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in _ALIASES:
        raise UnknownGlueTaskError(f"unknown GLUE task {name!r}; choose one of {', '.join(GLUE_TASK_NAMES)}")
    return GLUE_TASKS[_ALIASES[key]]
