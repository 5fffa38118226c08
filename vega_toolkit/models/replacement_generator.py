"""The generator of ELECTRA-style replaced-token detection and the discriminator's embedding sharing (GDES / ES / none).

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_electra --embedding-sharing gdes --arch vega_tiny ...
    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --replace-with generator --arch vega_tiny ...

A small `vega_encoder` MLM proposes replacements; the criterion holds it as `self.generator`, so its weights are
optimized, saved and restored with the model's. `--generator-layers`, `--generator-width-fraction` and
`--embedding-sharing gdes|es|none` default to DeBERTa-v3's choices. Sizes, sharing modes and the mask input:
docs/design.md#replacement-generator-and-embedding-sharing.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II, OmegaConf
from torch import nn
from torch.func import functional_call

from vega_toolkit.errors import UserError
from vega_toolkit.models.vega_encoder import VegaEncoder, VegaEncoderConfig

EMBEDDING_SHARING = ("gdes", "es", "none")
# the criterions hold the generator as `self.generator`: the key of E_delta in checkpoint["criterion"]
EMBEDDING_DELTA_KEY = "generator.embedding_delta"
_SHARED_NAMES = ("embeddings.embed_tokens.weight", "lm_head.weight")  # tied: the input and output embedding


@dataclass
class ReplacementGeneratorConfig(FairseqDataclass):
    generator_layers: int = field(
        default=0,
        metadata={
            "help": "generator depth; 0 = half the discriminator's layers (DeBERTa-v3; ELECTRA keeps the full depth)"
        },
    )
    generator_width_fraction: float = field(
        default=1.0,
        metadata={
            "help": "generator hidden size, heads and FFN as a fraction of the discriminator's "
            "(DeBERTa-v3: 1.0; ELECTRA: 0.25)"
        },
    )
    embedding_sharing: ChoiceEnum(list(EMBEDDING_SHARING)) = field(
        default="gdes",
        metadata={
            "help": "gdes: discriminator embedding = sg(E_G) + E_delta (DeBERTa-v3); es: one "
            "embedding trained by both losses (ELECTRA); none: separate embeddings"
        },
    )
    rtd_lambda: float = field(
        default=50.0,
        metadata={
            "help": "loss = MLM + lambda * discriminator loss, both per-token means, one joint "
            "step (ELECTRA's disc_weight 50; DeBERTa-v3 uses 10 with separate steps)"
        },
    )
    # the discriminator's config (not a flag): the generator copies it (dropout, positions, attention) and changes
    # the sizes. Typed Any: a FairseqDataclass type would make fairseq add the model's flags a second time.
    discriminator: Any = II("model")


def generator_sizes(disc, layers: int, width_fraction: float):
    """(layers, hidden, heads, ffn) of the generator of a discriminator config (ELECTRA scales hidden, heads and FFN
    together, so the per-head size stays)."""
    if layers < 0:
        raise UserError(f"--generator-layers must be >= 0 (0 = half the discriminator's), got {layers}")
    if not 0 < width_fraction <= 1:
        raise UserError(f"--generator-width-fraction must be in (0, 1], got {width_fraction}")
    layers = layers or max(1, disc.encoder_layers // 2)
    hidden = round(width_fraction * disc.encoder_embed_dim)
    heads = max(1, round(width_fraction * disc.encoder_attention_heads))
    ffn = max(1, round(width_fraction * disc.encoder_ffn_embed_dim))
    if hidden < 1 or hidden % heads:
        raise UserError(
            f"--generator-width-fraction {width_fraction}: a generator of hidden size {hidden} cannot "
            f"have {heads} heads of equal size (discriminator: {disc.encoder_embed_dim} / "
            f"{disc.encoder_attention_heads})"
        )
    return layers, hidden, heads, ffn


class _ZeroGradient(torch.autograd.Function):
    """sg(x) that stays in the autograd graph: the value of x, an exact zero gradient.

    `x.detach()` would cut E out of the discriminator's graph; DDP with --find-unused-parameters (the paper-scale
    configs set it) would then mark E ready after the discriminator's forward and fail when the generator's loss
    reaches it in the same backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


class ReplacementGenerator(nn.Module):
    """A `vega_encoder` MLM of the configured size and the embedding sharing between it and the discriminator."""

    def __init__(self, cfg: ReplacementGeneratorConfig, dictionary, special_ids: torch.Tensor):
        super().__init__()
        if cfg.embedding_sharing not in EMBEDDING_SHARING:
            raise UserError(
                f"--embedding-sharing must be one of {', '.join(EMBEDDING_SHARING)}, got {cfg.embedding_sharing!r}"
            )
        disc = cfg.discriminator
        self.sharing = str(cfg.embedding_sharing)
        self.padding_idx = dictionary.pad()
        disc_embed_dim = disc.embedding_dim or disc.encoder_embed_dim
        if self.sharing == "gdes" and (disc_embed_dim != disc.encoder_embed_dim or disc.position_biased_input):
            # the GDES sum is taken on the looked-up word vectors right before the LayerNorm; a projection or
            # absolute positions added before that point would be cut off from the discriminator's gradient
            raise UserError(
                "--embedding-sharing gdes needs a discriminator without --embedding-dim and without "
                "--position-biased-input (DeBERTa-v2/v3 have neither); use es or none"
            )
        layers, hidden, heads, ffn = generator_sizes(disc, cfg.generator_layers, cfg.generator_width_fraction)
        fields = OmegaConf.to_container(disc, resolve=True) if OmegaConf.is_config(disc) else dict(vars(disc))
        fields = {k: v for k, v in fields.items() if k in VegaEncoderConfig.__dataclass_fields__}
        fields.update(
            encoder_layers=layers,
            encoder_embed_dim=hidden,
            encoder_attention_heads=heads,
            encoder_ffn_embed_dim=ffn,
            attention_head_dim=0,
            load_checkpoint_heads=False,
            # shared: the discriminator's embedding width, projected to the generator's hidden size
            embedding_dim=0 if self.sharing == "none" or disc_embed_dim == hidden else disc_embed_dim,
        )
        self.encoder = VegaEncoder(VegaEncoderConfig(**fields), dictionary)
        if self.sharing != "none":  # E lives in the discriminator; it is passed in at every forward
            del self.encoder.embeddings.embed_tokens.weight
            del self.encoder.lm_head.weight
        self.mask_embedding = nn.Parameter(torch.empty(hidden).normal_(0.0, 0.02))
        if self.sharing == "gdes":
            self.embedding_delta = nn.Parameter(torch.zeros(len(dictionary), disc_embed_dim))
        self.register_buffer("is_special", torch.zeros(len(dictionary), dtype=torch.bool), persistent=False)
        self.is_special[special_ids] = True

    def mlm_logits(self, discriminator, tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Logits [N, V] of the N masked positions (row-major order), the non-special vocabulary only (specials at
        -inf). The generator reads `tokens` with every masked position's embedding replaced by the mask vector."""

        def hide_masked(x):
            return torch.where(masked.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)

        kwargs = {"masked_tokens": masked, "embedding_hook": hide_masked}
        if self.sharing == "none":
            logits = self.encoder(tokens, **kwargs)[0]
        else:
            shared = discriminator.encoder.embed_tokens.weight
            logits = functional_call(self.encoder, {name: shared for name in _SHARED_NAMES}, (tokens,), kwargs)[0]
        return logits.float().masked_fill(self.is_special, float("-inf"))

    @torch.no_grad()
    def sample(self, logits: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """One token per row of `logits`, drawn from the generator's softmax (temperature 1, no gradient: ELECTRA and
        DeBERTa-v3 sample with multinomial / Gumbel draws that nothing differentiates through)."""
        if logits.size(0) == 0:
            return logits.new_zeros(0, dtype=torch.long)
        return torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=rng).squeeze(1)

    def discriminator_hook(self, src_tokens: torch.Tensor):
        """The `embedding_hook` of the discriminator's forward: gdes turns its looked-up E[src] into
        sg(E)[src] + E_delta[src]; es and none use E as it is (None)."""
        if self.sharing != "gdes":
            return None

        def gdes(x):
            return _ZeroGradient.apply(x) + F.embedding(src_tokens, self.embedding_delta, self.padding_idx).to(x.dtype)

        return gdes

    def replace(
        self,
        discriminator,
        tokens: torch.Tensor,
        original: torch.Tensor,
        positions: torch.Tensor,
        rng: torch.Generator | None = None,
    ):
        """Generator pass over `tokens` with `positions` masked: (MLM logits [N, V], the input with a sampled token at
        every masked position, replaced [B, T] = masked positions whose sample differs from `original`)."""
        logits = self.mlm_logits(discriminator, tokens, positions)
        sampled = self.sample(logits, rng)
        corrupted = tokens.masked_scatter(positions, sampled)
        # ELECTRA labels a sample equal to the original as original: the discriminator cannot see a difference
        return logits, corrupted, positions & (corrupted != original)


def validation_rng(model, sample, seed: int) -> torch.Generator | None:
    """None in training (fairseq seeds the global RNG per update); in evaluation a generator seeded by the batch's
    first example id, so every validation masks and samples a held-out batch the same way (as the task's noise)."""
    if model.training:
        return None
    device = sample["original_tokens"].device
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + int(sample["id"][0]))
