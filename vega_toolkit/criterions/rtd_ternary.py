"""`rtd_ternary`: Vega v1 phase-1 loss, 3-way replaced-token detection (original / shuffled / replaced).

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny ...

A per-token 3-class head and cross-entropy over every eligible token (per-token mean). `prior_loss` logs the loss
of a model that knows only the corruption rates: a run whose loss stays there has learnt nothing.
`--replace-with generator` draws the replacements from a generator (models/replacement_generator.py).
Loss, logged metrics and the generator variant: docs/design.md#rtd_ternary-3-way-replaced-token-detection.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics

from vega_toolkit.data.noising import IGNORE_INDEX, ORIGINAL, REPLACED, RTD_HEAD_NAME, SHUFFLED, label_prior_bits
from vega_toolkit.models.replacement_generator import (
    ReplacementGenerator,
    ReplacementGeneratorConfig,
    validation_rng,
)

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
    metrics.log_derived(
        "prior_loss",
        lambda m: round(label_prior_bits(_ratio(m, "_rtd_n_shuf", "_rtd_n"), _ratio(m, "_rtd_n_repl", "_rtd_n")), 3),
    )


def mlm_loss_and_counts(logits: torch.Tensor, targets: torch.Tensor, unigram_top: int):
    """The generator's summed CE over its N masked positions (logits [N, V], targets [N]) and its accuracy counts,
    beside those of always predicting `unigram_top` (the most frequent piece: the unigram baseline)."""
    loss = F.cross_entropy(logits, targets, reduction="sum")
    return loss, {
        "mlm_n": targets.numel(),
        "gen_correct": (logits.argmax(-1) == targets).sum(),
        "gen_unigram_correct": (targets == unigram_top).sum(),
    }


def reduce_generator_metrics(logging_outputs) -> None:
    """mlm_loss (bits per masked token), gen_acc and gen_unigram_acc of the generator's logging outputs."""

    def total(key):
        return utils.item(sum(log.get(key, 0) for log in logging_outputs))

    n = total("mlm_n")
    metrics.log_scalar("mlm_loss", total("mlm_loss") / max(n, 1) / math.log(2), n, round=3)
    for key in ("mlm_n", "gen_correct", "gen_unigram_correct"):
        metrics.log_scalar_sum("_" + key, total(key))
    metrics.log_derived("gen_acc", lambda m: _ratio(m, "_gen_correct", "_mlm_n"))
    metrics.log_derived("gen_unigram_acc", lambda m: _ratio(m, "_gen_unigram_correct", "_mlm_n"))


def reduce_joint_metrics(logging_outputs) -> None:
    """A generator objective's metrics: loss = the joint objective per eligible token (bits), rtd_loss and the RTD
    metrics, and the generator's."""
    reduce_rtd_metrics(logging_outputs, loss_key="rtd_loss")
    reduce_generator_metrics(logging_outputs)
    n = utils.item(sum(log.get("rtd_n", 0) for log in logging_outputs))
    loss = utils.item(sum(log.get("loss", 0) for log in logging_outputs))
    metrics.log_scalar("loss", loss / max(n, 1) / math.log(2), n, round=3)


def most_frequent_piece(dictionary, special: torch.Tensor) -> int:
    """The non-special symbol with the largest dict.txt count (what a unigram model always predicts)."""
    counts = torch.as_tensor(dictionary.count, dtype=torch.float).masked_fill(special, -1.0)
    return int(counts.argmax())


class GeneratorReplacing:
    """What `rtd_ternary --replace-with generator` and `rtd_electra` share: the generator, built from the criterion's
    flags, proposing the tokens of the chosen positions, and the joint loss."""

    def build_generator(self, cfg, task):
        self.generator = ReplacementGenerator(cfg, task.source_dictionary, task.noiser.is_special.nonzero().squeeze(1))
        self.rtd_lambda = float(cfg.rtd_lambda)
        self.seed = int(task.cfg.seed)
        self.unigram_top = most_frequent_piece(task.source_dictionary, task.noiser.is_special)

    def generator_pass(self, model, sample, tokens, positions, rng):
        """(discriminator input, replaced [B, T], summed MLM loss, generator counts) for `positions` of `tokens`."""
        original = sample["original_tokens"]
        logits, corrupted, replaced = self.generator.replace(model, tokens, original, positions, rng)
        mlm_loss, counts = mlm_loss_and_counts(logits, original[positions], self.unigram_top)
        return corrupted, replaced, mlm_loss, {"mlm_loss": mlm_loss.data, **counts}

    def discriminate(self, model, sample, src, labels, mlm_loss, gen_counts, binary: bool):
        """The discriminator's pass over the generator's output and the joint loss: MLM mean + rtd_lambda * RTD mean,
        as a sum over the `sample_size` eligible tokens fairseq divides by (the MLM mean is scaled by the local token
        count, as rtd_contrastive scales its per-sequence mean). `binary`: original vs replaced only."""
        logits, _ = model(src, token_head_name=RTD_HEAD_NAME, embedding_hook=self.generator.discriminator_hook(src))
        if binary:  # the shuffled logit of the task's ternary head takes no part (a softmax over the other two)
            logits = logits.float().index_fill(-1, torch.tensor([SHUFFLED], device=logits.device), float("-inf"))
        rtd_loss, counts = rtd_loss_and_counts(logits, labels)
        sample_size = counts["rtd_n"]
        loss = mlm_loss * (sample_size / max(int(gen_counts["mlm_n"]), 1)) + self.rtd_lambda * rtd_loss
        logging_output = {
            "loss": loss.data,
            "rtd_loss": rtd_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            **counts,
            **gen_counts,
        }
        return loss, sample_size, logging_output


@dataclass
class RTDTernaryConfig(ReplacementGeneratorConfig):
    replace_with: ChoiceEnum(["random", "generator"]) = field(
        default="random",
        metadata={
            "help": "what replaces the tokens the task chose to replace: uniform random "
            "pieces (Vega v1), or samples of a generator MLM (the --generator-* and "
            "--embedding-sharing flags)"
        },
    )


@register_criterion("rtd_ternary", dataclass=RTDTernaryConfig)
class RTDTernaryCriterion(GeneratorReplacing, FairseqCriterion):
    def __init__(self, cfg, task):
        super().__init__(task)
        self.cfg = cfg
        self.generator = None
        if self.replaces_with_generator(cfg):
            self.build_generator(cfg, task)

    @staticmethod
    def replaces_with_generator(cfg) -> bool:
        return cfg.replace_with == "generator"

    def forward(self, model, sample, reduce=True):
        if self.generator is not None:
            return self.forward_with_generator(model, sample)
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

    def corrupt_with_generator(self, model, sample):
        """The task's batch with generator samples in place of its random replacements: (discriminator input,
        ternary labels, summed MLM loss, generator counts)."""
        target = sample["target"]
        positions = target == REPLACED  # the task's choice; its random pieces there are not used
        src, replaced, mlm_loss, gen_counts = self.generator_pass(
            model, sample, sample["net_input"]["src_tokens"], positions, validation_rng(model, sample, self.seed)
        )
        return src, target.masked_fill(positions & ~replaced, ORIGINAL), mlm_loss, gen_counts

    def forward_with_generator(self, model, sample):
        return self.discriminate(model, sample, *self.corrupt_with_generator(model, sample), binary=False)

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        if any("mlm_n" in log for log in logging_outputs):
            reduce_joint_metrics(logging_outputs)
        else:
            reduce_rtd_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
