"""`adversarial_ce`: SiFT (scale-invariant fine-tuning, He et al. 2021), DeBERTa's adversarial fine-tuning.

    vega-train glue_data/MNLI --task glue --glue-task MNLI --criterion adversarial_ce ...   # DeBERTa's SiFT values
    vega-train ... --criterion adversarial_ce --adv-lambda 3 ...                             # one of them changed

`AdversarialCEConfig`'s defaults are the one statement of SiFT's hyperparameters: the GLUE recipes, conf/glue and
vega-study read them (tests/test_hydra_configs.py checks it).

One training step, its DeBERTa sources and its cost: docs/design.md#sift-adversarial_ce.
"""

from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from vega_toolkit.criterions.glue_prediction import GluePredictionConfig, GluePredictionCriterion

ADV_LOSSES = ChoiceEnum(["symmetric-kl", "kl", "mse"])


@dataclass
class AdversarialCEConfig(GluePredictionConfig):
    adv_lambda: float = field(
        default=5.0,
        metadata={
            "help": "weight of the adversarial loss; 0 = plain fine-tuning (DeBERTa's SiFT scripts use 5, "
            "3 for v3-xsmall; MS@experiments/glue/mnli.sh)"
        },
    )
    adv_init_perturbation: float = field(
        default=1e-2,
        metadata={
            "help": "sigma of the initial perturbation N(0, sigma^2), clipped to +-2 sigma "
            "(DeBERTa vat_init_perturbation)"
        },
    )
    adv_learning_rate: float = field(
        default=1e-4, metadata={"help": "step size of the single ascent step (DeBERTa vat_learning_rate)"}
    )
    adv_loss: ADV_LOSSES = field(
        default="symmetric-kl",
        metadata={
            "help": "divergence maximised by the ascent step (DeBERTa vat_loss_fn); the final adversarial "
            "loss is always symmetric KL (MSE for regression), as in DeBERTa"
        },
    )
    adv_layer_norm_eps: float = field(
        default=1e-7, metadata={"help": "epsilon of the non-affine LayerNorm that normalises the embeddings"}
    )


def _flag_value(value) -> str:
    """A default as a command-line value, the shorter of 0.01 and 1e-2 (1e-2 on a tie), 5.0 as 5."""
    if isinstance(value, float):
        plain = f"{value:g}"
        mantissa, exponent = f"{value:e}".split("e")
        scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return scientific if len(scientific) <= len(plain) else plain
    return str(value)


def sift_args() -> tuple[str, ...]:
    """vega-train's flags of SiFT at `AdversarialCEConfig`'s defaults, for commands that must show the values
    (vega-study's keyed cells; its report reads --adv-lambda back). The recipes and conf/glue/_sift.yaml name the
    criterion only, so these defaults are the one statement of SiFT's hyperparameters."""
    defaults = {f.name: f.default for f in fields(AdversarialCEConfig)}
    args = ["--criterion", "adversarial_ce"]
    for name in ("adv_lambda", "adv_learning_rate", "adv_init_perturbation", "adv_loss"):
        args += ["--" + name.replace("_", "-"), _flag_value(defaults[name])]
    return tuple(args)


class SiftPerturbation:
    """The `embedding_hook`: normalise the word embeddings (clean mode) or return z.detach() + delta."""

    def __init__(self, eps: float = 1e-7):
        self.eps = eps
        self.z: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None  # None = clean mode

    def __call__(self, e: torch.Tensor) -> torch.Tensor:
        if self.delta is None:
            self.z = F.layer_norm(e.float(), e.shape[-1:], eps=self.eps).to(e.dtype)
            return self.z
        if self.z is None or self.z.shape != e.shape:
            raise RuntimeError("SiFT: the adversarial pass must follow a clean pass over the same batch")
        return (self.z.detach().float() + self.delta).to(self.z.dtype)


def symmetric_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p_t || p_a) + KL(p_a || p_t) with DeBERTa's surrogate gradients (fp32)."""
    log_a, log_t = F.log_softmax(logits.float(), dim=-1), F.log_softmax(target.float(), dim=-1)
    p_a, p_t = log_a.exp().detach(), log_t.exp().detach()
    return (p_t * (log_t.detach() - log_a)).sum(-1) + (p_a * (log_a.detach() - log_t)).sum(-1)


def kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p_target || p_logits) in fp32."""
    log_a, log_t = F.log_softmax(logits.float(), dim=-1), F.log_softmax(target.float(), dim=-1)
    return (log_t.exp() * (log_t - log_a)).sum(-1)


def mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((logits.float() - target.float()) ** 2).sum(-1)


DIVERGENCES = {"symmetric-kl": symmetric_kl, "kl": kl, "mse": mse}


def sift_adversarial_loss(
    forward,
    hook: SiftPerturbation,
    clean_logits: torch.Tensor,
    regression: bool,
    init_perturbation: float,
    learning_rate: float,
    ascent_loss: str = "symmetric-kl",
):
    """Steps 2-4 above; `forward()` reruns the model with `hook` as its embedding hook. Returns the summed L_adv."""
    if hook.z is None:
        raise RuntimeError("SiFT: run the clean pass with the hook first")
    ascent = DIVERGENCES["mse" if regression else ascent_loss]
    final = mse if regression else symmetric_kl
    sigma = init_perturbation
    delta = (torch.randn(hook.z.shape, device=hook.z.device, dtype=torch.float32) * sigma).clamp_(-2 * sigma, 2 * sigma)
    delta.requires_grad_(True)
    hook.delta = delta
    try:
        adv_logits = forward()
        loss0 = ascent(adv_logits, clean_logits.detach()).sum()
        (grad,) = torch.autograd.grad(loss0, delta)  # gradient for delta only; parameters get none
        if torch.isfinite(grad).all():
            step = grad / (1e-6 + grad.abs().amax(dim=-1, keepdim=True))
            delta = (delta + learning_rate * step).detach()
        else:
            delta = delta.detach()
        hook.delta = delta
        adv_logits = forward()
        return final(adv_logits, clean_logits).sum()
    finally:
        hook.delta = None


class _HookedModel:
    """Calls the model with the SiFT hook and keeps the logits, so the parent criterion computes the task loss and
    its logging unchanged."""

    def __init__(self, model, hook):
        self._model, self._hook, self.logits = model, hook, None

    def __call__(self, *args, **kwargs):
        out = self._model(*args, embedding_hook=self._hook, **kwargs)
        self.logits = out[0]
        return out

    def __getattr__(self, name):
        return getattr(self._model, name)


@register_criterion("adversarial_ce", dataclass=AdversarialCEConfig)
class AdversarialCECriterion(GluePredictionCriterion):
    def __init__(self, cfg: AdversarialCEConfig, task):
        super().__init__(cfg, task)
        if cfg.adv_lambda < 0 or cfg.adv_init_perturbation <= 0 or cfg.adv_learning_rate < 0:
            raise ValueError("--adv-lambda and --adv-learning-rate must be >= 0 and --adv-init-perturbation > 0")
        self.cfg = cfg

    def forward(self, model, sample, reduce=True):
        if self.cfg.adv_lambda == 0:  # SiFT off: exactly the plain criterion (no extra normalisation either)
            return super().forward(model, sample, reduce=reduce)
        hook = SiftPerturbation(self.cfg.adv_layer_norm_eps)
        hooked = _HookedModel(model, hook)
        loss, sample_size, logging_output = super().forward(hooked, sample, reduce=reduce)
        if model.training:
            net_input = sample["net_input"]

            def forward():
                logits, _ = model(
                    **net_input,
                    features_only=True,
                    classification_head_name=self.classification_head_name,
                    embedding_hook=hook,
                )
                return logits.view(-1, 1) if self.regression_target else logits

            clean = hooked.logits.view(-1, 1) if self.regression_target else hooked.logits
            adv = sift_adversarial_loss(
                forward,
                hook,
                clean,
                self.regression_target,
                self.cfg.adv_init_perturbation,
                self.cfg.adv_learning_rate,
                self.cfg.adv_loss,
            )
            loss = loss + self.cfg.adv_lambda * adv  # both sums over the batch: fairseq divides by sample_size
            logging_output["loss"] = loss.data
            logging_output["adv_loss"] = adv.data
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        from fairseq.logging import metrics

        adv = sum(log.get("adv_loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if adv and sample_size:
            metrics.log_scalar("adv_loss", adv / sample_size, sample_size, round=6)
