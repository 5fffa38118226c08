"""Trace one update of a configuration under fake tensors: its peak memory, what makes the peak, and its FLOPs.

    t = trace_update(cfg, vocab_size=128100, device="cuda")     # cfg: step.training_config of vega-train flags
    t.peak_bytes, t.at_peak, t.largest, t.flops

Two updates run: the first creates the optimizer's states (Adam's moments are allocated lazily by its first step;
this one steps on zero gradients, without a forward and backward), the second is the steady state every later
update repeats, and its peak is the one reported.
`device="cuda"` traces the attention as CUDA runs it (cuda_model.py); `device="cpu"` traces the CPU code paths,
which a real CPU step measures (benchmarks/plan_validation_cpu.py).
"""

import contextlib
from dataclasses import dataclass, field

import torch

from vega_toolkit.planning.cuda_model import cuda_kernels
from vega_toolkit.planning.step import (
    build_task,
    build_trainer,
    encoder_step,
    forward_backward,
    make_batch,
    optimizer_update,
    with_overrides,
)
from vega_toolkit.planning.tracing import FakeExecution, TensorAtPeak

CATEGORIES = (
    "parameters",
    "gradients",
    "fp32 master weights, gradients and optimizer states",
    "kept for backward (activations)",
    "temporaries",
    "other models' weights (resident)",
)


@dataclass
class Trace:
    batch_size: int
    checkpointed: bool
    peak_bytes: int
    # The forward/backward peak's bytes that do not depend on the batch (weights, gradients, optimizer states) and
    # those that do (activations and temporaries: [B, ...] tensors), and the optimizer step's peak (no batch in it):
    # peak(B') = max(optimizer_peak, fixed_bytes + batch_bytes * B' / B), used to search the largest batch.
    fixed_bytes: int
    batch_bytes: int
    optimizer_peak: int
    flops: int  # executed FLOPs of one update: forward, backward (recomputation included), optimizer
    tokens: int  # tokens of one update's batch
    parameters: int
    gradient_bytes: int
    at_peak: dict[str, int] = field(default_factory=dict)
    largest: list[TensorAtPeak] = field(default_factory=list)


def prewarm_relative_tables(length: int, cfg):
    """Build the cached relative-position tables on real tensors (``torch.unique`` has a data-dependent shape)."""
    from vega_toolkit.modules.relative_position import relative_columns, relative_index

    max_rel = cfg.max_relative_positions if cfg.max_relative_positions >= 1 else cfg.max_positions
    for table in (relative_columns, relative_index):
        args = (length,) if table is relative_columns else (length, length)
        table(*args, cfg.position_buckets, max_rel, torch.device("cpu"))


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def optimizer_tensors(optimizer):
    """fp32 master weights, their gradients and the optimizer states of a fairseq optimizer (fp16/bf16 wrapped
    or not)."""
    inner = getattr(optimizer, "fp32_optimizer", None) or getattr(optimizer, "wrapped_optimizer", None) or optimizer
    torch_optimizer = inner.optimizer
    tensors = _tensors(list(torch_optimizer.state.values()))
    master = _tensors(getattr(optimizer, "fp32_params", []))
    return tensors + master + [p.grad for p in master if p.grad is not None]


def _classify(memory, t_peak, groups):
    """Bytes per category and the largest tensors live at time ``t_peak``."""
    category_of = {}
    for name, tensors in groups:
        for tensor in tensors:
            index = memory.index_of(tensor)
            if index is not None:
                category_of.setdefault(index, name)
    at_peak = dict.fromkeys(CATEGORIES, 0)
    largest = []
    for i in memory.live_at(t_peak):
        record = memory.records[i]
        name = category_of.get(i) or ("kept for backward (activations)" if record.saved_for_backward else "temporaries")
        at_peak[name] += record.nbytes
        largest.append(TensorAtPeak(record.nbytes, name, record.op, record.shape, record.dtype))
    largest.sort(key=lambda t: -t.nbytes)
    return at_peak, largest[:8]


def trace_update(cfg, vocab_size: int, device: str, batch_size: int = None, checkpoint: bool = None) -> Trace:
    """One steady-state training update of ``cfg`` (step.training_config; batch size and activation checkpointing
    overridable)."""
    cfg = with_overrides(cfg, batch_size, checkpoint)
    batch_size, length = cfg.dataset.batch_size, cfg.task.tokens_per_sample
    task = build_task(cfg, vocab_size)
    batch = make_batch(task, batch_size, length)
    prewarm_relative_tables(length, cfg.model)
    kernels = cuda_kernels() if device == "cuda" else contextlib.nullcontext()
    with kernels, FakeExecution() as ex:
        trainer = build_trainer(cfg, task)
        model_params = list(trainer.model.parameters()) + list(trainer.criterion.parameters())
        ex.memory.track_existing(model_params, "parameter")
        ex.memory.track_existing(optimizer_tensors(trainer.optimizer), "optimizer")
        sample = ex.real_sample(batch)
        # The update before: only its optimizer step matters (it creates Adam's states), so its gradients come from
        # a zero loss over every trainable weight through the optimizer's own backward instead of a forward and
        # backward of the model (a trace's cost is per operator).
        trainer.zero_grad()
        trainer.optimizer.backward(sum(p.sum() for p in model_params if p.requires_grad) * 0)
        optimizer_update(trainer, 1, update_num=0)
        flops_before = ex.total_flops()
        ex.mark("update")
        sample_size = forward_backward(trainer, sample, update_num=1)
        ex.mark("optimizer")
        optimizer_update(trainer, sample_size, update_num=1)
        flops = ex.total_flops() - flops_before
        peak, t_peak = ex.memory.peak(since=ex.marks["update"])
        fb_peak, t_fb = ex.memory.peak(since=ex.marks["update"], until=ex.marks["optimizer"])
        optimizer_peak, _ = ex.memory.peak(since=ex.marks["optimizer"])
        groups = [
            ("parameters", model_params),
            ("gradients", [p.grad for p in model_params if p.grad is not None]),
            ("fp32 master weights, gradients and optimizer states", optimizer_tensors(trainer.optimizer)),
        ]
        at_peak, largest = _classify(ex.memory, t_peak, groups)
        at_fb, _ = _classify(ex.memory, t_fb, groups)
        batch_bytes = at_fb["kept for backward (activations)"] + at_fb["temporaries"]
        gradient_bytes = sum(p.numel() * p.element_size() for p in model_params if p.requires_grad)
        parameters = sum(p.numel() for p in model_params)
    return Trace(
        batch_size,
        bool(cfg.model.checkpoint_activations),
        peak,
        fb_peak - batch_bytes,
        batch_bytes,
        optimizer_peak,
        flops,
        batch_size * length,
        parameters,
        gradient_bytes,
        at_peak,
        largest,
    )


def trace_encoder_step(cfg, vocab_size: int, batch_size: int, resident_params: int = 0) -> Trace:
    """benchmarks/encoder_speed.py's step on a GPU (calibration rows of kind ``encoder_speed``)."""
    from vega_toolkit.models.vega_encoder import VegaEncoderModel

    length = cfg.task.tokens_per_sample
    task = build_task(cfg, vocab_size)
    tokens = make_batch(task, batch_size, length)["original_tokens"]
    prewarm_relative_tables(length, cfg.model)
    with cuda_kernels(), FakeExecution() as ex:
        model = VegaEncoderModel.build_model(cfg.model, task).train()
        params = list(model.parameters())
        ex.memory.track_existing(params, "parameter")
        others = torch.empty(resident_params, dtype=torch.float32)
        ex.memory.track_existing([others], "resident")
        tokens = ex.real_sample(tokens)
        encoder_step(model, tokens, autocast_device="cpu")  # the measured step is the second one: grads resident
        flops_before = ex.total_flops()
        ex.mark("update")
        encoder_step(model, tokens, autocast_device="cpu")
        flops = ex.total_flops() - flops_before
        peak, t_peak = ex.memory.peak(since=ex.marks["update"])
        at_peak, largest = _classify(
            ex.memory,
            t_peak,
            [
                ("parameters", params),
                ("gradients", [p.grad for p in params if p.grad is not None]),
                ("other models' weights (resident)", [others]),
            ],
        )
        gradient_bytes = sum(p.numel() * p.element_size() for p in params)
        batch_bytes = at_peak["kept for backward (activations)"] + at_peak["temporaries"]
        del others
    return Trace(
        batch_size,
        False,
        peak,
        peak - batch_bytes,
        batch_bytes,
        0,
        flops,
        batch_size * length,
        sum(p.numel() for p in params),
        gradient_bytes,
        at_peak,
        largest,
    )
