"""A plan: memory, fit, largest batch, FLOPs, time and communication of a vega-train configuration on a cluster.

    plan = make_plan(argv)                 # vega-plan's command line (vega-train flags + --gpu, --gpus, ...)
    print(render_text(plan)); json.dumps(plan_json(plan))
    rows = validate(calibration_paths)     # vega-plan --validate: predicted vs measured peaks


Memory is traced (trace.py), not computed by a formula; the largest batch is fitted from the traced peak, then
traced again; time is the traced FLOPs at a measured utilisation. Method and its numbers:
docs/design.md#how-vega-plan-plans.
"""

import math
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from vega_toolkit.planning import cuda_model
from vega_toolkit.planning.calibration import Calibration, CalibrationRow, calibration_files, load_calibration
from vega_toolkit.planning.gpus import GIB, GPUS, Gpu, get_gpu
from vega_toolkit.planning.step import (
    DEFAULT_VOCAB,
    PlanInputError,
    check_configuration,
    parse_plan_command,
    training_config,
)
from vega_toolkit.planning.trace import Trace, trace_encoder_step
from vega_toolkit.planning.trace import trace_update as _trace_update

REFERENCE_MFUS = (0.3, 0.5)
_TRACES = {}


def trace_update(cfg, vocab_size: int, device: str, batch_size: int = None, checkpoint: bool = None) -> Trace:
    """trace.trace_update, remembered for the life of the process (plans of one configuration on several clusters
    share their traces: the memory of an update does not depend on the card)."""
    from omegaconf import OmegaConf

    # what one process's update depends on: not the world size, --update-freq or --max-update
    traced = {k: cfg[k] for k in ("common", "model", "task", "criterion", "optimizer", "optimization")}
    traced["optimization"] = {"clip_norm": cfg.optimization.clip_norm}
    key = (OmegaConf.to_yaml(traced), cfg.dataset.batch_size, vocab_size, device, batch_size, checkpoint)
    if key not in _TRACES:
        _TRACES[key] = _trace_update(cfg, vocab_size, device, batch_size, checkpoint)
    return _TRACES[key]


# The paper's run (Zhong et al. 2022, arXiv 2302.09268): 40 DGX nodes x 8 A100, "about 20 days" for 1M steps.
PAPER_DAYS = 20.0


def add_plan_args(parser):
    group = parser.add_argument_group("vega-plan")
    group.add_argument(
        "--gpu",
        default="a100-80gb",
        help=f"the card: {', '.join(GPUS)} (or any name with --gpu-memory and --gpu-flops)",
    )
    group.add_argument(
        "--gpus", type=int, default=0, help="data-parallel GPUs (default: --distributed-world-size, else 1)"
    )
    group.add_argument("--gpu-memory", type=float, default=0.0, help="the card's memory in GiB (overrides the table)")
    group.add_argument(
        "--gpu-flops",
        type=float,
        default=0.0,
        help="the card's dense peak FLOP/s in the planned dtype (overrides the table)",
    )
    group.add_argument("--gpus-per-node", type=int, default=8, help="GPUs sharing one node's interconnect")
    group.add_argument(
        "--interconnect-gbps",
        type=float,
        default=100.0,
        help="inter-node bandwidth per node, GB/s (100: InfiniBand-class, e.g. 4 x 200 Gb/s HDR)",
    )
    group.add_argument(
        "--vocab-size",
        type=int,
        default=DEFAULT_VOCAB,
        help="vocabulary rows when no DATA is given (DeBERTa-v3's spm: 128100)",
    )
    group.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda: plan a GPU run (CUDA kernels modelled); cpu: trace the CPU step (validation)",
    )
    group.add_argument(
        "--calibration",
        default="",
        help="calibration file (default: benchmarks/calibration/<gpu>.json, else any there)",
    )
    group.add_argument(
        "--no-search", action="store_true", help="skip the largest-batch search (one trace instead of several)"
    )
    group.add_argument(
        "--fit-batch-only",
        action="store_true",
        help="give the largest batch from the linear fit alone, without tracing it (faster; can "
        "be too large: see vega_toolkit/planning/plan.py)",
    )
    group.add_argument(
        "--jobs",
        type=int,
        default=min(3, os.cpu_count() or 1),
        help="processes tracing at once (default: up to 3, one per independent line of traces: the "
        "configuration, the other checkpointing mode, the calibration row)",
    )
    group.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    group.add_argument(
        "--validate",
        action="store_true",
        help="predict the calibration files' measured peaks; exit 1 if any is off by > 15%%",
    )


@dataclass
class BatchSearch:
    checkpointed: bool
    max_batch_size: int
    peak_bytes: int  # peak at max_batch_size, traced (verified) or fitted (0 when nothing fits)
    traces: int
    verified: bool = False


@dataclass
class Plan:
    arch: str
    device: str
    gpu: Gpu | None
    gpus: int
    dtype: str
    cfg: object
    trace: Trace
    ddp_bytes: int
    per_gpu_bytes: int
    fits: bool | None
    allocator_overhead: float
    context_bytes: int
    searches: dict[bool, BatchSearch] = field(default_factory=dict)
    model_flops_per_token: float = 0.0
    mfu: float | None = None
    mfu_source: str = ""
    allreduce_bytes: float = 0.0
    allreduce_seconds: float = 0.0
    interconnect_gbps: float = 0.0
    suggestions: list[str] = field(default_factory=list)

    @property
    def update_freq(self) -> int:
        return self.cfg.optimization.update_freq[0]

    @property
    def max_update(self) -> int:
        return self.cfg.optimization.max_update

    @property
    def flops_per_token(self) -> float:
        return self.trace.flops / self.trace.tokens

    def seconds_per_update(self, mfu: float) -> float:
        compute = self.update_freq * self.trace.flops / (self.gpu.peak_flops(self.dtype) * mfu)
        return compute + self.allreduce_seconds

    def days(self, mfu: float | None) -> float | None:
        if mfu is None or self.gpu is None or not self.max_update:
            return None
        return self.max_update * self.seconds_per_update(mfu) / 86400

    def implied_mfu(self, days: float) -> float:
        """The utilisation at which max_update updates take ``days`` (communication counted as in ``days``)."""
        compute = days * 86400 / self.max_update - self.allreduce_seconds
        return self.update_freq * self.trace.flops / (self.gpu.peak_flops(self.dtype) * compute)


def dtype_of(cfg) -> str:
    return "bf16" if cfg.common.bf16 else "fp16" if cfg.common.fp16 else "fp32"


def parse(argv: list[str]):
    args = parse_plan_command(argv, add_extra_args=add_plan_args)
    for flag in ("gpus", "gpus_per_node"):
        if getattr(args, flag) < 0 or (flag == "gpus_per_node" and args.gpus_per_node < 1):
            raise PlanInputError(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    for flag in ("interconnect_gbps", "vocab_size"):
        if getattr(args, flag) <= 0:
            raise PlanInputError(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    if args.gpu_memory < 0 or args.gpu_flops < 0:
        raise PlanInputError("--gpu-memory and --gpu-flops must be positive")
    return args


def usable_bytes(gpu: Gpu, overhead: float, context: int) -> int:
    """The most the traced peak plus DDP's buckets may be on ``gpu`` (cuda_model.per_gpu_bytes inverted)."""
    return int((gpu.memory_bytes - context) / (1 + overhead))


def fitted_peak(trace: Trace, batch_size: int) -> int:
    """The update's peak at ``batch_size`` by the linear model of ``trace`` (module docstring)."""
    return int(max(trace.optimizer_peak, trace.fixed_bytes + trace.batch_bytes * batch_size / trace.batch_size))


def search_batch(
    cfg, vocab: int, first: Trace, limit_bytes: int, ddp_bytes: int, verify: bool = True, max_traces: int = 3
) -> BatchSearch:
    """The largest batch whose peak (+ DDP buckets) is within ``limit_bytes``: the linear fit of ``first``, and with
    ``verify`` that answer traced (see the module docstring)."""
    budget = limit_bytes - ddp_bytes
    traces = 0
    trace = first
    if trace.optimizer_peak > budget or trace.fixed_bytes >= budget:
        return BatchSearch(first.checkpointed, 0, 0, traces)
    per_sequence = trace.batch_bytes / trace.batch_size
    guess = max(1, int((budget - trace.fixed_bytes) // per_sequence))
    if not verify:
        return BatchSearch(first.checkpointed, guess, fitted_peak(first, guess), 0)
    best = (first.batch_size, first.peak_bytes) if first.peak_bytes <= budget else (0, 0)
    tried = {first.batch_size: first.peak_bytes}
    while traces < max_traces and guess not in tried:
        trace = trace_update(cfg, vocab, "cuda", batch_size=guess, checkpoint=first.checkpointed)
        traces += 1
        tried[guess] = trace.peak_bytes
        if trace.peak_bytes <= budget:
            best = max(best, (guess, trace.peak_bytes))
            break
        # over: step down by what the excess is worth in sequences (at least one)
        per_sequence = trace.batch_bytes / trace.batch_size
        guess = max(1, guess - max(1, math.ceil((trace.peak_bytes - budget) / per_sequence)))
        if guess <= best[0]:
            break
    return BatchSearch(first.checkpointed, best[0], best[1], traces, verified=True)


def mfu_from_calibration(calibration: Calibration, cfg):
    """(utilisation, description) of the calibration row most like ``cfg`` (same length, then the largest model):
    FLOPs the trace executes for the row's step / (measured step time x the row's card's peak)."""
    length = cfg.task.tokens_per_sample
    rows = sorted(
        calibration.rows, key=lambda r: (r.length == length or _row_length(r) == length, _row_size(r)), reverse=True
    )
    row = rows[0]
    trace = trace_row(row)
    gpu = get_gpu(calibration.gpu)
    mfu = trace.flops / (row.step_ms / 1e3 * gpu.peak_flops("bf16"))
    return mfu, f"{os.path.basename(calibration.path)} row '{row.name}': {row.step_ms:g} ms measured"


def _row_cfg(row: CalibrationRow):
    return training_config(parse_plan_command(row.argv))


def _row_length(row: CalibrationRow) -> int:
    argv = row.argv
    return int(argv[argv.index("--tokens-per-sample") + 1]) if "--tokens-per-sample" in argv else 0


def _row_size(row: CalibrationRow) -> int:
    argv = row.argv
    get = lambda flag: int(argv[argv.index(flag) + 1]) if flag in argv else 0  # noqa: E731
    return get("--encoder-layers") * get("--encoder-embed-dim") ** 2


def trace_row(row: CalibrationRow) -> Trace:
    cfg = _row_cfg(row)
    if row.kind == "encoder_speed":
        return trace_encoder_step(cfg, row.vocab_size, row.batch_size, row.resident_params)
    return trace_update(cfg, row.vocab_size, "cuda")


def find_calibration(args, gpu_name: str) -> Calibration | None:
    if args.calibration:
        return load_calibration(args.calibration)
    files = calibration_files()
    same = [f for f in files if os.path.basename(f) == f"{gpu_name}.json"]
    return load_calibration((same or files)[0]) if (same or files) else None


def in_parallel(jobs: int, *lines: Callable) -> list:
    """The results of LINES (functions of no argument) in order, run on JOBS processes: line i on process i % JOBS,
    process 0 being this one and the others forked. Fork, not spawn: a child starts with the parent's imports and
    traces (a spawned one would import torch and fairseq again) and gets its functions without pickling them. Every
    trace a child makes joins this process's cache, as if it had run here."""
    jobs = max(1, min(jobs, len(lines)))
    context = multiprocessing.get_context("fork")
    known = set(_TRACES)
    children = []
    for worker in range(1, jobs):
        reader, writer = context.Pipe(duplex=False)
        mine = list(range(worker, len(lines), jobs))

        def child(mine=mine, writer=writer):
            try:
                result = ("ok", [lines[i]() for i in mine], {k: v for k, v in _TRACES.items() if k not in known})
            except BaseException as error:  # noqa: B036  (the parent raises it: a plan error keeps its one line)
                result = ("error", error, {})
            writer.send(result)
            writer.close()

        process = context.Process(target=child, daemon=True)
        process.start()
        writer.close()
        children.append((mine, process, reader))
    results: list = [None] * len(lines)
    for i in range(0, len(lines), jobs):
        results[i] = lines[i]()
    for mine, process, reader in children:
        try:
            status, value, traces = reader.recv()
        except EOFError:
            process.join()
            raise RuntimeError(f"a tracing process died (exit code {process.exitcode})") from None
        process.join()
        if status == "error":
            raise value
        results[mine[0] : len(lines) : jobs] = value
        _TRACES.update(traces)
    return results


def make_plan(argv: list[str]) -> Plan:
    args = parse(argv)
    if args.jobs < 1:
        raise PlanInputError(f"--jobs must be >= 1, got {args.jobs}")
    cfg = training_config(args)
    check_configuration(cfg)
    dtype = dtype_of(cfg)
    gpus = args.gpus or max(1, cfg.distributed_training.distributed_world_size or 1)
    if args.device == "cpu":
        trace = trace_update(cfg, args.vocab_size, "cpu")
        return Plan(args.arch, "cpu", None, 1, dtype, cfg, trace, 0, trace.peak_bytes, None, 0.0, 0)
    gpu = get_gpu(args.gpu, args.gpu_memory, args.gpu_flops)
    calibration = find_calibration(args, args.gpu)
    overhead = (calibration and calibration.allocator_overhead()) or cuda_model.ALLOCATOR_OVERHEAD
    context = (calibration and calibration.context_bytes()) or cuda_model.CUDA_CONTEXT_BYTES

    # Three independent lines of traces: the configuration's update and its largest batch, the same in the other
    # checkpointing mode, and the calibration row. Each line's DDP buckets come from its own first trace, which
    # equals the configuration's: the gradient does not depend on checkpointing.
    limit = usable_bytes(gpu, overhead, context)

    def mode_line(checkpoint: bool | None):
        def line():
            first = trace_update(cfg, args.vocab_size, "cuda", checkpoint=checkpoint)
            if args.no_search:
                return first, None
            ddp = cuda_model.ddp_bucket_bytes(cfg.distributed_training, first.gradient_bytes, gpus)
            return first, search_batch(cfg, args.vocab_size, first, limit, ddp, verify=not args.fit_batch_only)

        return line

    def calibration_line():
        return mfu_from_calibration(calibration, cfg) if calibration is not None else (None, "")

    checkpointed = bool(cfg.model.checkpoint_activations)
    (trace, search), (other, other_search), (mfu, mfu_source) = in_parallel(
        args.jobs, mode_line(None), mode_line(not checkpointed), calibration_line
    )
    ddp = cuda_model.ddp_bucket_bytes(cfg.distributed_training, trace.gradient_bytes, gpus)
    per_gpu = cuda_model.per_gpu_bytes(trace.peak_bytes, ddp, overhead, context)
    plan = Plan(
        args.arch,
        "cuda",
        gpu,
        gpus,
        dtype,
        cfg,
        trace,
        ddp,
        per_gpu,
        per_gpu <= gpu.memory_bytes,
        overhead,
        context,
        interconnect_gbps=args.interconnect_gbps,
    )
    plain = other if trace.checkpointed else trace
    plan.model_flops_per_token = plain.flops / plain.tokens
    if not args.no_search:
        plan.searches = {trace.checkpointed: search, other.checkpointed: other_search}

    # DDP all-reduce: a ring moves 2 (N - 1) / N of the gradient bytes through every node's link
    nodes = math.ceil(gpus / args.gpus_per_node)
    if gpus > 1:
        plan.allreduce_bytes = 2 * (gpus - 1) / gpus * trace.gradient_bytes
        link = args.interconnect_gbps * 1e9 if nodes > 1 else args.interconnect_gbps * 1e9 * args.gpus_per_node
        plan.allreduce_seconds = plan.allreduce_bytes / link
    if calibration is not None:
        plan.mfu, plan.mfu_source = mfu, mfu_source
    plan.suggestions = suggestions(plan, args)
    return plan


def suggestions(plan: Plan, args) -> list[str]:
    """What to change when the configuration does not fit (each backed by a trace above, or a flag to trace)."""
    if plan.fits:
        return []
    out = []
    batch = plan.cfg.dataset.batch_size
    for checkpointed in (plan.trace.checkpointed, not plan.trace.checkpointed):
        search = plan.searches.get(checkpointed)
        if search is None or search.max_batch_size < 1:
            continue
        flag = "with" if checkpointed else "without"
        per_gpu = batch * plan.update_freq  # sequences per GPU per update: kept, so the global batch is too
        smaller = max(d for d in range(1, min(search.max_batch_size, per_gpu) + 1) if per_gpu % d == 0)
        out.append(
            f"--batch-size {smaller} --update-freq {per_gpu // smaller} {flag} --checkpoint-activations "
            f"(the same {per_gpu * plan.gpus} sequences per update)"
        )
    if not plan.cfg.common.memory_efficient_bf16 and not plan.cfg.common.memory_efficient_fp16 and plan.dtype != "fp32":
        out.append(
            f"--memory-efficient-{plan.dtype} (fairseq keeps no fp32 copy of the weights and gradients: "
            "plan it with the flag added)"
        )
    out.append("a shorter --tokens-per-sample (the [B, H, L, L] bias and probabilities grow with L squared)")
    out.append(
        "--ddp-backend fully_sharded is not suggested: it needs fairscale, which this toolkit does not "
        "install, and fairseq refuses it with --bf16; not verified with vega_encoder"
    )
    return out


# --- output ----------------------------------------------------------------------------------------------------------
def gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def last_line(plan: Plan) -> str:
    if plan.device == "cpu":
        return f"plan {plan.arch} cpu x1: peak {gib(plan.per_gpu_bytes)} GiB (traced CPU step)"
    mfu = plan.mfu if plan.mfu is not None else REFERENCE_MFUS[0]
    days = plan.days(mfu)
    days_text = f"{days:.1f}" if days is not None else "-"
    return (
        f"plan {plan.arch} {plan.gpu.name} x{plan.gpus}: peak {gib(plan.per_gpu_bytes)} GiB/GPU "
        f"({'fits' if plan.fits else 'does not fit'}), {days_text} days for {plan.max_update} updates "
        f"at MFU {mfu:.3f}"
    )


def render_text(plan: Plan) -> str:
    cfg, t = plan.cfg, plan.trace
    L, B = cfg.task.tokens_per_sample, cfg.dataset.batch_size
    lines = [
        f"vega-plan: {plan.arch} ({t.parameters:,} parameters), --task {cfg.task._name} --criterion "
        f"{cfg.criterion._name}, {plan.dtype}, L = {L}, --batch-size {B} x --update-freq {plan.update_freq} x "
        f"{plan.gpus} GPUs = {B * plan.update_freq * plan.gpus} sequences per update, activation checkpointing "
        f"{'on' if t.checkpointed else 'off'}"
    ]
    where = (
        "fake CPU tensors with CUDA's attention kernels (planning/cuda_model.py)"
        if plan.device == "cuda"
        else "fake CPU tensors, CPU code paths"
    )
    lines.append(
        f"memory per GPU: traced, one steady-state update of fairseq's Trainer step on {where}; the update's peak:"
    )
    for name, nbytes in t.at_peak.items():
        if nbytes:
            lines.append(f"  {name:<55} {gib(nbytes):>8} GiB")
    lines.append(f"  {'= traced peak (what torch.cuda.max_memory_allocated sees)':<55} {gib(t.peak_bytes):>8} GiB")
    if plan.device == "cuda":
        lines.append(
            f"  {'+ DDP gradient buckets (' + cfg.distributed_training.ddp_backend + ')':<55} "
            f"{gib(plan.ddp_bytes):>8} GiB"
        )
        lines.append(
            f"  {f'+ allocator overhead {plan.allocator_overhead:.0%}':<55} "
            f"{gib((t.peak_bytes + plan.ddp_bytes) * plan.allocator_overhead):>8} GiB"
        )
        lines.append(f"  {'+ CUDA context, cuBLAS workspace, NCCL':<55} {gib(plan.context_bytes):>8} GiB")
        lines.append(
            f"  {'= per-GPU peak':<55} {gib(plan.per_gpu_bytes):>8} GiB of {gib(plan.gpu.memory_bytes)} "
            f"GiB ({plan.gpu.name}): {'fits' if plan.fits else 'does not fit'}"
        )
    lines.append("largest tensors at the peak:")
    for x in t.largest[:6]:
        lines.append(
            f"  {gib(x.nbytes):>6} GiB  {str(list(x.shape)):<22} {str(x.dtype).replace('torch.', ''):<9} "
            f"{x.category} ({x.op})"
        )
    if plan.device == "cpu":
        lines.append(last_line(plan))
        return "\n".join(lines)
    for checkpointed, search in sorted(plan.searches.items(), reverse=True):
        flag = "with" if checkpointed else "without"
        how = "traced" if search.verified else "fitted only (--fit-batch-only)"
        peak = f" ({how} peak {gib(search.peak_bytes)} GiB)" if search.max_batch_size else ""
        lines.append(f"largest --batch-size {flag} --checkpoint-activations: {search.max_batch_size}{peak}")
    lines.append(
        f"FLOPs per token: {plan.flops_per_token / 1e9:.2f} GFLOP executed (forward, backward"
        f"{', recomputation' if t.checkpointed else ''}; matrix products and attention kernels as traced, "
        f"c2p/p2c band GEMMs included); model FLOPs without recomputation {plan.model_flops_per_token / 1e9:.2f}"
        " GFLOP"
    )
    lines.append(
        f"communication: all-reduce of {gib(t.gradient_bytes)} GiB of gradients per update: "
        f"{gib(plan.allreduce_bytes)} GiB through each node's link (ring), "
        f"{plan.allreduce_seconds:.3f} s at {plan.interconnect_gbps:g} GB/s per node (counted in full: DDP "
        "overlaps part of it with the backward)"
    )
    mfus = ([(plan.mfu, f"calibrated: {plan.mfu_source}")] if plan.mfu is not None else []) + [
        (m, "reference") for m in REFERENCE_MFUS
    ]
    for mfu, why in mfus:
        days = plan.days(mfu)
        lines.append(
            f"time at MFU {mfu:.3f} ({why}): {plan.seconds_per_update(mfu):.2f} s per update, "
            f"{days:.1f} days for {plan.max_update} updates"
        )
    if plan.suggestions:
        lines.append("does not fit; what to change:")
        lines.extend(f"  {s}" for s in plan.suggestions)
    lines.append(last_line(plan))
    return "\n".join(lines)


def plan_json(plan: Plan) -> dict:
    searches = plan.searches
    return {
        "arch": plan.arch,
        "device": plan.device,
        "gpu": plan.gpu.name if plan.gpu else None,
        "gpus": plan.gpus,
        "dtype": plan.dtype,
        "batch_size": plan.cfg.dataset.batch_size,
        "tokens_per_sample": plan.cfg.task.tokens_per_sample,
        "update_freq": plan.update_freq,
        "checkpoint_activations": plan.trace.checkpointed,
        "parameters": plan.trace.parameters,
        "peak_bytes": plan.per_gpu_bytes,
        "traced_peak_bytes": plan.trace.peak_bytes,
        "memory_at_peak": plan.trace.at_peak,
        "ddp_bucket_bytes": plan.ddp_bytes,
        "fits": plan.fits,
        "max_batch_size": searches[False].max_batch_size if False in searches else None,
        "max_batch_size_checkpointed": searches[True].max_batch_size if True in searches else None,
        "flops_per_token": plan.flops_per_token,
        "model_flops_per_token": plan.model_flops_per_token,
        "mfu": plan.mfu,
        "mfu_source": plan.mfu_source,
        "days": plan.days(plan.mfu if plan.mfu is not None else REFERENCE_MFUS[0]),
        "days_at_mfu": {str(m): plan.days(m) for m in REFERENCE_MFUS} if plan.gpu else {},
        "allreduce_bytes": plan.allreduce_bytes,
        "allreduce_seconds": plan.allreduce_seconds,
        "suggestions": plan.suggestions,
        "summary": last_line(plan),
    }


# --- validation against measurements ----------------------------------------------------------------------------------
@dataclass
class ValidationRow:
    file: str
    name: str
    predicted_bytes: int
    measured_bytes: int
    step_ms: float
    mfu: float

    @property
    def ratio(self) -> float:
        return self.predicted_bytes / self.measured_bytes


TOLERANCE = 0.15


def validate(paths: list[str]) -> list[ValidationRow]:
    rows = []
    for path in paths:
        calibration = load_calibration(path)
        gpu = get_gpu(calibration.gpu)
        for row in calibration.rows:
            trace = trace_row(row)
            mfu = trace.flops / (row.step_ms / 1e3 * gpu.peak_flops("bf16"))
            rows.append(
                ValidationRow(
                    os.path.basename(path), row.name, trace.peak_bytes, row.peak_allocated_bytes, row.step_ms, mfu
                )
            )
    return rows


def render_validation(rows: list[ValidationRow]) -> str:
    lines = [
        "| calibration | configuration | predicted peak | measured peak | predicted / measured | step | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flag = "" if abs(r.ratio - 1) <= TOLERANCE else " **off by more than 15%**"
        lines.append(
            f"| {r.file} | {r.name} | {gib(r.predicted_bytes)} GiB | {gib(r.measured_bytes)} GiB | "
            f"{r.ratio:.3f}{flag} | {r.step_ms:g} ms | {r.mfu:.3f} |"
        )
    return "\n".join(lines)
