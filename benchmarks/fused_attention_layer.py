"""One attention layer, forward + backward: the fused Triton kernel against the sdpa path, with the relative terms off
and on and attention dropout 0 and 0.1 (same weights, same input).

    python -u benchmarks/fused_attention_layer.py --device cuda --dtype bf16 --lengths 512,2048
    VEGA_FUSED_BWD_KV_WARPS=8 python -u benchmarks/fused_attention_layer.py --device cuda --dtype bf16 --lengths 512
    TRITON_INTERPRET=1 python benchmarks/fused_attention_layer.py --dim 32 --heads 2 --lengths 40 --tokens 80 --reps 1

Terms off: c2c only (sdpa then runs PyTorch's flash / memory-efficient kernel without a bias: the speed of light);
terms on: c2p + p2c with 256 log buckets over 512 relative positions, as vega_base. Repetitions are interleaved and
the median is reported; "fused / sdpa" divides the two times of the same setting. Memory is the peak allocated on
CUDA (on CPU the bytes autograd saves for backward). The fused kernel logs the registers, spills and shared memory
of each kernel it compiles (stderr). On CPU the fused rows need TRITON_INTERPRET=1 (the interpreter: slow, a
rehearsal only); without it they read ERR: RuntimeError and the sdpa rows still run.
"""

import argparse
import logging
import statistics
import sys
import time

import torch
from encoder_speed import guarded, timed_step, warm_up

from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention

SETTINGS = [((), 0.0), ((), 0.1), (("c2p", "p2c"), 0.0), (("c2p", "p2c"), 0.1)]  # (relative terms, dropout)
IMPLS = ("fused", "sdpa")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--tokens", type=int, default=65536, help="tokens per batch: batch = tokens / L")
    p.add_argument("--lengths", default="512")
    p.add_argument("--reps", type=int, default=10)
    args = p.parse_args()
    for flag, value in (("--dim", args.dim), ("--heads", args.heads), ("--tokens", args.tokens), ("--reps", args.reps)):
        if value <= 0:
            p.error(f"{flag} must be positive, got {value}")
    try:
        lengths = [int(v) for v in args.lengths.split(",")]
    except ValueError:
        lengths = [0]
    if min(lengths) <= 0:
        p.error(f"--lengths must be positive integers separated by commas, got {args.lengths!r}")
    if args.dim % args.heads:
        p.error(f"--dim {args.dim} is not a multiple of --heads {args.heads}")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    mem_label = "peak MiB" if args.device.startswith("cuda") else "saved-for-backward MiB"
    # Rows are printed as each setting finishes: a run stopped by a timeout keeps what it measured.
    print(
        f"\none attention layer, {args.dim} wide, {args.heads} heads, {args.device} {args.dtype}, "
        f"torch {torch.__version__}, median of {args.reps} interleaved reps, wall clock\n"
    )
    print(f"| L | batch | relative terms | dropout | impl | fwd+bwd ms | {mem_label} | fused / sdpa |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for length in lengths:
        batch = max(1, args.tokens // length)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(batch, length, args.dim, generator=generator).to(args.device).requires_grad_()
        rel = torch.randn(512, args.dim, generator=generator).to(args.device)
        for terms, dropout in SETTINGS:
            layers = {}
            for impl in IMPLS:
                torch.manual_seed(0)  # the same weights for both
                layers[impl] = DisentangledSelfAttention(
                    args.dim, args.heads, attention_dropout=dropout, pos_att_type=terms, attention_impl=impl
                ).to(args.device)
            fns = {impl: (lambda layer: lambda t: layer(t, rel))(layer.train()) for impl, layer in layers.items()}
            modules = list(layers.values())
            memory, failed, times = {}, {}, {impl: [] for impl in IMPLS}
            for impl, fn in fns.items():
                failure = guarded(impl, length, lambda: memory.__setitem__(impl, warm_up(fn, x, args, modules)))
                if failure:
                    failed[impl] = failure
            for _ in range(args.reps):
                for impl in [i for i in IMPLS if i not in failed]:
                    failure = guarded(
                        impl,
                        length,
                        lambda: times[impl].append(timed_step(fns[impl], x, args, modules, time.perf_counter, sync)),
                    )
                    if failure:
                        failed[impl] = failure
            median = {impl: statistics.median(t) for impl, t in times.items() if impl not in failed}
            setting = f"| {length} | {batch} | {'+'.join(terms) or 'none'} | {dropout} |"
            for impl in IMPLS:
                if impl in failed:
                    print(f"{setting} {impl} | {failed[impl]} | {failed[impl]} | - |", flush=True)
                    continue
                sdpa = median.get("sdpa")
                ratio = f"{median[impl] / sdpa:.2f}x" if impl == "fused" and sdpa else "-"
                print(
                    f"{setting} {impl} | {median[impl] * 1e3:.2f} | {memory[impl] / 2**20:.1f} | {ratio} |", flush=True
                )


if __name__ == "__main__":
    main()
