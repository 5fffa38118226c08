"""Training FLOPs per token of the pretraining objectives with and without a generator, for arms at equal compute.

    from vega_toolkit.study.generator_flops import equal_compute_updates
    equal_compute_updates(10000, "vega_tiny", 128, 8000, ("--criterion", "rtd_electra"))   # -> fewer updates
    # the study calls it through plan.pretrain_budget(scale, arm) for every arm declared with equal_compute=True

A generator arm gets updates x F(rtd_ternary) / F(arm), F = training FLOPs per token (ELECTRA's
flops_computation.py counting). What F counts: docs/design.md#generator-flops-and-equal-compute-arms.
"""

import argparse

from vega_toolkit.models.replacement_generator import generator_sizes

_GENERATOR_CRITERIONS = ("rtd_electra",)


def encoder_layer_flops(width: int, ffn: int, seq_len: int, rel_rows: int) -> float:
    """Forward FLOPs per token of one disentangled-attention layer (see the module docstring)."""
    rows = min(rel_rows, 2 * seq_len - 1)
    return 8 * width**2 + 4 * width * ffn + 4 * seq_len * width + 4 * rows * width + 4 * rows * width**2 / seq_len


def _arch(arch: str):
    """The vega_encoder config of a registered architecture (the arch hook over the dataclass defaults)."""
    from fairseq.models import ARCH_CONFIG_REGISTRY

    import vega_toolkit  # noqa: F401 (registers the architectures)
    from vega_toolkit.models.vega_encoder import VegaEncoderConfig

    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](args)
    return VegaEncoderConfig(**{k: v for k, v in vars(args).items() if k in VegaEncoderConfig.__dataclass_fields__})


def _objective(pretrain_args: tuple[str, ...]):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--criterion", default="")
    parser.add_argument("--replace-with", default="random")
    parser.add_argument("--replace-prob", type=float, default=0.05)
    parser.add_argument("--mask-prob", type=float, default=0.15)
    parser.add_argument("--generator-layers", type=int, default=0)
    parser.add_argument("--generator-width-fraction", type=float, default=1.0)
    return parser.parse_known_args(list(pretrain_args))[0]


def flops_per_token(arch: str, seq_len: int, vocab: int, pretrain_args: tuple[str, ...]) -> float:
    """Training FLOPs per token of a denoising_pretrain objective (`pretrain_args`) on ARCH."""
    disc = _arch(arch)
    rel_rows = 2 * (disc.position_buckets if disc.position_buckets > 0 else disc.max_positions)
    d = disc.encoder_embed_dim
    forward = disc.encoder_layers * encoder_layer_flops(d, disc.encoder_ffn_embed_dim, seq_len, rel_rows)
    forward += 2 * d * d + 2 * d * 3
    objective = _objective(pretrain_args)
    generator = objective.criterion in _GENERATOR_CRITERIONS or objective.replace_with == "generator"
    if generator:
        layers, hidden, _, ffn = generator_sizes(disc, objective.generator_layers, objective.generator_width_fraction)
        embed = disc.embedding_dim or d
        masked = objective.mask_prob if objective.criterion in _GENERATOR_CRITERIONS else objective.replace_prob
        forward += layers * encoder_layer_flops(hidden, ffn, seq_len, rel_rows)
        forward += (2 * embed * hidden if embed != hidden else 0) + masked * (2 * hidden * embed + 2 * embed * vocab)
    return 3 * forward


def equal_compute_updates(
    updates: int,
    arch: str,
    seq_len: int,
    vocab: int,
    pretrain_args: tuple[str, ...],
    baseline_args: tuple[str, ...] = ("--criterion", "rtd_ternary"),
) -> int:
    """UPDATES scaled by F(baseline) / F(objective): the same training FLOPs as the baseline's run."""
    ratio = flops_per_token(arch, seq_len, vocab, baseline_args) / flops_per_token(arch, seq_len, vocab, pretrain_args)
    return max(1, round(updates * ratio))
