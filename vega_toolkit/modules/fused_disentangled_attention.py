"""Disentangled attention in one Triton kernel, flash-attention style: the [B, H, L, L] bias is never built.

    from vega_toolkit.modules.fused_disentangled_attention import fused_disentangled_attention
    out = fused_disentangled_attention(q, k, v, pos_key, pos_query, slot_of, key_padding_mask, scale, dropout_p)
    TRITON_INTERPRET=1 python -m pytest tests/test_fused_attention.py     # CPU: Triton's interpreter runs the kernels

Same scores as ``DisentangledSelfAttention._reference`` (see disentangled_attention.py for the math):

    A[i, j] = s <Q_i, K_j> + C2P[i, slot(j - i)] + P2C[j, slot(j - i)],   C2P = Q Kr^T,  P2C = K Qr^T

Kr / Qr are the active relative-table rows [H, S, d] (``relative_columns(L).slots``, S <= min(2L - 1, 2k)) projected
and pre-scaled by s, and slot(j - i) = ``relative_columns(L).c2p[j - i + L - 1]`` is the O(L) distance -> slot map.
The compact tables C2P / P2C [B, H, L, S] are two GEMMs in PyTorch; the kernel gathers their entries per tile, adds
the key-padding mask, runs an online softmax with attention dropout drawn from Philox (``tl.rand``: the keep mask of
element (b, h, i, j) depends only on the seed and its position, so the backward redraws it and ``keep_mask``
returns it for tests) and multiplies by V. Nothing of size L x L is written, and the tables are not saved either:
the backward recomputes them (two GEMMs) and then the scores tile by tile -- dK/dV and dP2C per key block, dQ and
dC2P per query block, so that each table row is written by one program only. Table gradients go through atomic
adds in fp32 (several distances share a log bucket); dQ, dK, dKr, dQr get their table parts as GEMMs.

Padding is key-only (a padded query row attends to the real keys), as in the sdpa path; the reference masks padded
rows too, so the two agree on real positions. Scores, softmax and table gradients are fp32 in the kernel; under fp16
the tables are computed in fp32 as well (fp16 cannot hold large scores), bf16 has fp32's range and stays as is.
"""
import os

import torch
import triton
import triton.language as tl

from vega_toolkit.errors import UnsupportedSetupError

# Triton picks interpreted or compiled kernels when @triton.jit runs, i.e. when this module is imported.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
# Tile sizes: 64 x 64 is the usual flash-attention tile for d = 64 on sm80+ (not yet tuned on a GPU); the
# interpreter runs fewer, larger numpy tiles faster.
CUDA_BLOCK = 64
CPU_BLOCK = 32


@triton.jit
def _tile_scores(q, k, offs_m, offs_n, c2p_rows, p2c_rows, slot_of, pad_row, L, S, scale,
                 HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_PAD: tl.constexpr, PRECISION: tl.constexpr):
    """Scores [BM, BN] of query rows offs_m against key rows offs_n; -inf beyond L, -1e30 on padded keys."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
    valid = (offs_m[:, None] < L) & (offs_n[None, :] < L)
    if HAS_C2P or HAS_P2C:
        slot = tl.load(slot_of + offs_n[None, :] - offs_m[:, None] + L - 1, mask=valid, other=0)
        if HAS_C2P:
            s += tl.load(c2p_rows + offs_m[:, None] * S + slot, mask=valid, other=0.0).to(tl.float32)
        if HAS_P2C:
            s += tl.load(p2c_rows + offs_n[None, :] * S + slot, mask=valid, other=0.0).to(tl.float32)
    if HAS_PAD:
        pad = tl.load(pad_row + offs_n, mask=offs_n < L, other=0)
        s = tl.where(pad[None, :] != 0, -1.0e30, s)  # finite: a row whose keys are all padded stays finite
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


@triton.jit
def _forward_kernel(Q, K, V, C2P, P2C, SLOT, PAD, O, LSE,
                    H, L, S, scale, dropout_p, seed,
                    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_PAD: tl.constexpr, DROPOUT: tl.constexpr,
                    PRECISION: tl.constexpr):
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
        s = _tile_scores(q, k, offs_m, offs_n, C2P + table, P2C + table, SLOT, PAD + b * L, L, S, scale,
                         HAS_C2P, HAS_P2C, HAS_PAD, PRECISION)
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
    _store_rows(O + row, offs_m, offs_d, L, acc, HEAD_DIM)
    tl.store(LSE + bh * L + offs_m, m_i + tl.log(l_i), mask=offs_m < L)


@triton.jit
def _tile_grad(q, k, v, do, lse_row, delta_row, offs_m, offs_n, c2p_rows, p2c_rows, slot_of, pad_row, L, S, scale,
               dropout_p, seed, bh,
               HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_PAD: tl.constexpr, DROPOUT: tl.constexpr,
               PRECISION: tl.constexpr):
    """(dS, P after dropout and its 1/(1-p)) of one tile, recomputed from the saved log-sum-exp."""
    lse = tl.load(lse_row + offs_m, mask=offs_m < L, other=0.0)
    delta = tl.load(delta_row + offs_m, mask=offs_m < L, other=0.0)
    s = _tile_scores(q, k, offs_m, offs_n, c2p_rows, p2c_rows, slot_of, pad_row, L, S, scale,
                     HAS_C2P, HAS_P2C, HAS_PAD, PRECISION)
    p = tl.exp(s - lse[:, None])
    p = tl.where(offs_m[:, None] < L, p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    if DROPOUT:
        keep = _keep(seed, bh, offs_m, offs_n, L, dropout_p)
        p_dropped = tl.where(keep, p / (1.0 - dropout_p), 0.0)
        dp = tl.where(keep, dp / (1.0 - dropout_p), 0.0)
    else:
        p_dropped = p
    # delta_i = sum_j P_ij dP_ij = <dO_i, O_i> (with dropout too: O is the dropped-out output)
    return p * (dp - delta[:, None]), p_dropped


@triton.jit
def _add_to_table(grad_rows, ds, offs_m, offs_n, BY_KEY: tl.constexpr, slot_of, L, S):
    """grad[row, slot(j - i)] += dS[i, j] for the tile, row = j (P2C) or i (C2P); several distances can share a
    log-bucket slot, hence atomic adds (the calling program is the only one writing these rows)."""
    valid = (offs_m[:, None] < L) & (offs_n[None, :] < L)
    slot = tl.load(slot_of + offs_n[None, :] - offs_m[:, None] + L - 1, mask=valid, other=0)
    if BY_KEY:
        tl.atomic_add(grad_rows + offs_n[None, :] * S + slot, ds, mask=valid)
    else:
        tl.atomic_add(grad_rows + offs_m[:, None] * S + slot, ds, mask=valid)


@triton.jit
def _backward_kv_kernel(Q, K, V, DO, LSE, DELTA, C2P, P2C, SLOT, PAD, DK, DV, DP2C,
                        H, L, S, scale, dropout_p, seed,
                        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_PAD: tl.constexpr,
                        DROPOUT: tl.constexpr, PRECISION: tl.constexpr):
    """dK, dV and dP2C of one key block (its P2C rows are written by this program only)."""
    pid_n, bh = tl.program_id(0), tl.program_id(1)
    b = bh // H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    row = bh.to(tl.int64) * L * HEAD_DIM
    table = bh.to(tl.int64) * L * S
    k = _load_rows(K + row, offs_n, offs_d, L, HEAD_DIM)
    v = _load_rows(V + row, offs_n, offs_d, L, HEAD_DIM)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for start_m in range(0, L, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = _load_rows(Q + row, offs_m, offs_d, L, HEAD_DIM)
        do = _load_rows(DO + row, offs_m, offs_d, L, HEAD_DIM)
        ds, p = _tile_grad(q, k, v, do, LSE + bh * L, DELTA + bh * L, offs_m, offs_n, C2P + table, P2C + table,
                           SLOT, PAD + b * L, L, S, scale, dropout_p, seed, bh,
                           HAS_C2P, HAS_P2C, HAS_PAD, DROPOUT, PRECISION)
        dv += tl.dot(tl.trans(p).to(do.dtype), do, input_precision=PRECISION)
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=PRECISION)
        if HAS_P2C:
            _add_to_table(DP2C + table, ds, offs_m, offs_n, True, SLOT, L, S)
    _store_rows(DK + row, offs_n, offs_d, L, dk * scale, HEAD_DIM)
    _store_rows(DV + row, offs_n, offs_d, L, dv, HEAD_DIM)


@triton.jit
def _backward_q_kernel(Q, K, V, DO, LSE, DELTA, C2P, P2C, SLOT, PAD, DQ, DC2P,
                       H, L, S, scale, dropout_p, seed,
                       HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr, HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_PAD: tl.constexpr,
                       DROPOUT: tl.constexpr, PRECISION: tl.constexpr):
    """dQ and dC2P of one query block (its C2P rows are written by this program only)."""
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
        ds, p = _tile_grad(q, k, v, do, LSE + bh * L, DELTA + bh * L, offs_m, offs_n, C2P + table, P2C + table,
                           SLOT, PAD + b * L, L, S, scale, dropout_p, seed, bh,
                           HAS_C2P, HAS_P2C, HAS_PAD, DROPOUT, PRECISION)
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
        if HAS_C2P:
            _add_to_table(DC2P + table, ds, offs_m, offs_n, False, SLOT, L, S)
    _store_rows(DQ + row, offs_m, offs_d, L, dq * scale, HEAD_DIM)


@triton.jit
def _keep_mask_kernel(KEEP, L, dropout_p, seed, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m, pid_n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    keep = _keep(seed, bh, offs_m, offs_n, L, dropout_p)
    tl.store(KEEP + (bh.to(tl.int64) * L + offs_m[:, None]) * L + offs_n[None, :], keep.to(tl.int8),
             mask=(offs_m[:, None] < L) & (offs_n[None, :] < L))


def check_device(device: torch.device, dtype: torch.dtype = torch.float32):
    """Compiled kernels need CUDA; CPU tensors need the interpreter, chosen before triton is imported."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        # Triton 3.9's interpreter multiplies bf16 tiles wrongly (tl.dot returns garbage; loads are right).
        raise UnsupportedSetupError("--attention-impl fused: bf16 runs on CUDA only (Triton's interpreter has no bf16 "
                                    "dot)")
    if device.type == "cpu" and not INTERPRETED:
        raise UnsupportedSetupError(
            "--attention-impl fused runs Triton kernels: on CPU tensors only in Triton's interpreter, which must be "
            "chosen before triton is imported: run the process with TRITON_INTERPRET=1 (slow, for tests), e.g. "
            "`TRITON_INTERPRET=1 python -m pytest tests/test_fused_attention.py`; use --attention-impl sdpa on CPU")
    if device.type not in ("cpu", "cuda"):
        raise UnsupportedSetupError(f"--attention-impl fused supports CUDA (and CPU under TRITON_INTERPRET=1), not "
                                    f"{device}")


def draw_seed() -> int:
    """The dropout seed of one call, from torch's CPU generator (reproducible under torch.manual_seed, no sync)."""
    return int(torch.randint(0, 2 ** 31 - 1, (1,)).item())


def keep_mask(seed: int, batch: int, heads: int, length: int, dropout_p: float, device) -> torch.Tensor:
    """The kernel's dropout keep mask [B, H, L, L] (bool) for ``seed``: for tests and debugging only."""
    keep = torch.empty(batch, heads, length, length, dtype=torch.int8, device=device)
    block = 32
    grid = (triton.cdiv(length, block), triton.cdiv(length, block), batch * heads)
    _keep_mask_kernel[grid](keep, length, dropout_p, seed, BLOCK_M=block, BLOCK_N=block)
    return keep.bool()


def _tables(q, k, pos_key, pos_query):
    """C2P = Q Kr^T and P2C = K Qr^T [B, H, L, S], contiguous, fp32 under fp16 (see the module docstring)."""
    dtype = torch.float32 if q.dtype == torch.float16 else q.dtype
    c2p = None if pos_key is None else torch.matmul(q.to(dtype), pos_key.to(dtype).transpose(-1, -2)).contiguous()
    p2c = None if pos_query is None else torch.matmul(k.to(dtype), pos_query.to(dtype).transpose(-1, -2)).contiguous()
    return c2p, p2c


class _FusedDisentangledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, pos_key, pos_query, slot_of, key_padding_mask, scale, dropout_p, seed, block):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # the kernels read [B, H, L, d] rows
        batch, heads, length, dim = q.shape
        c2p, p2c = _tables(q, k, pos_key, pos_query)
        some_table = c2p if c2p is not None else p2c
        dummy = q.new_zeros(1)
        pad = dummy if key_padding_mask is None else key_padding_mask.to(torch.int8).contiguous()
        out = q.new_empty(batch, heads, length, dim)
        lse = q.new_empty(batch, heads, length, dtype=torch.float32)
        common = dict(
            H=heads, L=length, S=some_table.size(-1) if some_table is not None else 1, scale=scale,
            dropout_p=dropout_p, seed=seed, HEAD_DIM=dim, BLOCK_D=max(16, triton.next_power_of_2(dim)),
            BLOCK_M=block, BLOCK_N=block, HAS_C2P=c2p is not None, HAS_P2C=p2c is not None,
            HAS_PAD=key_padding_mask is not None, DROPOUT=dropout_p > 0,
            PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        )
        slot_of = slot_of.to(torch.int32).contiguous()
        _forward_kernel[(triton.cdiv(length, block), batch * heads)](
            q, k, v, c2p if c2p is not None else dummy, p2c if p2c is not None else dummy, slot_of, pad, out, lse,
            **common)
        ctx.save_for_backward(q, k, v, out, lse, pos_key, pos_query, slot_of, pad)
        ctx.common = common
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, out, lse, pos_key, pos_query, slot_of, pad = ctx.saved_tensors
        common = ctx.common
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
        inputs = (q, k, v, grad_out, lse, delta, c2p if c2p is not None else dummy,
                  p2c if p2c is not None else dummy, slot_of, pad)
        grid = (triton.cdiv(length, common["BLOCK_N"]), batch * heads)
        _backward_kv_kernel[grid](*inputs, dk, dv, grad_p2c if grad_p2c is not None else dummy,
                                  **common)
        _backward_q_kernel[grid](*inputs, dq, grad_c2p if grad_c2p is not None else dummy,
                                 **common)
        grad_pos_key = grad_pos_query = None
        # The tables' own GEMMs: C2P = Q Kr^T gives dQ += dC2P Kr and dKr = sum_b dC2P^T Q (P2C likewise with K, Qr).
        if c2p is not None:
            dq += torch.matmul(grad_c2p, pos_key.float())
            grad_pos_key = torch.einsum("bhls,bhld->hsd", grad_c2p, q.float()).to(pos_key.dtype)
        if p2c is not None:
            dk += torch.matmul(grad_p2c, pos_query.float())
            grad_pos_query = torch.einsum("bhls,bhld->hsd", grad_p2c, k.float()).to(pos_query.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv, grad_pos_key, grad_pos_query, None, None, None, None, None, None


def fused_disentangled_attention(q, k, v, pos_key, pos_query, slot_of, key_padding_mask=None, scale=1.0,
                                 dropout_p=0.0, seed=None, block=None):
    """softmax(s Q K^T + c2p + p2c, padded keys masked) V with attention dropout, [B, H, L, d] -> [B, H, L, d].

    pos_key / pos_query [H, S, d]: projected active table rows pre-scaled by s, or None to leave the term out;
    slot_of [2L - 1]: slot of distance j - i at index j - i + L - 1 (``relative_columns(L).c2p``);
    key_padding_mask [B, L], True = pad; seed: Philox seed of the dropout (drawn with ``draw_seed`` if None).
    """
    check_device(q.device, q.dtype)
    if dropout_p > 0 and seed is None:
        seed = draw_seed()
    block = block or (CPU_BLOCK if q.device.type == "cpu" else CUDA_BLOCK)
    with torch.autocast(device_type=q.device.type, enabled=False):  # the kernel chooses its own precisions
        return _FusedDisentangledAttention.apply(q, k, v, pos_key, pos_query, slot_of, key_padding_mask,
                                                 float(scale), float(dropout_p), int(seed or 0), block)
