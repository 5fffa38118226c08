"""What a GPU run holds that fake CPU tensors cannot show: the one place where the plan models CUDA explicitly.

    with cuda_kernels():                 # while tracing a step planned for a GPU
        run_update(trainer, batch)
    gpu_bytes = per_gpu_bytes(traced_peak, ddp_bucket_bytes)

    vega-plan --task denoising_pretrain --arch vega_base ... --gpu h200 --gpus 8   # a GPU step traced on a CPU

Fake `device="cuda"` tensors abort on a CPU-only torch, so a GPU step is traced on fake CPU tensors with the CPU-only
code paths swapped for what CUDA runs. The four things modelled (attention core, the fused kernel, context and
allocator, DDP buckets): docs/design.md#what-the-planner-models-of-cuda.
"""

import contextlib

import torch
import torch.nn.functional as F

from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention

# CUDA context + cuBLAS workspace + NCCL communicator buffers per process: commonly 0.5-1 GiB for
# the context alone; benchmarks/planner_calibration.py measures it on a lent GPU (`context_bytes` of its rows).
CUDA_CONTEXT_BYTES = 1 << 30
# Reserved / allocated of PyTorch's caching allocator: segments rounded to 2 MiB and blocks that cannot be reused
# for a larger request. An assumption until a calibration file carries `max_memory_reserved` (planner_calibration.py
# records it); a calibration file's measured ratio replaces it.
ALLOCATOR_OVERHEAD = 0.05
# The memory-efficient kernel needs the bias's last dimension 16-element aligned (torch's sdpa pads it otherwise).
BIAS_ALIGN = 16


def _efficient_attention(self, q, k, v, bias, dropout_p):
    """CUDA's SDPA with a bias: aten._scaled_dot_product_efficient_attention (what F.sdpa dispatches to)."""
    length = bias.size(-1)
    if length % BIAS_ALIGN:  # torch pads the bias to an aligned copy and hands the kernel a slice of it
        bias = F.pad(bias, (0, BIAS_ALIGN - length % BIAS_ALIGN))[..., :length]
    out = torch.ops.aten._scaled_dot_product_efficient_attention(
        q, k, v, bias, torch.is_grad_enabled(), dropout_p, False, scale=self.scale
    )[0]
    return out


class _FusedShapes(torch.autograd.Function):
    """The allocations of fused_disentangled_attention's autograd function, without the Triton launches."""

    @staticmethod
    def forward(ctx, q, k, v, pos_key, pos_query):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        tables = [
            torch.matmul(x, t.transpose(-1, -2)).contiguous()
            for x, t in ((q, pos_key), (k, pos_query))
            if t is not None
        ]
        out = torch.empty_like(q)
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        del tables  # the kernel reads them; backward recomputes them
        ctx.save_for_backward(q, k, v, out, lse, pos_key, pos_query)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, pos_key, pos_query = ctx.saved_tensors
        delta = (grad_out.float() * out.float()).sum(-1)
        tables = [
            torch.matmul(x, t.transpose(-1, -2)).contiguous()
            for x, t in ((q, pos_key), (k, pos_query))
            if t is not None
        ]
        grad_tables = [torch.zeros(t.shape, dtype=torch.float32) for t in tables]
        dq, dk = (torch.empty(t.shape, dtype=torch.float32) for t in (q, k))
        dv = torch.empty_like(v)
        grads, present = (
            [None, None],
            [(i, t, x) for i, (t, x) in enumerate(((pos_key, q), (pos_query, k))) if t is not None],
        )
        for (i, table, x), g in zip(present, grad_tables, strict=True):
            grads[i] = torch.einsum("bhls,bhld->hsd", g, x.float()).to(table.dtype)
        del delta, tables, grad_tables
        return dq.to(q.dtype), dk.to(k.dtype), dv, grads[0], grads[1]


def _fused_shapes(self, q, k, v, rel_embeddings, key_padding_mask):
    from vega_toolkit.modules.relative_position import relative_columns

    cols = relative_columns(q.size(-2), self.position_buckets, self.max_relative_positions, q.device)
    pos_key = pos_query = None
    if self.c2p or self.p2c:
        pos_key, pos_query = self._pos_projections(self.pos_dropout(rel_embeddings.index_select(0, cols.slots)))
    with torch.autocast(device_type=q.device.type, enabled=False):
        return _FusedShapes.apply(q, k, v, pos_key, pos_query)


@contextlib.contextmanager
def cuda_kernels():
    """Trace the attention as CUDA runs it: SDPA's memory-efficient kernel, or the fused kernel's allocations."""
    cls = DisentangledSelfAttention
    saved = cls.BLOCK, cls._attend, cls._fused
    cls.BLOCK, cls._attend, cls._fused = cls.CUDA_BLOCK, _efficient_attention, _fused_shapes
    try:
        yield
    finally:
        cls.BLOCK, cls._attend, cls._fused = saved


def ddp_bucket_bytes(args, gradient_bytes: int, world_size: int) -> int:
    """DDP's gradient buckets: a second copy of the gradients under torch's DistributedDataParallel."""
    if world_size <= 1 or getattr(args, "gradient_as_bucket_view", False):
        return 0
    if args.ddp_backend in ("c10d", "pytorch_ddp"):
        return gradient_bytes
    if args.ddp_backend in ("no_c10d", "legacy_ddp"):  # fairseq's own DDP: one buffer of at most 2**28 elements
        return min(gradient_bytes, 2**28 * 2)  # (fairseq/models/distributed_fairseq_model.py), half precision
    return 0


def per_gpu_bytes(
    traced_peak: int,
    ddp_bytes: int,
    allocator_overhead: float = ALLOCATOR_OVERHEAD,
    context_bytes: int = CUDA_CONTEXT_BYTES,
) -> int:
    """What the card must hold: the allocated peak (traced + DDP buckets), the allocator's overhead on it, and the
    CUDA context (cuBLAS workspaces and NCCL buffers included)."""
    allocated = traced_peak + ddp_bytes
    return int(allocated * (1 + allocator_overhead)) + context_bytes
