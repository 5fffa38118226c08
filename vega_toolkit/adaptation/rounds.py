"""The round driver shared by `glue_transductive` (Algorithm 1) and `glue_self_calibrated` (Algorithm 2).

    vega-train GLUE/RTE --task glue_transductive --glue-task RTE --finetune-from-model m0/checkpoint_best.pt \
        --max-rounds 3 --converge-eps 0.01 --save-dir out/rte-td ...   # every other flag as for `--task glue`

Each round is one ordinary fairseq training (`train_once`) on a derived config; SAVE_DIR/adaptation_state.json
records the finished steps, so the same command rerun continues at the first unfinished one.
How a round is derived and resumed: docs/design.md#adaptation-rounds.
"""

import copy
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from vega_toolkit.errors import UserError
from vega_toolkit.io.atomic import atomic_copy, atomic_write
from vega_toolkit.models.glue_predictor import decode_labels
from vega_toolkit.runtime.training import reset_fairseq_globals, train_once

logger = logging.getLogger(__name__)

STATE_FILE = "adaptation_state.json"


# --- state -------------------------------------------------------------------------------------------------------
def atomic_write_text(path: str, text: str):
    """Readers see the old or the new file, never half of one (the same writer as checkpoint files)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


class AdaptationState:
    """The JSON record of finished steps: {"rounds": [...], "done": bool, plus algorithm-specific keys}."""

    def __init__(self, save_dir: str):
        self.path = os.path.join(save_dir, STATE_FILE)
        self.data = {"rounds": [], "done": False}
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                try:
                    self.data = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{self.path}: unreadable adaptation state ({err}); delete it to restart the loop from scratch"
                    ) from None
            logger.info(f"resuming from {self.path}: {len(self.rounds)} round(s) recorded")

    @property
    def rounds(self) -> list[dict]:
        return self.data["rounds"]

    def save(self):
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


# --- one fairseq training ----------------------------------------------------------------------------------------
def round_model(save_dir: str) -> str:
    """The model a round hands on: its best checkpoint (by --best-checkpoint-metric), else its last."""
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        path = os.path.join(save_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{save_dir}: the round's training wrote no checkpoint_best.pt/checkpoint_last.pt (was --no-save given?)"
    )


def train_round(
    args, init_checkpoint: str, save_dir: str, extra_train: Sequence[str] = (), extra_only: bool = False
) -> str:
    """Fine-tune `init_checkpoint` with the user's flags, into `save_dir`, on train (+ `extra_train` TSVs in the
    task's train layout; only those with `extra_only`). Returns the round's model (see `round_model`)."""
    a = copy.deepcopy(args)
    a.finetune_from_model = init_checkpoint
    a.save_dir = save_dir
    a.extra_train_data = ",".join(extra_train)
    a.train_on_extra_only = extra_only
    a.adaptation_round = True  # the task's marker: this training is one round of a loop (tasks/glue_transductive.py)
    if getattr(a, "tensorboard_logdir", None):
        a.tensorboard_logdir = os.path.join(a.tensorboard_logdir, os.path.basename(save_dir))
    os.makedirs(save_dir, exist_ok=True)
    logger.info(
        f"training {save_dir} from {init_checkpoint}"
        + (f" with extra data {a.extra_train_data}" if extra_train else "")
    )
    reset_fairseq_globals()
    train_once(a)
    return round_model(save_dir)


def check_round_args(args):
    """Flags that cannot work with a loop of trainings, as clear errors."""
    if not getattr(args, "finetune_from_model", None):
        raise UserError(
            f"--task {args.task} needs --finetune-from-model: the fine-tuned model M0 (or, with "
            f"--train-initial-model, the pretrained model to fine-tune into M0)"
        )
    if not os.path.isfile(args.finetune_from_model):
        raise FileNotFoundError(f"--finetune-from-model {args.finetune_from_model}: file not found")
    if getattr(args, "restore_file", "checkpoint_last.pt") != "checkpoint_last.pt":
        raise UserError(
            f"--task {args.task} chains rounds with --finetune-from-model; --restore-file is not "
            f"supported (rerun the same command to resume)"
        )
    for flag in ("reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader"):
        if getattr(args, flag, False):
            raise UserError(
                f"--{flag.replace('_', '-')} cannot be combined with --task {args.task} (each round "
                f"starts from the previous round's model with fresh optimizer state already)"
            )
    if args.max_rounds < 0:
        raise UserError(f"--max-rounds must be >= 0, got {args.max_rounds}")
    if not 0.0 <= args.converge_eps <= 1.0:
        raise UserError(f"--converge-eps is a fraction in [0, 1], got {args.converge_eps}")
    if args.task == "glue_transductive":  # read at the end of round 0: a missing file would waste its training
        from vega_toolkit.data.glue_readers import glue_split_path
        from vega_toolkit.data.glue_tasks import get_glue_task

        glue = get_glue_task(args.glue_task)
        name = glue.split_name(args.pseudo_label_split)
        path = glue_split_path(args.data, glue, name)
        if not os.path.isfile(path):
            raise UserError(
                f"{path}: not found; --task glue_transductive pseudo-labels the unlabelled {glue.name} "
                f"{name} rows (--pseudo-label-split {args.pseudo_label_split})"
            )


# --- predictions and pseudo-labels -------------------------------------------------------------------------------
class RoundPredictions:
    """A model's predictions over the unlabelled rows: label strings (STS-B: clipped scores) and confidences."""

    def __init__(self, labels: list[str], confidence: list[float]):
        self.labels, self.confidence = labels, confidence

    @classmethod
    def from_logits(cls, glue, logits: torch.Tensor) -> "RoundPredictions":
        labels = decode_labels(glue, logits)
        if glue.is_regression:
            return cls(labels, [math.nan] * len(labels))
        return cls(labels, logits.float().softmax(-1).max(-1).values.tolist())

    def used(self, threshold: float) -> list[bool]:
        return [not (c < threshold) for c in self.confidence]  # NaN (regression) is always used

    def write(self, path: str, indices: Sequence[str], threshold: float):
        lines = ["index\tprediction\tconfidence\tused"]
        for index, label, conf, used in zip(indices, self.labels, self.confidence, self.used(threshold), strict=True):
            lines.append(f"{index}\t{label}\t{conf:.6f}\t{int(used)}")
        atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def read(cls, path: str) -> "RoundPredictions":
        labels, conf = [], []
        with open(path, encoding="utf-8") as f:
            next(f)
            for number, line in enumerate(f, start=2):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 4:
                    raise ValueError(f"{path}:{number}: expected index, prediction, confidence, used")
                labels.append(fields[1])
                conf.append(float(fields[2]))
        return cls(labels, conf)


def count_changed(glue, old: list[str], new: list[str], tolerance: float) -> int:
    """Number of rows whose pseudo-label changed (regression: |delta| > tolerance)."""
    if len(old) != len(new):
        raise ValueError(f"cannot compare {len(old)} and {len(new)} pseudo-labels")
    if glue.is_regression:
        return int(np.sum(np.abs(np.asarray(old, float) - np.asarray(new, float)) > tolerance))
    return sum(a != b for a, b in zip(old, new, strict=True))


def label_distribution(glue, labels: list[str]) -> dict[str, float]:
    if glue.is_regression:
        x = np.asarray(labels, dtype=float)
        return {
            "mean": round(float(x.mean()), 3),
            "std": round(float(x.std()), 3),
            "min": round(float(x.min()), 3),
            "max": round(float(x.max()), 3),
        }
    counts = Counter(labels)
    return {label: counts.get(label, 0) for label in glue.labels}


def write_train_layout(path: str, glue, rows: Sequence[tuple]):
    """Write (text_a, text_b, label) rows as a TSV in `glue`'s train-file layout, so the task's own reader loads
    them (vega_toolkit/data/glue_readers.py): header, field count, text and label columns as the official file."""
    spec = glue.splits["train"]
    lines = ["\t".join(spec.header)] if spec.header is not None else []
    for text_a, text_b, label in rows:
        fields = [""] * spec.num_fields
        texts = (text_a,) if text_b is None else (text_a, text_b)
        for col, text in zip(spec.text_columns, texts, strict=False):
            fields[col] = " ".join(text.split())  # tabs/newlines inside a sentence would break the layout
        fields[spec.label_column] = label
        lines.append("\t".join(fields))
    atomic_write_text(path, "\n".join(lines) + "\n")


def unlabelled_examples(task, split: str):
    """Raw test rows through the GLUE reader for unlabelled files. The test layout has no label column, so the
    hidden labels cannot reach the pseudo-labels; checked here so a mis-declared split cannot slip through."""
    from vega_toolkit.data.glue_readers import glue_split_path, read_glue_file

    name = task.glue.split_name(split)
    spec = task.glue.splits[name]
    if spec.label_column is not None:
        raise ValueError(
            f"--pseudo-label-split {split} ({task.glue.name} {name}) is a labelled split; "
            f"transductive pseudo-labels are for unlabelled test splits"
        )
    examples = read_glue_file(glue_split_path(task.cfg.data, task.glue, name), task.glue, name)
    assert all(ex.label is None for ex in examples)
    return examples


def dev_metric(glue, dev: dict[str, dict[str, float]]) -> tuple:
    """(metric name, value) reported for a model: the task's selection metric on its first dev split."""
    first = next(iter(dev.values()))
    name = glue.best_metric if glue.best_metric in first else glue.metrics[0]
    return name, first[name]


# --- Algorithm 1 -------------------------------------------------------------------------------------------------
def drive_transductive(args) -> dict:
    """The round driver of `--task glue_transductive` (vega_toolkit/adaptation/__init__.py `ROUND_DRIVERS`)."""
    check_round_args(args)
    return run_transductive(args)


def run_transductive(args, state: AdaptationState | None = None, m0: str | None = None) -> dict:
    """Algorithm 1 from the model `m0` (default: --finetune-from-model, or a fine-tune of it on train with
    --train-initial-model). Returns the state dict; the last printed line is `dev <metric>=<value>`.

    The loop keeps only the stop rules; `score_round` predicts, writes and scores each round."""
    save_dir = args.save_dir
    state = state or AdaptationState(save_dir)
    rounds = state.rounds
    if not rounds:
        if m0 is None and args.train_initial_model:
            m0 = train_round(args, args.finetune_from_model, os.path.join(save_dir, "round_0"))
        rounds.append({"round": 0, "model": m0 or args.finetune_from_model})
        state.save()
    while True:
        cur = rounds[-1]
        k = cur["round"]
        if "predictions" not in cur:
            score_round(args, rounds)
            state.save()
        if cur.get("changed_fraction") is not None and cur["changed_fraction"] < args.converge_eps:
            state.data["stopped"] = f"converged: {cur['changed_fraction']:.2%} < --converge-eps {args.converge_eps}"
            break
        if k >= args.max_rounds:
            state.data["stopped"] = f"--max-rounds {args.max_rounds} reached"
            break
        model = train_round(args, cur["model"], os.path.join(save_dir, f"round_{k + 1}"), [cur["pseudo_train"]])
        rounds.append({"round": k + 1, "model": model})
        state.save()
    state.data["done"] = True
    state.data["final_model"] = rounds[-1]["model"]
    publish_final_model(rounds[-1]["model"], os.path.join(save_dir, "checkpoint_best.pt"))
    state.save()
    print_summary(state)
    return state.data


def score_round(args, rounds: list):
    """Round K = rounds[-1]: predict --pseudo-label-split with its model, write SAVE_DIR/round_K/predictions.tsv
    and pseudo_train.tsv, score dev, count the labels changed since round K-1, and record it all in rounds[-1]."""
    from vega_toolkit.models.glue_predictor import GluePredictor, score_dev

    cur = rounds[-1]
    k = cur["round"]
    predictor = GluePredictor.from_checkpoint(cur["model"])
    glue = predictor.glue
    if args.confidence_threshold and glue.is_regression:
        raise ValueError(
            f"--confidence-threshold applies to classification; {glue.name} is regression "
            f"(use --regression-tolerance for its convergence test)"
        )
    examples = unlabelled_examples(predictor.task, args.pseudo_label_split)
    preds = RoundPredictions.from_logits(glue, predictor.logits(args.pseudo_label_split))
    if len(preds.labels) != len(examples):
        raise RuntimeError(f"{len(preds.labels)} predictions for {len(examples)} rows")
    round_dir = os.path.join(args.save_dir, f"round_{k}")
    pred_path = os.path.join(round_dir, "predictions.tsv")
    preds.write(pred_path, [ex.index for ex in examples], args.confidence_threshold)
    used = preds.used(args.confidence_threshold)
    pseudo_path = os.path.join(round_dir, "pseudo_train.tsv")
    write_train_layout(
        pseudo_path,
        glue,
        [(ex.text_a, ex.text_b, label) for ex, label, u in zip(examples, preds.labels, used, strict=True) if u],
    )
    dev = score_dev(predictor)
    del predictor
    changed = None
    if k > 0:
        prev = RoundPredictions.read(rounds[-2]["predictions"])
        changed = count_changed(glue, prev.labels, preds.labels, args.regression_tolerance)
    metric, value = dev_metric(glue, dev)
    cur.update(
        {
            "predictions": pred_path,
            "pseudo_train": pseudo_path,
            "n": len(examples),
            "used": int(sum(used)),
            "changed": changed,
            "changed_fraction": None if changed is None else changed / len(examples),
            "distribution": label_distribution(glue, preds.labels),
            "dev": dev,
            "dev_metric": [metric, value],
        }
    )
    logger.info(
        f"round {k}: {metric}={value:.2f} on dev; pseudo-labels {cur['distribution']}, "
        f"{cur['used']}/{cur['n']} used"
        + ("" if changed is None else f", {changed} changed ({cur['changed_fraction']:.2%})")
    )


def publish_final_model(model: str, target: str):
    """Copy the loop's final model to SAVE_DIR/checkpoint_best.pt (atomically), where every GLUE tool and recipe
    (vega-generate, recipes/glue/all.sh) looks for a task's fine-tuned model."""
    if os.path.abspath(model) != os.path.abspath(target):
        atomic_copy(model, target, overwrite=True)  # fsync'ed temporary file, then rename


def print_summary(state: AdaptationState):
    print("| round | model | pseudo-labels used | changed | distribution | dev |")
    print("|---|---|---|---|---|---|")
    for r in state.rounds:
        if "dev_metric" not in r:
            continue
        changed = "-" if r["changed"] is None else f"{r['changed']} ({r['changed_fraction']:.1%})"
        metric, value = r["dev_metric"]
        print(
            f"| {r['round']} | {r['model']} | {r['used']}/{r['n']} | {changed} | "
            f"{json.dumps(r['distribution'])} | {metric}={value:.2f} |"
        )
    print(f"stopped: {state.data.get('stopped')}")
    metric, value = state.rounds[-1]["dev_metric"]
    print(f"dev {metric}={value:.2f}")
