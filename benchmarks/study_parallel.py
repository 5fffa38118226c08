"""Two cells side by side with one thread each, or one after the other with two threads: which fills 2 cores better.

    python benchmarks/study_parallel.py                       # the smoke scale's fine-tuning cells, toy data
    python benchmarks/study_parallel.py --scale cpu --tasks RTE --arms random   # real cells ($VEGA_GLUE_DIR ...)

Runs the same study twice into fresh folders, `vega-study run --jobs 2 --threads 1` and `--jobs 1 --threads 2`,
interleaved REPEATS times (the machine is noisy), and prints each wall time and the ratio. Only the fine-tuning
cells are timed: the shared preprocessing and pretraining run once first, and both modes start from copies of it.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = [sys.executable, "-c", "import sys; from vega_toolkit.cli.study import cli_main; sys.exit(cli_main())"]


def run(out: Path, args, jobs: int, threads: int) -> float:
    t0 = time.time()
    subprocess.run(
        STUDY + ["run", "--out", str(out), "--jobs", str(jobs), "--threads", str(threads), "--no-report", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.time() - t0


def shared_cells_only(out: Path, study_args: list[str]):
    """OUT holding the study's finished shared cells (toy data, preprocessing, pretraining) and none of its
    fine-tunings: the study is run once and its fine-tuning records dropped, so a run from a copy redoes only them."""
    run(out, study_args, jobs=2, threads=1)
    results = out / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(line for line in lines if json.loads(line)["kind"] not in ("finetune", "intermediate")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--repeats", type=int, default=2)
    args, study_args = parser.parse_known_args()
    study_args = ["--scale", args.scale, *study_args]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        # the shared cells once (and the toy data for the smoke scale): finished, so both modes skip them
        shared_cells_only(base, study_args)
        times = {"--jobs 2 --threads 1": [], "--jobs 1 --threads 2": []}
        for _ in range(args.repeats):
            for mode in times:
                out = Path(tmp) / "run"
                shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(base, out)
                jobs, threads = (2, 1) if mode.startswith("--jobs 2") else (1, 2)
                times[mode].append(run(out, study_args, jobs, threads))
                cells = sum(1 for _ in open(out / "results.jsonl"))
        for mode, values in times.items():
            print(f"{mode}: " + ", ".join(f"{v:.1f} s" for v in values) + f" ({cells} cells in all)")
        side, serial = (min(v) for v in times.values())
        print(f"side by side / serial = {side / serial:.2f} (best of {args.repeats} each)")
        print(json.dumps({k: v for k, v in times.items()}))


if __name__ == "__main__":
    main()
