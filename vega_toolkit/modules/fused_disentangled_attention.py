"""Disentangled attention in one Triton kernel, flash-attention style: the [B, H, L, L] bias is never built.

    from vega_toolkit.modules.fused_disentangled_attention import fused_disentangled_attention
    out = fused_disentangled_attention(q, k, v, pos_key, pos_query, slot_of, key_padding_mask, scale, dropout_p)
    TRITON_INTERPRET=1 python -m pytest tests/test_fused_attention.py     # CPU: Triton's interpreter runs the kernels
    VEGA_FUSED_BWD_KV_WARPS=8 python benchmarks/fused_attention_layer.py  # tile/warp/stage knobs: kernel_configs

Same scores as ``DisentangledSelfAttention._reference`` (disentangled_attention.py), computed from compact c2p /
p2c tables gathered per tile with an online softmax; the backward recomputes the tables and scores tile by tile.
Tiling, dropout, atomics, padding and precision: docs/design.md#fused-disentangled-attention-triton.
"""

import logging
import os
from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl

from vega_toolkit.errors import UnsupportedSetupError

logger = logging.getLogger(__name__)

# Triton picks interpreted or compiled kernels when @triton.jit runs, i.e. when this module is imported.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
# Score of a padded key: finite, so that a row whose keys are all padded stays finite (uniform, as in the reference).
PAD_SCORE = tl.constexpr(-1.0e30)


@dataclass(frozen=True)
class KernelConfig:
    """Launch parameters of one kernel: its program's tile (query rows x key rows) and the compiler's knobs."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 2


KERNELS = ("fwd", "bwd_kv", "bwd_q")
# Not yet timed on a GPU (none has run the kernel so far), but chosen not to spill: compiled for sm_90 in bf16 at
# head dim 64 with both relative terms, padding and dropout (`python benchmarks/fused_kernel_resources.py`, no GPU
# needed), the usual 64 x 64 tile at 4 warps uses all 255 registers and spills 448 / 936 / 840 B per thread
# (forward / dK-dV / dQ); at 8 warps still 160 / 336 / 416. These tiles at 8 warps spill nothing (227 / 186 / 253
# registers). Environment knobs override them (``kernel_configs``).
CUDA_CONFIGS = {
    "fwd": KernelConfig(64, 32, 8, 2),
    "bwd_kv": KernelConfig(32, 64, 8, 2),
    "bwd_q": KernelConfig(64, 32, 8, 2),
}
# The interpreter runs fewer, larger numpy tiles faster; warps and stages mean nothing there.
CPU_CONFIGS = {name: KernelConfig(32, 32) for name in KERNELS}
_FIELDS = {"BLOCK_M": "block_m", "BLOCK_N": "block_n", "WARPS": "num_warps", "STAGES": "num_stages"}


def _knob(name: str, value: str, field: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if field in ("block_m", "block_n") and (number < 16 or number & (number - 1)):
        raise ValueError(f"{name}={value!r}: a tile size must be a power of two >= 16 (tl.dot's smallest tile)")
    if field == "num_warps" and (number < 1 or number > 32 or number & (number - 1)):
        raise ValueError(f"{name}={value!r}: num_warps must be a power of two from 1 to 32")
    if field == "num_stages" and number < 1:
        raise ValueError(f"{name}={value!r}: num_stages must be a positive integer")
    return number


def kernel_configs(device_type: str, block=None, environ=os.environ) -> dict:
    """KernelConfig of each kernel ("fwd", "bwd_kv", "bwd_q") for ``device_type``.

    Knobs, read at every call: VEGA_FUSED_BLOCK_M / _BLOCK_N / _WARPS / _STAGES set all three kernels,
    VEGA_FUSED_<FWD|BWD_KV|BWD_Q>_<BLOCK_M|BLOCK_N|WARPS|STAGES> one of them (e.g. VEGA_FUSED_BWD_KV_WARPS=8).
    ``block`` (an int or a (block_m, block_n) pair, as tests pass) sets every kernel's tile last.
    """
    configs = dict(CUDA_CONFIGS if device_type == "cuda" else CPU_CONFIGS)
    for name in KERNELS:
        for scope in ("VEGA_FUSED_", f"VEGA_FUSED_{name.upper()}_"):
            for suffix, field in _FIELDS.items():
                value = environ.get(scope + suffix)
                if value is not None:
                    configs[name] = replace(configs[name], **{field: _knob(scope + suffix, value, field)})
    if block is not None:
        block_m, block_n = (block, block) if isinstance(block, int) else block
        for value in (block_m, block_n):
            _knob("block", str(value), "block_m")
        configs = {name: replace(config, block_m=block_m, block_n=block_n) for name, config in configs.items()}
    return configs


@triton.jit
def _tile_slots(slot_of, offs_m, offs_n, L, NEEDED: tl.constexpr):
    """slot(j - i) of the tile (0 outside it, and everywhere when no relative term needs it) and the mask of its
    in-range elements."""
    valid = (offs_m[:, None] < L) & (offs_n[None, :] < L)
    if NEEDED:
        slot = tl.load(slot_of + offs_n[None, :] - offs_m[:, None] + L - 1, mask=valid, other=0)
    else:
        slot = valid.to(tl.int32) * 0
    return slot, valid


@triton.jit
def _padded_keys(pad_row, offs_n, L, HAS_PAD: tl.constexpr):
    """[1, BN] mask of the padded keys (all False without a padding mask: pad_row is then a 1-element dummy)."""
    if HAS_PAD:
        padded = tl.load(pad_row + offs_n, mask=offs_n < L, other=0)[None, :] != 0
    else:
        padded = offs_n[None, :] < 0
    return padded


@triton.jit
def _tile_scores(
    q,
    k,
    offs_m,
    offs_n,
    slot,
    valid,
    padded,
    c2p_rows,
    p2c_cols,
    L,
    S,
    scale,
    HAS_C2P: tl.constexpr,
    HAS_P2C: tl.constexpr,
    HAS_PAD: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Scores [BM, BN] of query rows offs_m against key rows offs_n; -inf beyond L, PAD_SCORE on padded keys."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
    if HAS_C2P:
        s += tl.load(c2p_rows + offs_m[:, None] * S + slot, mask=valid, other=0.0).to(tl.float32)
    if HAS_P2C:  # transposed table: consecutive keys of one slot are consecutive addresses
        s += tl.load(p2c_cols + slot * L + offs_n[None, :], mask=valid, other=0.0).to(tl.float32)
    if HAS_PAD:
        s = tl.where(padded, PAD_SCORE, s)
    return tl.where(offs_n[None, :] < L, s, float("-inf"))


@triton.jit
def _load_rows(base, offs, offs_d, L, HEAD_DIM: tl.constexpr):
    """Rows offs of one head's contiguous [L, d] block (zeros beyond L and beyond d)."""
    mask = (offs[:, None] < L) & (offs_d[None, :] < HEAD_DIM)
    return tl.load(base + offs[:, None] * HEAD_DIM + offs_d[None, :], mask=mask, other=0.0)


@triton.jit
def _store_rows(base, offs, offs_d, L, x, HEAD_DIM: tl.constexpr):
    mask = (offs[:, None] < L) & (offs_d[None, :] < HEAD_DIM)
    tl.store(base + offs[:, None] * HEAD_DIM + offs_d[None, :], x.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _keep(seed, bh, offs_m, offs_n, L, dropout_p):
    """Philox keep mask of the tile: element (bh, i, j) is counter (bh L + i) L + j of the seed's stream."""
    offsets = (bh.to(tl.int64) * L + offs_m[:, None].to(tl.int64)) * L + offs_n[None, :]
    return tl.rand(seed, offsets) >= dropout_p


# The dropout seed changes at every call: as a specialised integer argument (divisible by 16 or not) it would
# compile every kernel a second time for about one seed in 16.
@triton.jit(do_not_specialize=["seed"])
def _forward_kernel(
    Q,
    K,
    V,
    C2P,
    P2C,
    SLOT,
    PAD,
    OUT,
    ROW_MAX,
    ROW_SUM,
    H,
    L,
    S,
    scale,
    dropout_p,
    seed,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_C2P: tl.constexpr,
    HAS_P2C: tl.constexpr,
    HAS_PAD: tl.constexpr,
    DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_m, bh = tl.program_id(0), tl.program_id(1)
    b = bh // H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row = bh.to(tl.int64) * L * HEAD_DIM
    table = bh.to(tl.int64) * L * S
    q = _load_rows(Q + row, offs_m, offs_d, L, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, L, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _load_rows(K + row, offs_n, offs_d, L, HEAD_DIM)
        v = _load_rows(V + row, offs_n, offs_d, L, HEAD_DIM)
        slot, valid = _tile_slots(SLOT, offs_m, offs_n, L, HAS_C2P or HAS_P2C)
        padded = _padded_keys(PAD + b * L, offs_n, L, HAS_PAD)
        s = _tile_scores(
            q,
            k,
            offs_m,
            offs_n,
            slot,
            valid,
            padded,
            C2P + table,
            P2C + table,
            L,
            S,
            scale,
            HAS_C2P,
            HAS_P2C,
            HAS_PAD,
            PRECISION,
        )
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)  # normalised before dropout, as softmax then dropout
        if DROPOUT:
            p = tl.where(_keep(seed, bh, offs_m, offs_n, L, dropout_p), p, 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    acc = acc / l_i[:, None]
    if DROPOUT:
        acc = acc / (1.0 - dropout_p)
    _store_rows(OUT + row, offs_m, offs_d, L, acc, HEAD_DIM)
    # Max and sum apart rather than their log-sum-exp: m + log(l) loses log(l) when m is PAD_SCORE (a row whose keys
    # are all padded), and the backward would then see p = 1 instead of 1 / l.
    tl.store(ROW_MAX + bh * L + offs_m, m_i, mask=offs_m < L)
    tl.store(ROW_SUM + bh * L + offs_m, l_i, mask=offs_m < L)


@triton.jit
def _tile_grad(
    q,
    k,
    v,
    do,
    max_row,
    sum_row,
    delta_row,
    offs_m,
    offs_n,
    slot,
    valid,
    padded,
    c2p_rows,
    p2c_cols,
    L,
    S,
    scale,
    dropout_p,
    seed,
    bh,
    HAS_C2P: tl.constexpr,
    HAS_P2C: tl.constexpr,
    HAS_PAD: tl.constexpr,
    DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """(dS, P after dropout and its 1/(1-p)) of one tile, recomputed from the saved row maxima and sums."""
    m = tl.load(max_row + offs_m, mask=offs_m < L, other=0.0)
    inv_l = 1.0 / tl.load(sum_row + offs_m, mask=offs_m < L, other=1.0)
    delta = tl.load(delta_row + offs_m, mask=offs_m < L, other=0.0)
    s = _tile_scores(
        q, k, offs_m, offs_n, slot, valid, padded, c2p_rows, p2c_cols, L, S, scale, HAS_C2P, HAS_P2C, HAS_PAD, PRECISION
    )
    p = tl.exp(s - m[:, None]) * inv_l[:, None]
    p = tl.where(offs_m[:, None] < L, p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    if DROPOUT:
        keep = _keep(seed, bh, offs_m, offs_n, L, dropout_p)
        p_dropped = tl.where(keep, p / (1.0 - dropout_p), 0.0)
        dp = tl.where(keep, dp / (1.0 - dropout_p), 0.0)
    else:
        p_dropped = p
    # delta_i = sum_j P_ij dP_ij = <dO_i, O_i> (with dropout too: O is the dropped-out output)
    ds = p * (dp - delta[:, None])
    if HAS_PAD:  # a padded key's score is a constant: no gradient (p > 0 there only when the whole row is padded)
        ds = tl.where(padded, 0.0, ds)
    return ds, p_dropped


@triton.jit
def _add_to_table(grad, ds, slot, valid, offs_m, offs_n, BY_KEY: tl.constexpr, L, S):
    """grad[slot(j - i), j] (P2C, transposed) or grad[i, slot(j - i)] (C2P) += dS[i, j] for the tile.

    Several distances can share a log-bucket slot, hence atomic adds; relaxed, since the calling program is the only
    one writing these rows and nothing reads them before the kernel ends. A tile whose distances all map to one slot
    is summed first: one add per key (query) instead of BLOCK_M (BLOCK_N) adds to the same address."""
    first = tl.min(tl.where(valid, slot, S))
    last = tl.max(tl.where(valid, slot, -1))
    if first == last:
        if BY_KEY:
            tl.atomic_add(grad + first * L + offs_n, tl.sum(ds, 0), mask=offs_n < L, sem="relaxed")
        else:
            tl.atomic_add(grad + offs_m * S + first, tl.sum(ds, 1), mask=offs_m < L, sem="relaxed")
    else:
        if BY_KEY:
            tl.atomic_add(grad + slot * L + offs_n[None, :], ds, mask=valid, sem="relaxed")
        else:
            tl.atomic_add(grad + offs_m[:, None] * S + slot, ds, mask=valid, sem="relaxed")


@triton.jit(do_not_specialize=["seed"])
def _backward_kv_kernel(
    Q,
    K,
    V,
    DO,
    ROW_MAX,
    ROW_SUM,
    DELTA,
    C2P,
    P2C,
    SLOT,
    PAD,
    DK,
    DV,
    DP2C,
    H,
    L,
    S,
    scale,
    dropout_p,
    seed,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_C2P: tl.constexpr,
    HAS_P2C: tl.constexpr,
    HAS_PAD: tl.constexpr,
    DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """dK, dV and dP2C of one key block of BLOCK_N keys (its P2C columns are written by this program only)."""
    pid_n, bh = tl.program_id(0), tl.program_id(1)
    b = bh // H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    row = bh.to(tl.int64) * L * HEAD_DIM
    table = bh.to(tl.int64) * L * S
    k = _load_rows(K + row, offs_n, offs_d, L, HEAD_DIM)
    v = _load_rows(V + row, offs_n, offs_d, L, HEAD_DIM)
    padded = _padded_keys(PAD + b * L, offs_n, L, HAS_PAD)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for start_m in range(0, L, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = _load_rows(Q + row, offs_m, offs_d, L, HEAD_DIM)
        do = _load_rows(DO + row, offs_m, offs_d, L, HEAD_DIM)
        slot, valid = _tile_slots(SLOT, offs_m, offs_n, L, HAS_C2P or HAS_P2C)
        ds, p = _tile_grad(
            q,
            k,
            v,
            do,
            ROW_MAX + bh * L,
            ROW_SUM + bh * L,
            DELTA + bh * L,
            offs_m,
            offs_n,
            slot,
            valid,
            padded,
            C2P + table,
            P2C + table,
            L,
            S,
            scale,
            dropout_p,
            seed,
            bh,
            HAS_C2P,
            HAS_P2C,
            HAS_PAD,
            DROPOUT,
            PRECISION,
        )
        dv += tl.dot(tl.trans(p).to(do.dtype), do, input_precision=PRECISION)
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=PRECISION)
        if HAS_P2C:
            _add_to_table(DP2C + table, ds, slot, valid, offs_m, offs_n, True, L, S)
    _store_rows(DK + row, offs_n, offs_d, L, dk * scale, HEAD_DIM)
    _store_rows(DV + row, offs_n, offs_d, L, dv, HEAD_DIM)


@triton.jit(do_not_specialize=["seed"])
def _backward_q_kernel(
    Q,
    K,
    V,
    DO,
    ROW_MAX,
    ROW_SUM,
    DELTA,
    C2P,
    P2C,
    SLOT,
    PAD,
    DQ,
    DC2P,
    H,
    L,
    S,
    scale,
    dropout_p,
    seed,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_C2P: tl.constexpr,
    HAS_P2C: tl.constexpr,
    HAS_PAD: tl.constexpr,
    DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """dQ and dC2P of one query block of BLOCK_M queries (its C2P rows are written by this program only)."""
    pid_m, bh = tl.program_id(0), tl.program_id(1)
    b = bh // H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row = bh.to(tl.int64) * L * HEAD_DIM
    table = bh.to(tl.int64) * L * S
    q = _load_rows(Q + row, offs_m, offs_d, L, HEAD_DIM)
    do = _load_rows(DO + row, offs_m, offs_d, L, HEAD_DIM)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, L, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _load_rows(K + row, offs_n, offs_d, L, HEAD_DIM)
        v = _load_rows(V + row, offs_n, offs_d, L, HEAD_DIM)
        slot, valid = _tile_slots(SLOT, offs_m, offs_n, L, HAS_C2P or HAS_P2C)
        padded = _padded_keys(PAD + b * L, offs_n, L, HAS_PAD)
        ds, p = _tile_grad(
            q,
            k,
            v,
            do,
            ROW_MAX + bh * L,
            ROW_SUM + bh * L,
            DELTA + bh * L,
            offs_m,
            offs_n,
            slot,
            valid,
            padded,
            C2P + table,
            P2C + table,
            L,
            S,
            scale,
            dropout_p,
            seed,
            bh,
            HAS_C2P,
            HAS_P2C,
            HAS_PAD,
            DROPOUT,
            PRECISION,
        )
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
        if HAS_C2P:
            _add_to_table(DC2P + table, ds, slot, valid, offs_m, offs_n, False, L, S)
    _store_rows(DQ + row, offs_m, offs_d, L, dq * scale, HEAD_DIM)


@triton.jit(do_not_specialize=["seed"])
def _keep_mask_kernel(KEEP, L, dropout_p, seed, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m, pid_n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    keep = _keep(seed, bh, offs_m, offs_n, L, dropout_p)
    tl.store(
        KEEP + (bh.to(tl.int64) * L + offs_m[:, None]) * L + offs_n[None, :],
        keep.to(tl.int8),
        mask=(offs_m[:, None] < L) & (offs_n[None, :] < L),
    )


def check_device(device: torch.device, dtype: torch.dtype = torch.float32):
    """Compiled kernels need CUDA; CPU tensors need the interpreter, chosen before triton is imported."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        # Triton 3.9's interpreter multiplies bf16 tiles wrongly (tl.dot returns garbage; loads are right).
        raise UnsupportedSetupError(
            "--attention-impl fused: bf16 runs on CUDA only (Triton's interpreter has no bf16 dot)"
        )
    if device.type == "cpu" and not INTERPRETED:
        raise UnsupportedSetupError(
            "--attention-impl fused runs Triton kernels: on CPU tensors only in Triton's interpreter, which must be "
            "chosen before triton is imported: run the process with TRITON_INTERPRET=1 (slow, for tests), e.g. "
            "`TRITON_INTERPRET=1 python -m pytest tests/test_fused_attention.py`; use --attention-impl sdpa on CPU"
        )
    if device.type not in ("cpu", "cuda"):
        raise UnsupportedSetupError(
            f"--attention-impl fused supports CUDA (and CPU under TRITON_INTERPRET=1), not {device}"
        )


def check_shapes(q, k, v, pos_key, pos_query, slot_of, key_padding_mask):
    """Shapes the kernels rely on without bounds checks: a wrong one reads or writes past a tensor's end."""
    batch, heads, length, dim = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"fused attention: q, k, v must share one [B, H, L, d] shape, got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if slot_of.dim() != 1 or slot_of.numel() != 2 * length - 1:
        raise ValueError(
            f"fused attention: slot_of must map the 2L - 1 = {2 * length - 1} distances of L = {length}"
            f" (relative_columns(L).c2p), got shape {tuple(slot_of.shape)}"
        )
    rows = [t.shape for t in (pos_key, pos_query) if t is not None]
    if any(len(s) != 3 or s[0] != heads or s[2] != dim for s in rows) or len({s[1] for s in rows}) > 1:
        raise ValueError(
            f"fused attention: pos_key / pos_query must be [H={heads}, S, d={dim}] with one S, "
            f"got {[tuple(s) for s in rows]}"
        )
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, length):
        raise ValueError(
            f"fused attention: key_padding_mask must be [B={batch}, L={length}], got {tuple(key_padding_mask.shape)}"
        )


def draw_seed() -> int:
    """The dropout seed of one call, from torch's CPU generator (reproducible under torch.manual_seed, no sync)."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def keep_mask(seed: int, batch: int, heads: int, length: int, dropout_p: float, device) -> torch.Tensor:
    """The kernel's dropout keep mask [B, H, L, L] (bool) for ``seed``: for tests and debugging only."""
    keep = torch.empty(batch, heads, length, length, dtype=torch.int8, device=device)
    block = 32
    grid = (triton.cdiv(length, block), triton.cdiv(length, block), batch * heads)
    _keep_mask_kernel[grid](keep, length, dropout_p, seed, BLOCK_M=block, BLOCK_N=block)
    return keep.bool()


_REPORTED = set()


def describe_resources(name: str, config: KernelConfig, constants: dict, n_regs, n_spills, shared) -> str:
    """One line per compiled kernel: what ran (tile, warps, stages, head dim, terms) and its per-SM resources."""
    terms = "+".join(
        t
        for t, on in (
            ("c2p", constants["HAS_C2P"]),
            ("p2c", constants["HAS_P2C"]),
            ("pad", constants["HAS_PAD"]),
            ("dropout", constants["DROPOUT"]),
        )
        if on
    )
    return (
        f"fused attention {name}: BLOCK_M={config.block_m} BLOCK_N={config.block_n} warps={config.num_warps} "
        f"stages={config.num_stages} head_dim={constants['HEAD_DIM']} {constants['PRECISION']} "
        f"[{terms or 'c2c only'}]: {n_regs} registers/thread, {n_spills} spilled, {shared} B shared memory"
    )


def _report_once(name, compiled, config, constants):
    """Log registers, spills and shared memory of each newly compiled CUDA kernel (warning when it spills)."""
    if INTERPRETED or compiled is None:
        return
    key = (name, config, tuple(sorted(constants.items())))
    if key in _REPORTED:
        return
    _REPORTED.add(key)
    n_regs, n_spills = getattr(compiled, "n_regs", None), getattr(compiled, "n_spills", None)
    shared = getattr(getattr(compiled, "metadata", None), "shared", None)
    logger.log(
        logging.WARNING if n_spills else logging.INFO,
        describe_resources(name, config, constants, n_regs, n_spills, shared),
    )


def _launch(kernel, name, grid_rows, batch_heads, config, constants, *args):
    """Launch one kernel over cdiv(grid_rows, its own tile) x B*H programs with its own config."""
    block = config.block_n if name == "bwd_kv" else config.block_m
    grid = (triton.cdiv(grid_rows, block), batch_heads)
    compiled = kernel[grid](
        *args,
        **constants,
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    _report_once(name, compiled, config, constants)


def _tables(q, k, pos_key, pos_query):
    """C2P = Q Kr^T [B, H, L, S] and P2C^T = Qr K^T [B, H, S, L], contiguous, fp32 under fp16 (module docstring)."""
    dtype = torch.float32 if q.dtype == torch.float16 else q.dtype
    c2p = None if pos_key is None else torch.matmul(q.to(dtype), pos_key.to(dtype).transpose(-1, -2)).contiguous()
    p2c = None if pos_query is None else torch.matmul(pos_query.to(dtype), k.to(dtype).transpose(-1, -2)).contiguous()
    return c2p, p2c


class _FusedDisentangledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, pos_key, pos_query, slot_of, key_padding_mask, scale, dropout_p, seed, configs):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # the kernels read [B, H, L, d] rows
        batch, heads, length, dim = q.shape
        c2p, p2c = _tables(q, k, pos_key, pos_query)
        dummy = q.new_zeros(1)
        pad = dummy if key_padding_mask is None else key_padding_mask.to(torch.int8).contiguous()
        out = q.new_empty(batch, heads, length, dim)
        row_max, row_sum = (q.new_empty(batch, heads, length, dtype=torch.float32) for _ in range(2))
        slots = pos_key.size(1) if pos_key is not None else pos_query.size(1) if pos_query is not None else 1
        scalars = dict(H=heads, L=length, S=slots, scale=scale, dropout_p=dropout_p, seed=seed)
        constants = dict(
            HEAD_DIM=dim,
            BLOCK_D=max(16, triton.next_power_of_2(dim)),
            HAS_C2P=c2p is not None,
            HAS_P2C=p2c is not None,
            HAS_PAD=key_padding_mask is not None,
            DROPOUT=dropout_p > 0,
            PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        )
        slot_of = slot_of.to(torch.int32).contiguous()
        _launch(
            _forward_kernel,
            "fwd",
            length,
            batch * heads,
            configs["fwd"],
            constants,
            q,
            k,
            v,
            c2p if c2p is not None else dummy,
            p2c if p2c is not None else dummy,
            slot_of,
            pad,
            out,
            row_max,
            row_sum,
            *scalars.values(),
        )
        ctx.save_for_backward(q, k, v, out, row_max, row_sum, pos_key, pos_query, slot_of, pad)
        ctx.scalars, ctx.constants, ctx.configs = scalars, constants, configs
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, out, row_max, row_sum, pos_key, pos_query, slot_of, pad = ctx.saved_tensors
        batch, heads, length, _ = q.shape
        grad_out = grad_out.contiguous()
        delta = (grad_out.float() * out.float()).sum(-1)
        c2p, p2c = _tables(q, k, pos_key, pos_query)
        dummy = q.new_zeros(1)
        grad_c2p = None if c2p is None else torch.zeros(c2p.shape, dtype=torch.float32, device=q.device)
        grad_p2c = None if p2c is None else torch.zeros(p2c.shape, dtype=torch.float32, device=q.device)
        # dQ / dK in fp32 while the tables' parts are still to be added: one rounding to the input dtype at the end.
        dq, dk = (torch.empty(t.shape, dtype=torch.float32, device=t.device) for t in (q, k))
        dv = torch.empty_like(v)
        inputs = (
            q,
            k,
            v,
            grad_out,
            row_max,
            row_sum,
            delta,
            c2p if c2p is not None else dummy,
            p2c if p2c is not None else dummy,
            slot_of,
            pad,
        )
        scalars = ctx.scalars.values()
        # Each kernel's grid runs over its own program tile: keys for dK/dV, queries for dQ.
        _launch(
            _backward_kv_kernel,
            "bwd_kv",
            length,
            batch * heads,
            ctx.configs["bwd_kv"],
            ctx.constants,
            *inputs,
            dk,
            dv,
            grad_p2c if grad_p2c is not None else dummy,
            *scalars,
        )
        _launch(
            _backward_q_kernel,
            "bwd_q",
            length,
            batch * heads,
            ctx.configs["bwd_q"],
            ctx.constants,
            *inputs,
            dq,
            grad_c2p if grad_c2p is not None else dummy,
            *scalars,
        )
        grad_pos_key = grad_pos_query = None
        # The tables' own GEMMs: C2P = Q Kr^T gives dQ += dC2P Kr and dKr = sum_b dC2P^T Q (P2C^T = Qr K^T likewise:
        # dK += dP2C^T^T Qr, dQr = sum_b dP2C^T K). In bf16 when the inputs are 16-bit: in fp32 they are about
        # 2e11 FLOP per layer at L = 512, on CUDA cores unless TF32 is on; bf16 has fp32's range, fp16 not.
        gemm = torch.bfloat16 if q.dtype in (torch.float16, torch.bfloat16) else torch.float32
        if c2p is not None:
            dq += torch.matmul(grad_c2p.to(gemm), pos_key.to(gemm))
            grad_pos_key = torch.einsum("bhls,bhld->hsd", grad_c2p.to(gemm), q.to(gemm)).to(pos_key.dtype)
        if p2c is not None:
            dk += torch.matmul(grad_p2c.to(gemm).transpose(-1, -2), pos_query.to(gemm))
            grad_pos_query = torch.einsum("bhsl,bhld->hsd", grad_p2c.to(gemm), k.to(gemm)).to(pos_query.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv, grad_pos_key, grad_pos_query, None, None, None, None, None, None


def fused_disentangled_attention(
    q, k, v, pos_key, pos_query, slot_of, key_padding_mask=None, scale=1.0, dropout_p=0.0, seed=None, block=None
):
    """softmax(s Q K^T + c2p + p2c, padded keys masked) V with attention dropout, [B, H, L, d] -> [B, H, L, d].

    pos_key / pos_query [H, S, d]: projected active table rows pre-scaled by s, or None to leave the term out;
    slot_of [2L - 1]: slot of distance j - i at index j - i + L - 1 (``relative_columns(L).c2p``);
    key_padding_mask [B, L], True = pad; seed: Philox seed of the dropout (drawn with ``draw_seed`` if None);
    block: every kernel's tile, an int or (block_m, block_n) (None: ``kernel_configs``, with its knobs).
    """
    check_device(q.device, q.dtype)
    check_shapes(q, k, v, pos_key, pos_query, slot_of, key_padding_mask)
    if dropout_p > 0 and seed is None:
        seed = draw_seed()
    configs = kernel_configs(q.device.type, block)
    with torch.autocast(device_type=q.device.type, enabled=False):  # the kernel chooses its own precisions
        return _FusedDisentangledAttention.apply(
            q,
            k,
            v,
            pos_key,
            pos_query,
            slot_of,
            key_padding_mask,
            float(scale),
            float(dropout_p),
            int(seed or 0),
            configs,
        )
