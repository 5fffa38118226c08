"""vega-plan's traced peak against the measured peak of the same real CPU training update.

    OMP_NUM_THREADS=1 python benchmarks/plan_validation_cpu.py            # the table in benchmarks/README.md
    OMP_NUM_THREADS=1 python benchmarks/plan_validation_cpu.py --configs 0,1

Per configuration: `vega-plan --device cpu`'s traced peak (vega_toolkit/planning/trace.py: fake tensors, CPU code
paths) and the measured peak of two real updates of the same fairseq Trainer step in a fresh process
(vega_toolkit/planning/measure.py: VmHWM - baseline, malloc's mmap threshold at 128 KiB, a warm-up update at batch
size 1 first). fp32, Adam, rtd_ternary on denoising_pretrain, an 8,000-row vocabulary (the embeddings would
otherwise dwarf the activations this checks). tests/test_plan.py runs the first two rows.
"""

import argparse
import time
import warnings

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
    "--cpu",
]
VOCAB = 8000
CONFIGS = [
    ("vega_tiny", 128, 32, False),
    ("vega_tiny", 128, 32, True),
    ("vega_tiny", 512, 8, False),
    ("vega_tiny", 512, 8, True),
    ("vega_small", 128, 16, False),
    ("vega_small", 512, 8, True),
    ("vega_base", 128, 8, False),
    ("vega_base", 512, 2, True),
]


def flags(arch, length, batch, checkpoint):
    return (
        COMMON
        + ["--arch", arch, "--tokens-per-sample", str(length), "--batch-size", str(batch)]
        + (["--checkpoint-activations"] if checkpoint else [])
    )


def main():
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="", help="comma-separated row indices (default: all)")
    args = p.parse_args()
    from vega_toolkit.planning.measure import measure_cpu_peak
    from vega_toolkit.planning.step import parse_plan_command, training_config
    from vega_toolkit.planning.trace import trace_update

    chosen = [int(i) for i in args.configs.split(",")] if args.configs else range(len(CONFIGS))
    print("| arch | L | batch | checkpointing | traced peak | measured peak | traced / measured | trace s |")
    print("|---|---|---|---|---|---|---|---|")
    for i in chosen:
        arch, length, batch, checkpoint = CONFIGS[i]
        argv = flags(arch, length, batch, checkpoint)
        measured = measure_cpu_peak(argv, VOCAB)
        start = time.perf_counter()
        traced = trace_update(training_config(parse_plan_command(argv)), VOCAB, "cpu").peak_bytes
        seconds = time.perf_counter() - start
        print(
            f"| {arch} | {length} | {batch} | {'on' if checkpoint else 'off'} | {traced / 2**20:.1f} MiB | "
            f"{measured / 2**20:.1f} MiB | {traced / measured:.3f} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
