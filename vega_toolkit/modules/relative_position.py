"""Log-bucket relative positions for disentangled attention (DeBERTa-v2/v3: microsoft/DeBERTa deberta/da_utils.py
`make_log_bucket_position`).

    from vega_toolkit.modules.relative_position import relative_index, relative_columns, relative_bias
    idx = relative_index(L, L, buckets=256, max_position=512, device=x.device)     # [L, L] rows of the table
    cols = relative_columns(L, buckets=256, max_position=512, device=x.device)    # O(L) fast-path tables
    bias = relative_bias(q, k, kr[:, cols.c2p], qr[:, cols.p2c], key_padding_mask)  # c2p + p2c, [B, H, L, L]

``relative_index`` is the dense [Lq, Lk] index of the reference math; ``relative_columns`` the O(L) tables of the
fast path (a band view, no gather). Tables are cached per (L, buckets, max_position, device); the CPU dropout
helpers live here too. Details: docs/design.md#log-bucket-relative-positions.
"""

import functools
import math
from typing import NamedTuple

import torch


def att_span(buckets: int, max_position: int) -> int:
    """k: half the number of rows of the relative embedding table (2k rows in all)."""
    return buckets if buckets > 0 else max_position


def log_bucket_position(rel: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """bucket(r): identity for |r| <= buckets/2, logarithmic beyond (DeBERTa da_utils / HF make_log_bucket_position).

    Follows HF (no clamp of r before bucketing) so that lengths > 512 give the same buckets as the HF model;
    the gather index is clamped afterwards by the caller.
    """
    sign = torch.sign(rel)
    mid = buckets // 2
    # |r| < mid is routed through a dummy value mid - 1 so that the log below stays finite (its result is unused).
    abs_pos = torch.where((rel < mid) & (rel > -mid), torch.full_like(rel, mid - 1), rel.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, rel.to(log_pos.dtype), log_pos * sign)


def _bucketed_index(delta: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """clamp(bucket(delta) + k, 0, 2k - 1) for a tensor of distances delta = i - j (int64 in, int64 out)."""
    k = att_span(buckets, max_position)
    if buckets > 0:
        delta = log_bucket_position(delta.float(), buckets, max_position).long()  # float32 like HF
    return (delta + k).clamp(0, 2 * k - 1)


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)  # cached tables built during inference_mode prediction must stay usable by training
def relative_index(query_len: int, key_len: int, buckets: int, max_position: int, device: torch.device):
    """Dense gather index idx[i, j] = clamp(bucket(i - j) + k, 0, 2k - 1), shape [Lq, Lk] (cached)."""
    q = torch.arange(query_len, dtype=torch.long)
    kk = torch.arange(key_len, dtype=torch.long)
    return _bucketed_index(q[:, None] - kk[None, :], buckets, max_position).to(device)


class RelativeColumns(NamedTuple):
    """O(L) tables of the fast path for self-attention of length L (see ``relative_columns``)."""

    slots: torch.Tensor  # [S] the table rows that some distance within L reads ("active slots"), sorted
    c2p: torch.Tensor  # [2L - 1] position of slot idx(delta = L - 1 - m) inside ``slots``, for column m
    p2c: torch.Tensor  # [2L - 1] position of slot idx(delta = m - (L - 1)) inside ``slots``, for column m


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)  # cached tables built during inference_mode prediction must stay usable by training
def relative_columns(length: int, buckets: int, max_position: int, device: torch.device) -> RelativeColumns:
    """Column tables for the banded fast path (cached per length and device, shared by every layer).

    Column m of the c2p GEMM stands for key offset j - i = m - (L - 1), i.e. distance i - j = L - 1 - m, so that
    ``band_view`` with one block of L rows maps it to c2p[i, j]. The p2c GEMM runs over the keys, so its column m
    stands for i - j = m - (L - 1).
    Only the S distinct slots are projected (S <= min(2k, 2L - 1)); columns index into them.
    """
    m = torch.arange(2 * length - 1, dtype=torch.long)
    c2p_slot = _bucketed_index((length - 1) - m, buckets, max_position)
    slots, c2p = torch.unique(c2p_slot, sorted=True, return_inverse=True)
    p2c = c2p.flip(0)  # bucket() is odd, so the p2c distances are the c2p ones in reverse order
    return RelativeColumns(slots.to(device), c2p.to(device), p2c.to(device))


class _RelativeBias(torch.autograd.Function):
    """bias[b, h, i, j] = <Q_i, KrD[j - i + L - 1]> + <K_j, QrD[i - j + L - 1]>, masked keys = finfo.min.

    KrD / QrD [H, 2L - 1, d] are the projected table rows per distance (batch-independent). Rows are processed in
    blocks of T queries (keys for p2c): one GEMM of the T rows (all batch elements folded into the GEMM's M) against
    the L + T - 1 distances they can see, turned into [T, L] by ``band_view`` -- no gather, no [L, L] index, and
    only (T - 1) / L wasted columns, where a single skewed GEMM wastes L - 1 and a slot GEMM needs a gather (whose
    backward is a slow scatter_add). Only the small inputs are saved for backward, never a [B, H, L, *] tensor.
    Masked keys get no gradient correction: their softmax probability is exactly 0, so the incoming gradient is 0.
    """

    @staticmethod
    def forward(ctx, q, k, pos_key, pos_query, key_padding_mask, block):
        batch, heads, length, _ = q.shape
        pos_key, pos_query = _pad_rows(pos_key), _pad_rows(pos_query)
        ctx.save_for_backward(
            q if pos_key is not None else None, k if pos_query is not None else None, pos_key, pos_query
        )
        ctx.block = block
        bias = q.new_empty(batch, heads, length, length)
        # p2c first: its [keys, queries] blocks land transposed (a strided pass), so write them without reading the
        # destination; the c2p blocks are row-contiguous and are added on top.
        if pos_query is not None:
            for start, rows, window in _row_blocks(length, block):
                p2c = _band(_block_rows(k, start, rows), pos_query[:, window], batch, length)
                bias[:, :, :, start : start + rows] = p2c.transpose(-1, -2)
        if pos_key is not None:
            for start, rows, window in _row_blocks(length, block):
                c2p = _band(_block_rows(q, start, rows), pos_key[:, window], batch, length)
                dst = bias[:, :, start : start + rows]
                dst.add_(c2p) if pos_query is not None else dst.copy_(c2p)
        if key_padding_mask is not None:
            bias.masked_fill_(key_padding_mask[:, None, None, :], torch.finfo(bias.dtype).min)
        return bias

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        q, k, pos_key, pos_query = ctx.saved_tensors
        grads = [None] * 6
        rows = 2 * grad.size(-1) - 1  # the caller's table rows, without the alignment padding
        if pos_key is not None:
            grads[0], grads[2] = _band_backward(grad, q, pos_key, ctx.block)
            grads[2] = grads[2][:, :rows]
        if pos_query is not None:
            grads[1], grads[3] = _band_backward(grad.transpose(-1, -2), k, pos_query, ctx.block)
            grads[3] = grads[3][:, :rows]
        return tuple(grads)


def relative_bias(q, k, pos_key, pos_query, key_padding_mask=None, block: int = 32):
    """c2p + p2c (+ key padding as finfo.min) as one [B, H, L, L] tensor; see ``_RelativeBias``.

    q, k [B, H, L, d]; pos_key / pos_query [H, 2L - 1, d] (row m = distance column m, as ``relative_columns``
    orders them) or None to leave that term out.
    """
    return _RelativeBias.apply(q, k, pos_key, pos_query, key_padding_mask, block)


# Widths of the skewed GEMM outputs are rounded up to a multiple of this: cuBLAS's fast (sm80+/sm90) bf16 kernels
# need 16-byte aligned leading dimensions, and an odd width (L + T - 1 = 543) fell back to slow sm75 kernels that
# took a third of the H200 training step. The extra columns lie outside the band: never read, zero gradient.
WIDTH_ALIGN = 8


def _aligned(width: int) -> int:
    return -(-width // WIDTH_ALIGN) * WIDTH_ALIGN


def _pad_rows(table):
    """[H, 2L - 1, d] -> [H, 2L - 1 + WIDTH_ALIGN - 1, d] with zero rows: room for the widest aligned window."""
    return None if table is None else torch.nn.functional.pad(table, (0, 0, 0, WIDTH_ALIGN - 1))


def _row_blocks(length: int, block: int):
    """(first row, rows, distance window) per block: rows r0..r0+T see distance columns L - r0 - T .. 2L - 2 - r0,
    and the window is widened to an aligned width (``WIDTH_ALIGN``; the table is padded by ``_pad_rows``)."""
    for start in range(0, length, block):
        rows = min(block, length - start)
        first = length - start - rows
        yield start, rows, slice(first, first + _aligned(length + rows - 1))


def _block_rows(x: torch.Tensor, start: int, rows: int) -> torch.Tensor:
    """Rows start..start+T of x [B, H, L, d] as [H, B*T, d]: the batch folded into the GEMM's M (a small copy)."""
    return x[:, :, start : start + rows].transpose(0, 1).reshape(x.size(1), -1, x.size(-1))


def _band(rows: torch.Tensor, window: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """[H, B*T, d] x [H, L + T - 1, d] -> the [B, H, T, L] view out[.., t, c] = <rows_t, window[c - t + T - 1]>."""
    scores = torch.bmm(rows, window.transpose(1, 2))
    return band_view(scores.view(scores.size(0), batch, -1, scores.size(-1)), length).transpose(0, 1)


def band_view(x: torch.Tensor, length: int) -> torch.Tensor:
    """[..., T, W] (contiguous, W >= L + T - 1) -> [..., T, L] view with out[..., t, c] = x[..., t, c - t + T - 1].

    Element (t, c) sits at flat offset t W + c - t + T - 1 = t (W - 1) + c + T - 1: rows of stride W - 1 starting
    T - 1 elements in line the diagonals up (Transformer-XL's relative shift, without a pad). Columns beyond
    L + T - 1 are never read.
    """
    rows, width = x.shape[-2:]
    assert width >= length + rows - 1 and x.is_contiguous(), (
        f"band view expects [..., T, >=L+T-1], got {tuple(x.shape)}"
    )
    return x.as_strided(x.shape[:-1] + (length,), x.stride()[:-2] + (width - 1, 1), x.storage_offset() + rows - 1)


def _band_backward(grad: torch.Tensor, x: torch.Tensor, table: torch.Tensor, block: int):
    """Gradients of x [B, H, L, d] and table [H, 2L - 1, d] for the band term whose bias gradient is grad."""
    batch, heads, length, dim = x.shape
    grad_x = x.new_empty(heads, batch, length, dim)
    grad_table = torch.zeros_like(table)
    band = None
    for start, rows, window in _row_blocks(length, block):
        # The skewed GEMM output had entries outside the band that no bias element read: their gradient is 0. The
        # band copy never writes them, so one zeroed buffer serves every block of the same size.
        if band is None or band.size(2) != rows:
            band = grad.new_zeros(heads, batch, rows, window.stop - window.start)
        band_view(band, length).copy_(grad[:, :, start : start + rows].transpose(0, 1))
        flat = band.view(heads, batch * rows, -1)
        grad_x[:, :, start : start + rows] = torch.bmm(flat, table[:, window]).view(heads, batch, rows, dim)
        grad_table[:, window].baddbmm_(flat.transpose(1, 2), _block_rows(x, start, rows))
    return grad_x.transpose(0, 1), grad_table


def dropout_keep_mask(shape, p: float, device=None):
    """(keep, scale) for inverted dropout: keep ~ Bernoulli(1 - p') as a bool tensor, scale = 1 / (1 - p').

    F.dropout on CPU draws one Bernoulli float per element, which costs more than the attention GEMMs at L = 512.
    Here every 64-bit random draw gives four 16-bit uniforms, so p' is p rounded to a multiple of 2^-16
    (|p' - p| <= 7.7e-6); scaling by 1 / (1 - p') keeps the expectation exact. The caller applies the scale where
    it is cheapest (after the attention-weighted sum, on [B, H, L, d] instead of [B, H, L, L]).
    """
    drop = min(max(round(p * 65536), 0), 65535)
    numel = math.prod(shape)
    bits = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    keep = bits.view(torch.int16)[:numel].view(shape) >= drop - 32768
    return keep, 65536 / (65536 - drop)


class _ApplyKeepMask(torch.autograd.Function):
    # x * keep would first convert the bool mask to x's dtype (a full extra pass each way); where() with a 0-dim
    # zero reads the mask as is.
    @staticmethod
    def forward(ctx, x, keep):
        ctx.save_for_backward(keep)
        return torch.where(keep, x, x.new_zeros(()))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, grad.new_zeros(())), None


def apply_keep_mask(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x where keep else 0 (dropout without its scale; see ``dropout_keep_mask``)."""
    return _ApplyKeepMask.apply(x, keep)
