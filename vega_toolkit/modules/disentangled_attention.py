"""Disentangled self-attention (DeBERTa-v2/v3): content-to-content + content-to-position + position-to-content.

    attn = DisentangledSelfAttention(768, 12, head_dim=64, attention_dropout=0.1, pos_dropout=0.1)
    y = attn(x, rel_embeddings, key_padding_mask)      # x [B, L, D], rel_embeddings [2k, D], mask [B, L] True = pad

    python -m pytest tests/test_disentangled_attention.py            # the sdpa fast path against the reference math

A[i, j] = s (<Q_i, K_j> + <Q_i, Kr[idx(i, j)]> + <K_j, Qr[idx(i, j)]>), idx the log-bucket index of i - j.
`--attention-impl` picks ``reference`` (HF's formulation, the test oracle), ``sdpa`` (default: c2p + p2c as one
additive bias) or ``fused`` (Triton, fused_disentangled_attention.py). The math and each implementation's choices:
docs/design.md#disentangled-attention-the-math-and-its-three-implementations.
"""

import importlib
import math

import torch
import torch.nn.functional as F
from fairseq.modules.fairseq_dropout import FairseqDropout
from torch import nn

from vega_toolkit.errors import UnsupportedSetupError
from vega_toolkit.modules.relative_position import (
    apply_keep_mask,
    dropout_keep_mask,
    relative_bias,
    relative_columns,
    relative_index,
)

ATTENTION_IMPLS = ("sdpa", "reference", "fused")


class DisentangledSelfAttention(nn.Module):
    # Query rows per GEMM of the relative bias (``relative_bias``): each block wastes BLOCK - 1 of L + BLOCK - 1
    # columns; smaller blocks make GEMMs too thin. CPU, L = 512, 6 heads: bias fwd+bwd 101 ms at 32, 111 at 64,
    # 129 at 128 (one layer, 2048 tokens, one thread).
    BLOCK = 32
    # On a GPU, blocks of 32 rows make launches and strided copies dominate. H200, bf16, 12 x 768, L = 512,
    # batch 128, encoder fwd+bwd: 318 ms at 64, 329 at 128, 337 at 256, 343 at 512; at L = 128, 128 is best.
    CUDA_BLOCK = 128
    # Tile of every fused kernel, an int or (block_m, block_n) (None: ``kernel_configs`` and its VEGA_FUSED_* knobs);
    # tests set small ones.
    FUSED_BLOCK = None

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int = 0,
        attention_dropout: float = 0.0,
        pos_dropout: float = 0.0,
        pos_att_type=("c2p", "p2c"),
        share_att_key: bool = True,
        position_buckets: int = 256,
        max_relative_positions: int = 512,
        attention_impl: str = "sdpa",
    ):
        super().__init__()
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"--attention-impl must be one of {ATTENTION_IMPLS}, got {attention_impl!r}")
        unknown = set(pos_att_type) - {"c2p", "p2c"}
        if unknown:
            raise ValueError(f"--pos-att-type: unknown terms {sorted(unknown)} (allowed: c2p, p2c)")
        self.num_heads = num_heads
        self.head_dim = head_dim or embed_dim // num_heads
        inner = self.num_heads * self.head_dim
        self.c2p, self.p2c = "c2p" in pos_att_type, "p2c" in pos_att_type
        self.share_att_key = share_att_key
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        self.attention_impl = attention_impl
        # One factor per score term that is summed (c2c always): 1/sqrt(3d) with both relative terms.
        self.scale = 1.0 / math.sqrt(self.head_dim * (1 + self.c2p + self.p2c))
        self.attention_dropout = attention_dropout

        self.query_proj = nn.Linear(embed_dim, inner)
        self.key_proj = nn.Linear(embed_dim, inner)
        self.value_proj = nn.Linear(embed_dim, inner)
        if not share_att_key:  # DeBERTa-v2 code path without key sharing (no released v2/v3 checkpoint uses it)
            self.pos_key_proj = nn.Linear(embed_dim, inner) if self.c2p else None
            self.pos_query_proj = nn.Linear(embed_dim, inner) if self.p2c else None
        self.out_proj = nn.Linear(inner, embed_dim)
        self.pos_dropout = FairseqDropout(pos_dropout, module_name=self.__class__.__name__)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[..., L, H*d] -> [..., H, L, d] (a view)."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)

    def _pos_projections(self, pos: torch.Tensor):
        """Kr (c2p keys) and Qr (p2c queries) of the relative rows ``pos`` [S, D], as [H, S, d], pre-scaled by s."""
        key = self.key_proj if self.share_att_key else getattr(self, "pos_key_proj", None)
        query = self.query_proj if self.share_att_key else getattr(self, "pos_query_proj", None)
        pos_key = self._heads(key(pos)) * self.scale if self.c2p else None
        pos_query = self._heads(query(pos)) * self.scale if self.p2c else None
        return pos_key, pos_query

    def forward(
        self,
        x: torch.Tensor,
        rel_embeddings: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self._heads(self.query_proj(x))
        k = self._heads(self.key_proj(x))
        v = self._heads(self.value_proj(x))
        if self.attention_impl == "sdpa":
            ctx = self._sdpa(q, k, v, rel_embeddings, key_padding_mask)
        elif self.attention_impl == "fused":
            ctx = self._fused(q, k, v, rel_embeddings, key_padding_mask)
        else:
            ctx = self._reference(q, k, v, rel_embeddings, key_padding_mask)
        return self.out_proj(ctx.transpose(1, 2).flatten(2))

    def _sdpa(self, q, k, v, rel_embeddings, key_padding_mask):
        length = q.size(-2)
        dropout_p = self.attention_dropout if self.training else 0.0
        if not (self.c2p or self.p2c):
            mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True = attend
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=self.scale)
        cols = relative_columns(length, self.position_buckets, self.max_relative_positions, q.device)
        # Only the table rows some distance < L reads are projected (all 511 at L = 512, 255 at L = 128), then
        # spread over the 2L - 1 distances (a small batch-independent index_select; its backward is an index_add).
        pos = self.pos_dropout(rel_embeddings.index_select(0, cols.slots))
        pos_key, pos_query = self._pos_projections(pos)

        # fp16 cannot hold large scores: compute the bias in fp32 there; bf16 has fp32's range and stays as is.
        bias_dtype = torch.float32 if q.dtype == torch.float16 else q.dtype
        with torch.autocast(device_type=q.device.type, enabled=False):
            bias = relative_bias(
                q.to(bias_dtype),
                k.to(bias_dtype),
                pos_key.to(bias_dtype).index_select(1, cols.c2p) if self.c2p else None,
                pos_query.to(bias_dtype).index_select(1, cols.p2c) if self.p2c else None,
                key_padding_mask,
                self.BLOCK if q.device.type == "cpu" else self.CUDA_BLOCK,
            )
            if q.dtype != bias_dtype:  # fp16: back to the activation dtype, within its range
                info = torch.finfo(q.dtype)
                bias = bias.clamp(info.min, info.max).to(q.dtype)
        return self._attend(q, k, v, bias, dropout_p)

    def _attend(self, q, k, v, bias, dropout_p):
        """softmax(s Q K^T + bias) V: SDPA (on CUDA its memory-efficient kernel), or the CPU training core."""
        # fp16 scores (x 1000 inputs) overflow in a plain GEMM: only fp32 / bf16 take the CPU training core.
        cpu_training = dropout_p > 0 or (torch.is_grad_enabled() and bias.requires_grad)
        if q.device.type == "cpu" and q.dtype != torch.float16 and cpu_training:
            with torch.autocast(device_type="cpu", enabled=False):
                return self._cpu_attention(q, k, v, bias, dropout_p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=self.scale)

    def _fused(self, q, k, v, rel_embeddings, key_padding_mask):
        """The Triton kernel of fused_disentangled_attention.py: the same math without any [L, L] tensor."""
        try:
            fused = importlib.import_module("vega_toolkit.modules.fused_disentangled_attention")
        except ImportError as error:
            raise UnsupportedSetupError(
                f"--attention-impl fused needs triton ({error}); it comes with CUDA builds of "
                "torch, or `pip install triton` (see requirements/test.txt)"
            ) from error
        fused.check_device(q.device, q.dtype)
        cols = relative_columns(q.size(-2), self.position_buckets, self.max_relative_positions, q.device)
        pos_key = pos_query = None
        if self.c2p or self.p2c:
            pos_key, pos_query = self._pos_projections(self.pos_dropout(rel_embeddings.index_select(0, cols.slots)))
        dropout_p = self.attention_dropout if self.training else 0.0
        return fused.fused_disentangled_attention(
            q, k, v, pos_key, pos_query, cols.c2p, key_padding_mask, self.scale, dropout_p, block=self.FUSED_BLOCK
        )

    def _cpu_attention(self, q, k, v, bias, dropout_p):
        """softmax(s Q K^T + bias) V for CPU training, where SDPA can only take its unfused math path.

        Against that path: the bias enters the score GEMM (baddbmm, whose bias gradient is the score gradient
        itself, no copy), no scaled copies of Q and K, no all-masked-row scan, and a dropout that draws 16 random
        bits per element instead of a Bernoulli float (``dropout_keep_mask``).
        """
        batch, heads, length, dim = q.shape
        dtype = bias.dtype
        flat = lambda t: t.to(dtype).reshape(batch * heads, length, dim)  # noqa: E731
        # Not in place: baddbmm_ on the bias view would make autograd clone the [L, L] gradient twice (CopySlices).
        scores = torch.baddbmm(
            bias.view(batch * heads, length, length), flat(q), flat(k).transpose(1, 2), alpha=self.scale
        )
        probs = torch.softmax(scores, dim=-1)
        scale = 1.0
        if dropout_p > 0:  # one fused pass each way (where); the 1 / (1 - p) scale goes to the small output
            keep, scale = dropout_keep_mask(probs.shape, dropout_p, probs.device)
            probs = apply_keep_mask(probs, keep)
        out = torch.bmm(probs.to(v.dtype), v.reshape(batch * heads, length, dim))
        return (out * scale if scale != 1.0 else out).view(batch, heads, length, dim)

    def _reference(self, q, k, v, rel_embeddings, key_padding_mask):
        """HF DebertaV2 math, term by term (the oracle for ``_sdpa``)."""
        lq, lk = q.size(-2), k.size(-2)
        idx = relative_index(lq, lk, self.position_buckets, self.max_relative_positions, q.device)
        pos_key, pos_query = self._pos_projections(self.pos_dropout(rel_embeddings))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if self.c2p:
            c2p = torch.matmul(q, pos_key.transpose(-1, -2))  # [B, H, Lq, 2k]
            scores = scores + torch.gather(c2p, -1, idx.expand(*c2p.shape[:-1], lk))
        if self.p2c:
            p2c = torch.matmul(k, pos_query.transpose(-1, -2))  # [B, H, Lk, 2k]
            scores = scores + torch.gather(p2c, -1, idx.t().expand(*p2c.shape[:-1], lq)).transpose(-1, -2)
        if key_padding_mask is not None:
            keep = ~key_padding_mask
            pairwise = keep[:, None, :, None] & keep[:, None, None, :]  # HF/MS: rows of padding are masked too
            scores = scores.masked_fill(~pairwise, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        probs = F.dropout(probs, p=self.attention_dropout, training=self.training)
        return torch.matmul(probs, v)
