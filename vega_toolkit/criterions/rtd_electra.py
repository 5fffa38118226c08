"""`rtd_electra`: ELECTRA-style replaced token detection with a generator, and DeBERTa-v3's GDES.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_electra --embedding-sharing gdes --arch vega_tiny \
        --tokens-per-sample 128 --batch-size 32 --optimizer adam --lr 1e-3 --max-update 1000

Per batch: `--mask-prob` of the eligible tokens are masked, the generator (models/replacement_generator.py) predicts
them (MLM loss), a token sampled from it replaces each one, and the discriminator classifies every eligible token as
original or replaced. loss = MLM mean + `--rtd-lambda` * discriminator mean, one joint step.
Steps, why lambda 50 and a joint step, logged metrics: docs/design.md#rtd_electra-electra-style-rtd-with-a-generator.
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
        default=0.15,
        metadata={
            "help": "fraction of each sequence's eligible tokens the generator replaces (ELECTRA and DeBERTa-v3: 0.15)"
        },
    )


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
        self.masker = TokenNoiser.from_dictionary(task.source_dictionary, shuffle_prob=0.0, replace_prob=cfg.mask_prob)
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
