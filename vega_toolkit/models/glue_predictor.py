"""A fine-tuned `glue` checkpoint as a classifier (the GLUE counterpart of RoBERTa's hub `predict`), its dev scores,
and the one decoding of logits into GLUE labels.

    from vega_toolkit.models.glue_predictor import GluePredictor, score_dev
    clf = GluePredictor.from_checkpoint("out/rte/checkpoint_best.pt")
    clf.predict([("A man is eating.", "Someone eats.")])          # -> ['entailment']
    score_dev(clf)                                                # -> {'dev': {'accuracy': ...}}

Used by `vega-generate` (submission files), the adaptation loops (pseudo-labels, vega_toolkit/adaptation) and the
demo report. Labels are the strings of the task table (vega_toolkit/data/glue_tasks.py); STS-B scores are clipped
to [0, 5] with 3 decimals (`decode_labels`). Prediction is batched by padded tokens over length-sorted examples,
under `torch.inference_mode()` (vega_toolkit/tasks/glue.py `predict_logits`).
"""

import os
from collections.abc import Sequence

import numpy as np
import torch

from vega_toolkit.errors import UserError

# STS-B similarity scores are defined on [0, 5] (Cer et al. 2017); a regression head can step outside.
STSB_RANGE = (0.0, 5.0)


def decode_labels(glue, logits: torch.Tensor) -> list[str]:
    """Label strings of `logits` [N, C] for task row `glue`: the arg-max class's label, or for regression the score
    clipped to the task's range, written with 3 decimals (the submission format)."""
    if glue.is_regression:
        return [f"{x:.3f}" for x in logits.view(-1).clamp(*STSB_RANGE).tolist()]
    return [glue.labels[i] for i in logits.argmax(-1).tolist()]


class GluePredictor:
    """A fine-tuned `glue` checkpoint: its fairseq task (encoder, label table) and model, in eval mode."""

    def __init__(self, task, model, path: str):
        self.task, self.model, self.path = task, model, path
        self.glue = task.glue
        self.head = task.cfg.classification_head_name

    @classmethod
    def from_checkpoint(
        cls,
        path: str,
        glue_dir: str | None = None,
        vocab_dir: str | None = None,
        device: str | None = None,
        cache_dir: str | None = None,
    ) -> "GluePredictor":
        """`glue_dir`: the GLUE root or the task's own folder (default: the data folder the checkpoint was trained
        on); `vocab_dir`, `cache_dir`: override the checkpoint's --vocab-dir and --glue-cache-dir."""
        from fairseq import checkpoint_utils
        from omegaconf import open_dict

        from vega_toolkit.data.glue_tasks import get_glue_task
        from vega_toolkit.models.heads import check_classification_head
        from vega_toolkit.models.loading import load_model

        state = checkpoint_utils.load_checkpoint_to_cpu(path)
        cfg = state["cfg"]
        if cfg is None or "glue_task" not in cfg.task:
            raise UserError(f"{path}: not a checkpoint of the `glue` task (task: {getattr(cfg.task, '_name', None)})")
        glue = get_glue_task(cfg.task.glue_task)
        check_classification_head(
            path, state["model"], cfg.task.classification_head_name, glue.num_classes, f"--glue-task {glue.name}"
        )
        overrides = {}
        if glue_dir is not None:  # the GLUE root or the task's own folder (glue_split_path names a missing file)
            task_folder = os.path.join(glue_dir, glue.folder)
            overrides["data"] = task_folder if os.path.isdir(task_folder) else glue_dir
        if vocab_dir is not None:
            overrides["vocab_dir"] = vocab_dir
        if cache_dir is not None:
            overrides["glue_cache_dir"] = cache_dir
        with open_dict(cfg):
            for key, value in overrides.items():
                cfg.task[key] = value
        model, _, task = load_model(path, state=state)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        return cls(task, model, path)

    def logits(self, split: str, max_tokens: int = 8192) -> torch.Tensor:
        """Logits of fairseq split `split` of the checkpoint's task, in file order."""
        return self.task.predict_logits(self.model, split, max_tokens)

    def logits_for(self, encoded, max_tokens: int = 8192) -> torch.Tensor:
        """Logits of an EncodedSplit (vega_toolkit/data/glue_binarize.py), in its order."""
        from vega_toolkit.tasks.glue import predict_logits

        return predict_logits(self.model, encoded, self.head, self.task.encoder, self.task.max_length, max_tokens)

    def labels_from_logits(self, logits: torch.Tensor) -> list[str]:
        return decode_labels(self.glue, logits)

    def encode(self, examples: Sequence[str | tuple[str, str]]):
        """Raw sentences or sentence pairs as an EncodedSplit (unlabelled, indexed 0..N-1)."""
        from vega_toolkit.data.glue_binarize import EncodedSplit

        pairs = [(x, None) if isinstance(x, str) else tuple(x) for x in examples]
        enc = self.task.encoder
        a = enc.encode([p[0] for p in pairs])
        b = enc.encode([p[1] for p in pairs]) if self.glue.is_pair else None
        return EncodedSplit(a, b, None, [str(i) for i in range(len(pairs))])

    def predict(self, examples: Sequence[str | tuple[str, str]], max_tokens: int = 8192) -> list[str]:
        """Label strings (STS-B: clipped scores) for raw sentences or sentence pairs."""
        return self.labels_from_logits(self.logits_for(self.encode(examples), max_tokens))


DEV_PREDICTIONS = "dev"  # vega-generate --dev: OUT_DIR/dev/<task>.<split>.txt, one prediction per dev example


def dev_predictions(predictor: GluePredictor, max_tokens: int = 8192) -> dict[str, tuple[np.ndarray, list]]:
    """{dev split: (predictions, gold labels)}: label strings for classification, unclipped scores for STS-B."""
    glue, out = predictor.glue, {}
    for name, spec in glue.splits.items():
        if not name.startswith("dev"):
            continue
        encoded = predictor.task.encoded_split(spec.fairseq_split)
        logits = predictor.logits_for(encoded, max_tokens)
        if glue.is_regression:
            out[name] = (logits.view(-1).numpy(), np.asarray([float(x) for x in encoded.labels]))
        else:
            out[name] = (np.asarray(decode_labels(glue, logits)), encoded.labels)
    return out


def score_dev(
    predictor: GluePredictor, max_tokens: int = 8192, predictions: dict[str, tuple[np.ndarray, list]] | None = None
) -> dict[str, dict[str, float]]:
    """GLUE metrics of every dev split of the checkpoint's task: {split: {metric: value}} (STS-B: Pearson and
    Spearman of the unclipped scores). PREDICTIONS: dev_predictions' result, if already computed."""
    from vega_toolkit.metrics.glue_metrics import task_metrics

    predictions = predictions if predictions is not None else dev_predictions(predictor, max_tokens)
    return {name: task_metrics(predictor.glue, preds, labels) for name, (preds, labels) in predictions.items()}
