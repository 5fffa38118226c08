"""The measured side of the CPU check: the peak memory of one real CPU training update, for the plan to match.

    measured = measure_cpu_peak(["--task", "denoising_pretrain", ..., "--cpu"], vocab_size=8000)   # bytes

The update is the planner's own (step.py: fairseq's Trainer from the flags, `run_update`), run for real in a fresh
process (`python -m vega_toolkit.planning.measure`): after the imports, the task, the batch and a warm-up update at
batch size 1 (which pages in the code the step runs; its tensors are freed), the process resets its
resident-set high-water mark (`/proc/self/clear_refs` 5) and reads `VmRSS` as the baseline; it then builds the
trainer (model, criterion, optimizer) and runs two updates, and the measured peak is `VmHWM - baseline`: the
weights, gradients, optimizer states and the larger update's activations and temporaries, as the plan counts them.
glibc's malloc is told to serve every allocation above 128 KiB with mmap (`MALLOC_MMAP_THRESHOLD_`), so freed
tensors leave the resident set at once instead of staying in its heap; otherwise the high-water mark would hold
the allocator's reuse pattern, not the live bytes.
"""

import json
import os
import subprocess
import sys

MMAP_THRESHOLD = 128 * 1024


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_cpu_peak(argv: list[str], vocab_size: int, timeout: float = 900) -> int:
    """VmHWM - baseline of two real CPU updates of ``argv`` in a fresh process (see the module docstring)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    proc = subprocess.run(
        [sys.executable, "-m", "vega_toolkit.planning.measure", str(vocab_size), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the measured CPU update failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


def main(argv: list[str]):
    import gc
    import warnings

    warnings.simplefilter("ignore")
    from vega_toolkit.planning.step import (
        build_task,
        build_trainer,
        make_batch,
        parse_plan_command,
        run_update,
        training_config,
        with_overrides,
    )

    vocab_size, flags = int(argv[0]), argv[1:]
    cfg = training_config(parse_plan_command(flags))
    task = build_task(cfg, vocab_size)
    # Warm-up: the same step at batch size 1 pages in the code it runs (libtorch's kernels, oneDNN, the autograd
    # engine's threads), which would otherwise count as the step's memory; its tensors are freed before the baseline.
    small = with_overrides(cfg, batch_size=1)
    trainer = build_trainer(small, task)
    for update in range(2):
        run_update(trainer, make_batch(task, 1, cfg.task.tokens_per_sample), update)
    del trainer
    batch = make_batch(task, cfg.dataset.batch_size, cfg.task.tokens_per_sample)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    baseline = _status("VmRSS")
    trainer = build_trainer(cfg, task)
    for update in range(2):
        run_update(trainer, batch, update)
    print(json.dumps({"peak_bytes": _status("VmHWM") - baseline, "baseline_bytes": baseline}))


if __name__ == "__main__":
    main(sys.argv[1:])
