"""vega_encoder: the DeBERTa-v2/v3 disentangled-attention encoder as a fairseq model.

    vega-train DATA_BIN --task masked_lm --criterion masked_lm --arch vega_tiny --tokens-per-sample 128 ...
    vega-train DATA_BIN --arch vega_base --attention-impl reference ...     # the plain (HF-equivalent) math

Architectures (microsoft/DeBERTa experiments/language_model/*.json): vega_tiny, vega_small, vega_base, vega_large,
vega_v1_1_3b (48 x 1536, 24 heads x 64, FFN 6144). Read top to bottom: config, embeddings, layer, encoder, model,
architectures.

The forward contract (docs/ARCHITECTURE.md):
    model(src_tokens, features_only=False, return_all_hiddens=False, classification_head_name=None,
          token_head_name=None, masked_tokens=None, embedding_hook=None) -> (x, extra)
with extra = {"inner_states": [embeddings, layer_1, ..., layer_N] (each [B, T, H]), "padding_mask": [B, T]}.
"""

import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import FairseqEncoder, FairseqEncoderModel, register_model, register_model_architecture
from fairseq.modules import LayerNorm
from fairseq.modules.fairseq_dropout import FairseqDropout
from torch import nn
from torch.utils.checkpoint import checkpoint

from vega_toolkit.models.heads import (
    POOLINGS,
    VegaClassificationHead,
    VegaLMHead,
    VegaTokenHead,
    init_deberta_weights,
)
from vega_toolkit.modules.disentangled_attention import ATTENTION_IMPLS, DisentangledSelfAttention
from vega_toolkit.modules.relative_position import att_span

logger = logging.getLogger(__name__)


@dataclass
class VegaEncoderConfig(FairseqDataclass):
    # Defaults are vega_base (= DeBERTa-v3-base sizes); the architectures below override the sizes.
    encoder_layers: int = field(default=12, metadata={"help": "number of transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size D"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "FFN inner size"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "number of attention heads"})
    attention_head_dim: int = field(
        default=0, metadata={"help": "per-head size d; 0 means D / heads (v2-xxlarge sets 64 explicitly)"}
    )
    embedding_dim: int = field(
        default=0, metadata={"help": "word-embedding size; 0 means D, otherwise a bias-free embed_proj maps it to D"}
    )
    activation_fn: ChoiceEnum(utils.get_available_activation_fns()) = field(
        default="gelu", metadata={"help": "FFN activation (gelu = exact erf GELU, as DeBERTa)"}
    )
    dropout: float = field(default=0.1, metadata={"help": "hidden dropout (embeddings, residual branches, pos)"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention probabilities"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN activation"})
    pooler_dropout: float = field(
        default=0.1, metadata={"help": "dropout before the classifier (DeBERTa cls_drop_out)"}
    )
    classification_pooling: ChoiceEnum(list(POOLINGS)) = field(
        default="cls",
        metadata={
            "help": "what a classification head reads: the <s> ([CLS]) state as DeBERTa, or the mean of the "
            "sequence's states (mean: for encoders whose pretraining never trained [CLS], see "
            "docs/results.md)"
        },
    )
    pooler_activation_fn: ChoiceEnum(utils.get_available_activation_fns()) = field(
        default="gelu", metadata={"help": "activation of the classification head's pooler (DeBERTa: gelu)"}
    )
    layer_norm_eps: float = field(default=1e-7, metadata={"help": "LayerNorm epsilon (DeBERTa uses 1e-7)"})
    max_positions: int = field(default=512, metadata={"help": "maximum sequence length the model accepts"})
    position_buckets: int = field(
        default=256, metadata={"help": "log-bucket count k of relative positions (table has 2k rows); <= 0 disables"}
    )
    max_relative_positions: int = field(
        default=-1, metadata={"help": "maximum relative distance of the bucketing; < 1 means --max-positions"}
    )
    norm_rel_ebd: ChoiceEnum(["layer_norm", "none"]) = field(
        default="layer_norm", metadata={"help": "LayerNorm the shared relative embedding table (v2/v3: layer_norm)"}
    )
    pos_att_type: str = field(default="c2p|p2c", metadata={"help": "relative terms, '|'-separated subset of c2p, p2c"})
    separate_pos_proj: bool = field(
        default=False,
        metadata={
            "help": "project relative positions with their own pos_key_proj/pos_query_proj instead of sharing "
            "the content key/query projections (DeBERTa share_att_key=false)"
        },
    )
    position_biased_input: bool = field(
        default=False, metadata={"help": "add absolute position embeddings to the input (off in all v2/v3 models)"}
    )
    type_vocab_size: int = field(default=0, metadata={"help": "segment-embedding rows; 0 = none (v2/v3)"})
    conv_kernel_size: int = field(default=0, metadata={"help": "kernel of the conv layer after layer 0; 0 = none"})
    conv_groups: int = field(default=1, metadata={"help": "groups of that conv layer"})
    conv_act: ChoiceEnum(utils.get_available_activation_fns()) = field(
        default="tanh", metadata={"help": "activation of the conv layer (DeBERTa default tanh; v2-xlarge/xxlarge gelu)"}
    )
    attention_impl: ChoiceEnum(list(ATTENTION_IMPLS)) = field(
        default="sdpa",
        metadata={
            "help": "sdpa: relative terms as an SDPA bias (fast); reference: explicit softmax; "
            "fused: one Triton kernel without any L x L tensor (CUDA; experimental)"
        },
    )
    checkpoint_activations: bool = field(
        default=False, metadata={"help": "recompute each layer's activations in backward to save memory"}
    )
    load_checkpoint_heads: bool = field(
        default=False, metadata={"help": "(re-)create the classification heads stored in a loaded checkpoint"}
    )


class VegaEmbeddings(nn.Module):
    """word (+ absolute position) (+ segment) -> [embed_proj] -> [embedding_hook] -> LayerNorm -> zero pads ->
    dropout."""

    def __init__(self, cfg, dictionary):
        super().__init__()
        hidden = cfg.encoder_embed_dim
        embed_dim = cfg.embedding_dim or hidden
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, padding_idx=self.padding_idx)
        self.embed_positions = nn.Embedding(cfg.max_positions, embed_dim) if cfg.position_biased_input else None
        self.embed_token_types = nn.Embedding(cfg.type_vocab_size, embed_dim) if cfg.type_vocab_size > 0 else None
        self.embed_proj = nn.Linear(embed_dim, hidden, bias=False) if embed_dim != hidden else None
        self.layer_norm = LayerNorm(hidden, eps=cfg.layer_norm_eps)
        self.dropout = FairseqDropout(cfg.dropout, module_name=self.__class__.__name__)

    def forward(self, src_tokens, padding_mask, embedding_hook=None):
        x = self.embed_tokens(src_tokens)
        if self.embed_positions is not None:
            positions = torch.arange(src_tokens.size(1), device=src_tokens.device)
            x = x + self.embed_positions(positions)[None]
        if self.embed_token_types is not None:  # segment ids are not fed by fairseq tasks; all zeros like HF's default
            x = x + self.embed_token_types.weight[0]
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        if embedding_hook is not None:  # SiFT: normalise + perturb the embeddings before the LayerNorm
            x = embedding_hook(x)
        x = self.layer_norm(x)
        x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)  # as DeBERTa; the conv layer reads these zeros
        return self.dropout(x)


class VegaEncoderLayer(nn.Module):
    """Post-LN transformer layer: x = LN(x + attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, cfg, attention_kwargs):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = DisentangledSelfAttention(dim, cfg.encoder_attention_heads, **attention_kwargs)
        self.self_attn_layer_norm = LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.activation_fn = utils.get_activation_fn(cfg.activation_fn)
        self.dropout = FairseqDropout(cfg.dropout, module_name=self.__class__.__name__)
        self.activation_dropout = FairseqDropout(cfg.activation_dropout, module_name=self.__class__.__name__)

    def forward(self, x, rel_embeddings, key_padding_mask):
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, rel_embeddings, key_padding_mask)))
        h = self.fc2(self.activation_dropout(self.activation_fn(self.fc1(x))))
        return self.final_layer_norm(x + self.dropout(h))


class VegaConvLayer(nn.Module):
    """DeBERTa-v2 "nGiE" conv after layer 0: LN(layer0_out + act(dropout(conv(embeddings)))), pads zeroed."""

    def __init__(self, cfg):
        super().__init__()
        dim, kernel = cfg.encoder_embed_dim, cfg.conv_kernel_size
        self.conv = nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2, groups=cfg.conv_groups)
        self.layer_norm = LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.dropout = FairseqDropout(cfg.dropout, module_name=self.__class__.__name__)
        self.activation_fn = utils.get_activation_fn(cfg.conv_act)

    def forward(self, embeddings, layer_out, padding_mask):
        out = self.conv(embeddings.transpose(1, 2)).transpose(1, 2)
        out = self.activation_fn(self.dropout(out.masked_fill(padding_mask.unsqueeze(-1), 0.0)))
        return self.layer_norm(layer_out + out).masked_fill(padding_mask.unsqueeze(-1), 0.0)


class VegaEncoder(FairseqEncoder):
    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        self.cfg = cfg
        self.embeddings = VegaEmbeddings(cfg, dictionary)
        max_rel = cfg.max_relative_positions if cfg.max_relative_positions >= 1 else cfg.max_positions
        span = att_span(cfg.position_buckets, max_rel)
        # ONE relative table shared by every layer (2k rows), LayerNorm-ed once per forward.
        self.rel_embeddings = nn.Embedding(2 * span, cfg.encoder_embed_dim)
        self.rel_layer_norm = (
            LayerNorm(cfg.encoder_embed_dim, eps=cfg.layer_norm_eps) if cfg.norm_rel_ebd == "layer_norm" else None
        )
        attention_kwargs = dict(
            head_dim=cfg.attention_head_dim,
            attention_dropout=cfg.attention_dropout,
            pos_dropout=cfg.dropout,
            pos_att_type=tuple(t.strip() for t in cfg.pos_att_type.split("|") if t.strip()),
            share_att_key=not cfg.separate_pos_proj,
            position_buckets=cfg.position_buckets,
            max_relative_positions=max_rel,
            attention_impl=cfg.attention_impl,
        )
        self.layers = nn.ModuleList([VegaEncoderLayer(cfg, attention_kwargs) for _ in range(cfg.encoder_layers)])
        self.conv = VegaConvLayer(cfg) if cfg.conv_kernel_size > 0 else None
        self.lm_head = VegaLMHead(
            cfg.encoder_embed_dim,
            self.embed_tokens.embedding_dim,
            len(dictionary),
            cfg.activation_fn,
            weight=self.embed_tokens.weight,
            layer_norm_eps=cfg.layer_norm_eps,
        )
        self.apply(init_deberta_weights)

    @property
    def embed_tokens(self) -> nn.Embedding:  # the contract's model.encoder.embed_tokens (not a second registration)
        return self.embeddings.embed_tokens

    def set_attention_impl(self, impl: str):
        """Switch every layer between the SDPA fast path, the reference math and the fused kernel (same weights)."""
        for layer in self.layers:
            layer.self_attn.attention_impl = impl

    def rel_table(self):
        rel = self.rel_embeddings.weight
        return self.rel_layer_norm(rel) if self.rel_layer_norm is not None else rel

    def extract_features(self, src_tokens, return_all_hiddens=False, embedding_hook=None):
        padding_mask = src_tokens.eq(self.dictionary.pad())
        # A mask without any padding is dropped so that SDPA gets no mask at all (faster kernels).
        key_padding_mask = padding_mask if padding_mask.any() else None
        x = self.embeddings(src_tokens, padding_mask, embedding_hook)
        embeddings, inner_states = x, [x]
        rel = self.rel_table()
        for i, layer in enumerate(self.layers):
            if self.cfg.checkpoint_activations and self.training:
                x = checkpoint(layer, x, rel, key_padding_mask, use_reentrant=False)
            else:
                x = layer(x, rel, key_padding_mask)
            if i == 0 and self.conv is not None:
                x = self.conv(embeddings, x, padding_mask)
            if return_all_hiddens:
                inner_states.append(x)
        if not return_all_hiddens:
            inner_states = [x]
        return x, {"inner_states": inner_states, "padding_mask": padding_mask}

    def forward(
        self,
        src_tokens,
        src_lengths=None,
        features_only=False,
        return_all_hiddens=False,
        masked_tokens=None,
        embedding_hook=None,
        **unused,
    ):
        x, extra = self.extract_features(src_tokens, return_all_hiddens, embedding_hook)
        if not features_only:
            x = self.lm_head(x, masked_tokens)
        return x, extra

    def max_positions(self):
        return self.cfg.max_positions


@register_model("vega_encoder", dataclass=VegaEncoderConfig)
class VegaEncoderModel(FairseqEncoderModel):
    def __init__(self, cfg, encoder):
        super().__init__(encoder)
        self.cfg = cfg
        self.classification_heads = nn.ModuleDict()
        self.token_heads = nn.ModuleDict()

    @classmethod
    def build_model(cls, cfg, task):
        return cls(cfg, VegaEncoder(cfg, task.source_dictionary))

    def forward(
        self,
        src_tokens,
        features_only=False,
        return_all_hiddens=False,
        classification_head_name=None,
        token_head_name=None,
        masked_tokens=None,
        embedding_hook=None,
        **kwargs,
    ):
        head_wanted = classification_head_name is not None or token_head_name is not None
        x, extra = self.encoder(
            src_tokens,
            features_only=features_only or head_wanted,
            return_all_hiddens=return_all_hiddens,
            masked_tokens=masked_tokens,
            embedding_hook=embedding_hook,
        )
        if classification_head_name is not None:
            x = self.classification_heads[classification_head_name](x, padding_mask=extra["padding_mask"])
        elif token_head_name is not None:
            x = self.token_heads[token_head_name](x)
        return x, extra

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        logits = net_output[0].float()
        return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)

    def max_positions(self):
        return self.cfg.max_positions

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        """RoBERTa-compatible: (re-)create head ``name`` with ``num_classes`` outputs on the [CLS] state."""
        if name in self.classification_heads:
            prev = self.classification_heads[name]
            if (
                num_classes != prev.out_proj.out_features
                or (inner_dim or prev.dense.out_features) != prev.dense.out_features
            ):
                logger.warning(
                    f're-registering head "{name}" with num_classes {num_classes} (prev: {prev.out_proj.out_features}) '
                    f"and inner_dim {inner_dim} (prev: {prev.dense.out_features})"
                )
        dim = self.cfg.encoder_embed_dim
        head = VegaClassificationHead(
            dim,
            inner_dim or dim,
            num_classes,
            self.cfg.pooler_activation_fn,
            self.cfg.pooler_dropout,
            getattr(self.cfg, "classification_pooling", "cls"),
        )
        head.apply(init_deberta_weights)
        self.classification_heads[name] = head

    def register_token_head(self, name, num_classes):
        """A per-token classifier ``name`` (e.g. the ternary replaced-token-detection head)."""
        head = VegaTokenHead(self.cfg.encoder_embed_dim, num_classes, self.cfg.activation_fn, self.cfg.layer_norm_eps)
        head.apply(init_deberta_weights)
        self.token_heads[name] = head

    def upgrade_state_dict_named(self, state_dict, name):
        """Reconcile the checkpoint's heads with this model's (RoBERTa semantics).

        Heads the current model does not have are dropped (or created first when --load-checkpoint-heads is set,
        as the hub interface does); heads whose shapes differ are dropped; heads the model has but the checkpoint
        lacks keep their fresh initialisation. The same for classification_heads and token_heads.
        """
        prefix = name + "." if name else ""
        super().upgrade_state_dict_named(state_dict, name)
        for group in ("classification_heads", "token_heads"):
            heads = getattr(self, group)
            group_prefix = f"{prefix}{group}."
            stored = {k[len(group_prefix) :].split(".")[0] for k in state_dict if k.startswith(group_prefix)}
            for head_name in sorted(stored):
                key = f"{group_prefix}{head_name}."
                weights = {k[len(key) :]: v for k, v in state_dict.items() if k.startswith(key)}
                if head_name not in heads and self.cfg.load_checkpoint_heads:
                    self._register_head_like(group, head_name, weights)
                reason = None
                if head_name not in heads:
                    reason = "not present in the current model"
                else:
                    current = heads[head_name].state_dict()
                    if current.keys() != weights.keys() or any(current[k].shape != v.shape for k, v in weights.items()):
                        reason = "different shape than in the current model"
                if reason:
                    logger.warning(f"dropping {group} '{head_name}' from the checkpoint: {reason}")
                    for k in weights:
                        del state_dict[key + k]
            for k, v in heads.state_dict().items():  # heads missing from the checkpoint keep their fresh weights
                state_dict.setdefault(f"{group_prefix}{k}", v)

    def _register_head_like(self, group, head_name, weights):
        num_classes = weights["out_proj.weight"].size(0)
        if group == "classification_heads":
            self.register_classification_head(head_name, num_classes, inner_dim=weights["dense.weight"].size(0))
        else:
            self.register_token_head(head_name, num_classes)


# Architectures: the legacy hook fills what the command line did not set (dataclass defaults = vega_base).
def _set_sizes(args, layers, dim, heads, ffn):
    args.encoder_layers = getattr(args, "encoder_layers", layers)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", dim)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", heads)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", ffn)


@register_model_architecture("vega_encoder", "vega_tiny")
def vega_tiny(args):
    _set_sizes(args, layers=2, dim=128, heads=2, ffn=512)


@register_model_architecture("vega_encoder", "vega_small")
def vega_small(args):
    _set_sizes(args, layers=4, dim=256, heads=4, ffn=1024)


@register_model_architecture("vega_encoder", "vega_base")
def vega_base(args):
    _set_sizes(args, layers=12, dim=768, heads=12, ffn=3072)  # DeBERTa-v3-base


@register_model_architecture("vega_encoder", "vega_large")
def vega_large(args):
    _set_sizes(args, layers=24, dim=1024, heads=16, ffn=4096)  # DeBERTa-v3-large


@register_model_architecture("vega_encoder", "vega_v1_1_3b")
def vega_v1_1_3b(args):
    _set_sizes(args, layers=48, dim=1536, heads=24, ffn=6144)  # Vega v1 / DeBERTa-v2-xxlarge body, no conv
