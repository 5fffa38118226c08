"""Measure what vega-plan predicts, on a GPU: peak memory and step time of real training updates.

    python -u benchmarks/planner_calibration.py --out benchmarks/calibration      # writes <gpu>.json there
    vega-plan --validate --calibration benchmarks/calibration/<gpu>.json          # predicted vs measured
    python benchmarks/planner_calibration.py --residents 12,768,12 4,384,6        # CPU: see below

One warm-up update, then the peak and the median time of real updates, as vega-plan traces them; the output is what
vega-plan reads (vega_toolkit/planning/calibration.py). Method: docs/design.md#benchmark-planner-calibration.
"""

import argparse
import os
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COMMON = [
    "--task",
    "denoising_pretrain",
    "--criterion",
    "rtd_ternary",
    "--optimizer",
    "adam",
    "--lr",
    "1e-4",
    "--clip-norm",
    "1.0",
    "--bf16",
]
CONFIGS = [  # (name, vega-train flags): sizes the planner's users run, short and long sequences, with and without
    ("vega_base L=128 B=64", ["--arch", "vega_base", "--tokens-per-sample", "128", "--batch-size", "64"]),
    ("vega_base L=512 B=16", ["--arch", "vega_base", "--tokens-per-sample", "512", "--batch-size", "16"]),
    (
        "vega_base L=512 B=16 checkpointed",
        ["--arch", "vega_base", "--tokens-per-sample", "512", "--batch-size", "16", "--checkpoint-activations"],
    ),
    (
        "vega_large L=512 B=8 checkpointed",
        ["--arch", "vega_large", "--tokens-per-sample", "512", "--batch-size", "8", "--checkpoint-activations"],
    ),
]
GPU_KEYS = [(r"H200", "h200"), (r"H100", "h100-80gb"), (r"A100.*80", "a100-80gb"), (r"A100", "a100-40gb")]


def gpu_key(device_name: str) -> str:
    for pattern, key in GPU_KEYS:
        if re.search(pattern, device_name):
            return key
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")


def measure(argv, vocab_size: int, reps: int):
    from fairseq import utils

    from vega_toolkit.planning.calibration import CalibrationRow
    from vega_toolkit.planning.step import (
        build_task,
        build_trainer,
        make_batch,
        parse_plan_command,
        run_update,
        training_config,
    )

    cfg = training_config(parse_plan_command(argv))
    task = build_task(cfg, vocab_size)
    torch.cuda.empty_cache()
    trainer = build_trainer(cfg, task)
    batch = utils.move_to_cuda(make_batch(task, cfg.dataset.batch_size, cfg.task.tokens_per_sample))
    run_update(trainer, batch, 0)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run_update(trainer, batch, 1)
    torch.cuda.synchronize()
    peak, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    times = []
    for i in range(reps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run_update(trainer, batch, 2 + i)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    del trainer, batch
    return CalibrationRow(
        name="",
        kind="train_step",
        argv=argv,
        vocab_size=vocab_size,
        peak_allocated_bytes=peak,
        step_ms=statistics.median(times) * 1e3,
        length=cfg.task.tokens_per_sample,
        batch_size=cfg.dataset.batch_size,
        peak_reserved_bytes=reserved,
    )


def residents(shapes):
    """Parameters of encoder_speed.py's HF and plain encoders per shape (built on the meta device)."""
    from benchmarks.encoder_speed import build_models

    for shape in shapes:
        layers, dim, heads = map(int, shape.split(","))
        args = argparse.Namespace(vocab=8000, dim=dim, layers=layers, heads=heads, max_positions=512, vega_impls="sdpa")
        with torch.device("meta"):
            _, (vega, hf, plain) = build_models(args)
        count = sum(p.numel() for m in (hf, plain) for p in m.parameters())
        print(
            f"{shape}: resident_params {count} (HF DebertaV2Model + plain encoder; vega itself "
            f"{sum(p.numel() for p in vega.parameters())})"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="folder of the calibration file (<gpu>.json); an existing file is refused")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--vocab-size", type=int, default=128100)
    p.add_argument("--residents", nargs="+", metavar="LAYERS,HIDDEN,HEADS")
    args = p.parse_args()
    if args.residents:
        residents(args.residents)
        return 0
    if not args.out:
        p.error("--out DIR is required")
    if not torch.cuda.is_available():
        print(
            "planner_calibration.py: no CUDA device (torch.cuda.is_available() is False): run it where a GPU is "
            "lent (scripts/gpu_checks.sh does)",
            file=sys.stderr,
        )
        return 1
    from vega_toolkit.planning.calibration import write_calibration

    name = torch.cuda.get_device_name()
    path = os.path.join(args.out, f"{gpu_key(name)}.json")
    if os.path.exists(path):
        print(f"planner_calibration.py: {path} exists; move it away first (it is the measured record)", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    free, total = torch.cuda.mem_get_info()  # initialises the context; nothing allocated by torch yet
    context = total - free
    rows = []
    for label, flags in CONFIGS:
        try:
            row = measure(COMMON + flags, args.vocab_size, args.reps)
        except torch.OutOfMemoryError:
            print(f"{label}: out of memory, skipped", flush=True)
            torch.cuda.empty_cache()
            continue
        row.name, row.context_bytes = label, context
        rows.append(row)
        print(
            f"{label}: peak {row.peak_allocated_bytes / 2**30:.2f} GiB allocated, "
            f"{row.peak_reserved_bytes / 2**30:.2f} GiB reserved, {row.step_ms:.1f} ms per update",
            flush=True,
        )
    write_calibration(
        path,
        gpu_key(name),
        name,
        torch.__version__,
        f"benchmarks/planner_calibration.py --out {args.out} --reps {args.reps}",
        rows,
    )
    print(f"wrote {path} ({len(rows)} rows); check it with: vega-plan --validate --calibration {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
