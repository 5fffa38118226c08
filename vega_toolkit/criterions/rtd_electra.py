"""`rtd_electra`: ELECTRA-style replaced token detection with a generator, and DeBERTa-v3's GDES.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_electra --embedding-sharing gdes --arch vega_tiny \
        --tokens-per-sample 128 --batch-size 32 --optimizer adam --lr 1e-3 --max-update 1000

Per batch, from the task's clean blocks (`original_tokens`; the task's own shuffle/replace noise is not used):
1. `--mask-prob` (15%: ELECTRA `mask_prob`, DeBERTa-v3's MLM) of each sequence's eligible tokens are masked, exact
   counts per sequence, chosen by the task's corruption code (`TokenNoiser`, its replace set);
2. the generator (models/replacement_generator.py; `--generator-layers`, `--generator-width-fraction`,
   `--embedding-sharing`) predicts them: MLM loss, mean over the masked tokens;
3. a token drawn from its softmax replaces each masked one (no gradient through the draw); a draw equal to the
   original is labelled original, as ELECTRA (`masked * (1 - [sampled == original])`);
4. the discriminator (the task's model) classifies every eligible token as original or replaced with the task's
   RTD head: cross-entropy over its original and replaced logits, i.e. a sigmoid of their difference (the binary
   head of ELECTRA and DeBERTa-v3), mean over eligible tokens ([CLS]/[SEP] excluded, as rtd_ternary).
loss = MLM mean + `--rtd-lambda` * discriminator mean, one backward and one optimizer step for both networks.

Why one joint step with lambda 50 by default: fairseq's Trainer takes one optimizer step per update over the model's
and the criterion's parameters, which is ELECTRA's training (google-research/electra run_pretraining.py: one loss,
gen_weight 1, disc_weight 50, one train op). DeBERTa-v3's released code instead steps the generator and the
discriminator separately with rtd_lambda 10 (MS DeBERTa/apps/tasks/rtd_task.py; He et al. 2021, DeBERTaV3).
Under GDES the two losses train disjoint parameters (E_G only gets the MLM gradient, E_delta and the discriminator
only the RTD one), so a joint step differs from separate ones only through the shared gradient-norm clip and Adam's
epsilon; the paper-scale recipe sets DeBERTa-v3's 10 (recipes/pretrain/rtd_electra.sh).

Logged: loss (the joint objective per token, bits), mlm_loss, gen_acc (generator accuracy on masked tokens) and
gen_unigram_acc (always predicting the most frequent piece of dict.txt: the unigram baseline), rtd_loss and the
rtd_ternary metrics of the binary head (rtd_acc, orig_recall, repl_recall, repl_frac, prior_loss), and prior_acc,
the accuracy of calling every token original (1 - repl_frac): the baseline rtd_acc must beat.

`vega-convert export` writes the discriminator alone, with E + E_delta as its embedding under GDES.
"""
from dataclasses import dataclass, field

from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.logging import metrics

from vega_toolkit.criterions.rtd_ternary import GeneratorReplacing, _ratio, reduce_joint_metrics
from vega_toolkit.data.noising import ORIGINAL, REPLACED, TokenNoiser
from vega_toolkit.errors import UserError
from vega_toolkit.models.replacement_generator import ReplacementGeneratorConfig, validation_rng


@dataclass
class RTDElectraConfig(ReplacementGeneratorConfig):
    mask_prob: float = field(
        default=0.15, metadata={"help": "fraction of each sequence's eligible tokens the generator replaces "
                                        "(ELECTRA and DeBERTa-v3: 0.15)"})


@register_criterion("rtd_electra", dataclass=RTDElectraConfig)
class RTDElectraCriterion(GeneratorReplacing, FairseqCriterion):
    def __init__(self, cfg: RTDElectraConfig, task):
        super().__init__(task)
        if not hasattr(task, "noiser"):
            raise UserError("--criterion rtd_electra needs --task denoising_pretrain")
        if not 0 < cfg.mask_prob <= 1:
            raise UserError(f"--mask-prob must be in (0, 1], got {cfg.mask_prob}")
        self.cfg = cfg
        # the task's corruption with one kind of noise: its "replaced" set is an exact mask_prob share per sequence
        self.masker = TokenNoiser.from_dictionary(task.source_dictionary, shuffle_prob=0.0,
                                                  replace_prob=cfg.mask_prob)
        self.build_generator(cfg, task)

    def corrupt(self, model, sample):
        """(discriminator input, labels ORIGINAL/REPLACED/IGNORE_INDEX, summed MLM loss, generator counts)."""
        original = sample["original_tokens"]
        rng = validation_rng(model, sample, self.seed)
        labels = self.masker(original, generator=rng)[1]
        positions = labels == REPLACED
        src, replaced, mlm_loss, gen_counts = self.generator_pass(model, sample, original, positions, rng)
        return src, labels.masked_fill(positions & ~replaced, ORIGINAL), mlm_loss, gen_counts

    def forward(self, model, sample, reduce=True):
        return self.discriminate(model, sample, *self.corrupt(model, sample), binary=True)

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        reduce_joint_metrics(logging_outputs)
        metrics.log_derived("prior_acc", lambda m: _ratio(m, "_rtd_n_orig", "_rtd_n"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
