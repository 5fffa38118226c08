"""Output heads of the vega_encoder: tied LM head, sentence classification head, per-token head.

    model.register_classification_head("mnli", num_classes=3)   # -> VegaClassificationHead on the [CLS] state
    model.register_token_head("rtd", num_classes=3)             # -> VegaTokenHead on every position
    logits, _ = model(src_tokens, masked_tokens=mask)           # VegaLMHead (weights tied to embed_tokens)

Parameter names follow fairseq's RoBERTa heads (dense / out_proj / layer_norm / weight / bias) so that
fairseq's sentence_prediction and masked_lm code paths and RoBERTa-style head upgrades work unchanged.
"""

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.modules import LayerNorm
from torch import nn

from vega_toolkit.errors import UserError


class VegaLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> tied output embedding + bias (DeBERTa / RoBERTa MLM head)."""

    def __init__(self, hidden_dim, embed_dim, vocab_size, activation_fn, weight, layer_norm_eps):
        super().__init__()
        self.dense = nn.Linear(hidden_dim, embed_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.layer_norm = LayerNorm(embed_dim, eps=layer_norm_eps)
        self.weight = weight  # the embedding matrix [V, E], shared with embed_tokens
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, features: torch.Tensor, masked_tokens: torch.Tensor | None = None) -> torch.Tensor:
        if masked_tokens is not None:  # project only the positions the loss needs ([N, V] instead of [B, T, V])
            features = features[masked_tokens, :]
        x = self.layer_norm(self.activation_fn(self.dense(features)))
        return F.linear(x, self.weight) + self.bias


def pool(features: torch.Tensor, padding_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """One vector per sequence: the <s> ([CLS]) state, or the mean over non-pad positions."""
    if how == "cls":
        return features[:, 0]
    if padding_mask is None:
        return features.mean(1)
    keep = (~padding_mask).unsqueeze(-1).type_as(features)
    return (features * keep).sum(1) / keep.sum(1).clamp(min=1)


POOLINGS = ("cls", "mean")


class VegaClassificationHead(nn.Module):
    """DeBERTa's ContextPooler + classifier: pooled state -> dense -> activation -> dropout -> out_proj.

    DeBERTa's GLUE setup pools with dropout 0 before the dense layer and applies ``cls_drop_out`` (our
    ``--pooler-dropout``) before the classifier (microsoft/DeBERTa DeBERTa/deberta/pooling.py). ``pooling`` is
    DeBERTa's [CLS]
    ("cls") or the mean over the sequence's tokens ("mean", see --classification-pooling).
    """

    def __init__(self, input_dim, inner_dim, num_classes, activation_fn, pooler_dropout, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"classification pooling must be one of {POOLINGS}, not {pooling!r}")
        self.pooling = pooling
        self.dense = nn.Linear(input_dim, inner_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.dropout = nn.Dropout(p=pooler_dropout)
        self.out_proj = nn.Linear(inner_dim, num_classes)

    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        x = self.activation_fn(self.dense(pool(features, padding_mask, self.pooling)))
        return self.out_proj(self.dropout(x))


class VegaTokenHead(nn.Module):
    """Per-token classifier (replaced-token detection): dense -> activation -> LayerNorm -> out_proj on every position.

    The same shape as DeBERTa-v3's RTD head and ELECTRA's discriminator head, with C outputs instead of one
    (C = 3 for Vega's ternary original / shuffled / replaced labels).
    """

    def __init__(self, input_dim, num_classes, activation_fn, layer_norm_eps):
        super().__init__()
        self.dense = nn.Linear(input_dim, input_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.layer_norm = LayerNorm(input_dim, eps=layer_norm_eps)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.layer_norm(self.activation_fn(self.dense(features))))


def init_deberta_weights(module: nn.Module, std: float = 0.02):
    """DeBERTa / BERT initialisation: N(0, 0.02) weights, zero biases, zero padding row, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class HeadMismatchError(UserError):
    """A checkpoint lacks the classification head a task needs, or has it with another number of outputs."""


def classification_head_sizes(model_state) -> dict:
    """{head name: number of outputs} of the classification heads stored in a checkpoint's model state dict."""
    prefix, suffix = "classification_heads.", ".out_proj.weight"
    return {
        k[len(prefix) : -len(suffix)]: int(v.shape[0])
        for k, v in model_state.items()
        if k.startswith(prefix) and k.endswith(suffix)
    }


def check_classification_head(checkpoint: str, model_state, head: str, num_classes: int, needed_by: str):
    """Raise HeadMismatchError unless `checkpoint`'s model state has head `head` with `num_classes` outputs.

    fairseq's head upgrade would silently put a freshly initialised head in place of a missing or mis-sized one;
    predicting from it gives random labels (here: an error naming the checkpoint, the head and both sizes)."""
    stored = classification_head_sizes(model_state)
    if head not in stored:
        has = ", ".join(f"'{n}' ({s} outputs)" for n, s in sorted(stored.items())) or "none"
        raise HeadMismatchError(
            f"{checkpoint}: no classification head '{head}', which {needed_by} needs with "
            f"{num_classes} outputs (heads in the checkpoint: {has}). Is this the checkpoint "
            f"fine-tuned for it?"
        )
    if stored[head] != num_classes:
        raise HeadMismatchError(
            f"{checkpoint}: classification head '{head}' has {stored[head]} outputs, but "
            f"{needed_by} needs {num_classes}"
        )
