"""`rtd_ternary`: Vega v1 phase-1 loss, 3-way replaced-token detection (original / shuffled / replaced).

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny ...

A per-token 3-class head (no vocabulary softmax; registered by the task as token head "rtd") and cross-entropy
over every eligible token, originals included, as Yamaguchi et al. and ELECTRA average over all real tokens
(gucci-j/light-transformer-emnlp2021 src/model/data_collator.py; google-research/electra run_pretraining.py).
sample_size = number of eligible tokens, so fairseq's gradient normalisation gives the per-token mean.

Logged (summed over workers and batches, ratios derived at the end, so they are exact over a log interval):
loss (base 2, like fairseq's other criterions), rtd_acc, orig_recall / shuf_recall / repl_recall (recall of
each label), shuf_frac / repl_frac (realised corruption rates among eligible tokens) and prior_loss, the loss of a
model that knows those rates and nothing else: a run whose loss sits at prior_loss has learnt nothing (the
shuffle-only objective at lr 3e-3 stays there for 10,000 updates, README "Results on real data").
"""
import math

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from vega_toolkit.data.noising import IGNORE_INDEX, ORIGINAL, REPLACED, RTD_HEAD_NAME, SHUFFLED, label_prior_bits

_CLASS_NAMES = {ORIGINAL: "orig", SHUFFLED: "shuf", REPLACED: "repl"}


def rtd_loss_and_counts(logits: torch.Tensor, labels: torch.Tensor):
    """Summed CE over labelled tokens and the integer counts behind every logged RTD metric."""
    keep = labels != IGNORE_INDEX
    logits, labels = logits[keep], labels[keep]
    loss = F.cross_entropy(logits.float(), labels, reduction="sum")
    pred = logits.argmax(-1)
    # Tensors, not ints: no host sync per metric; fairseq sums them across workers in one all-reduce.
    counts = {"rtd_n": keep.sum(), "rtd_correct": (pred == labels).sum()}
    for label, name in _CLASS_NAMES.items():
        of_class = labels == label
        counts[f"rtd_n_{name}"] = of_class.sum()
        counts[f"rtd_correct_{name}"] = (of_class & (pred == label)).sum()
    return loss, counts


def _ratio(meters, num, den):
    den = meters[den].sum
    return float(meters[num].sum) / float(den) if den > 0 else float("nan")


def reduce_rtd_metrics(logging_outputs, loss_key="loss"):
    """The RTD part of reduce_metrics, shared with rtd_contrastive."""
    def total(key):
        return utils.item(sum(log.get(key, 0) for log in logging_outputs))

    n = total("rtd_n")
    metrics.log_scalar(loss_key, total(loss_key) / max(n, 1) / math.log(2), n, round=3)
    for key in ["rtd_n", "rtd_correct"] + [f"rtd_{k}_{c}" for c in _CLASS_NAMES.values() for k in ("n", "correct")]:
        metrics.log_scalar_sum("_" + key, total(key))
    metrics.log_derived("rtd_acc", lambda m: _ratio(m, "_rtd_correct", "_rtd_n"))
    for name in _CLASS_NAMES.values():
        metrics.log_derived(f"{name}_recall", lambda m, c=name: _ratio(m, f"_rtd_correct_{c}", f"_rtd_n_{c}"))
    metrics.log_derived("shuf_frac", lambda m: _ratio(m, "_rtd_n_shuf", "_rtd_n"))
    metrics.log_derived("repl_frac", lambda m: _ratio(m, "_rtd_n_repl", "_rtd_n"))
    metrics.log_derived("prior_loss", lambda m: round(label_prior_bits(_ratio(m, "_rtd_n_shuf", "_rtd_n"),
                                                                       _ratio(m, "_rtd_n_repl", "_rtd_n")), 3))


@register_criterion("rtd_ternary", dataclass=FairseqDataclass)
class RTDTernaryCriterion(FairseqCriterion):
    def __init__(self, cfg: FairseqDataclass, task):
        super().__init__(task)
        self.cfg = cfg

    def forward(self, model, sample, reduce=True):
        logits, _ = model(sample["net_input"]["src_tokens"], token_head_name=RTD_HEAD_NAME)
        loss, counts = rtd_loss_and_counts(logits, sample["target"])
        sample_size = counts["rtd_n"]
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            **counts,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        reduce_rtd_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
