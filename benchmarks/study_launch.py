"""A study's commands forked from one preloaded server (the default) or each in a fresh interpreter (`--no-preload`):
wall and CPU seconds of the same cells, side by side.

    OMP_NUM_THREADS=1 python benchmarks/study_launch.py --repeats 2 --json results/study_launch/cpu.json

Runs the smoke scale's RTE cells (toy data: the cells of tests/test_study.py's killed-study test) into fresh folders,
`vega-study run --jobs 2` with and without `--no-preload`, interleaved REPEATS times (the machine is noisy). The
preprocessing and pretraining run once first and both modes start from copies of them, so what is timed is the
fine-tuning cells: two commands each (vega-train, vega-generate), the unit a study repeats hundreds of times.
CPU seconds are the study's and all its descendants' (user + system).
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study_parallel import shared_cells_only  # benchmarks/ is the script's folder, first on sys.path

STUDY = [sys.executable, "-c", "import sys; from vega_toolkit.cli.study import cli_main; sys.exit(cli_main())"]
MODES = {"preloaded (default)": [], "fresh interpreters (--no-preload)": ["--no-preload"]}


def run(out: Path, args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the study and everything it started)."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    subprocess.run(STUDY + ["run", "--out", str(out), "--no-report", *args], check=True, stdout=subprocess.DEVNULL)
    wall, after = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, interleaved")
    parser.add_argument(
        "--json", type=Path, help="also write the timings to this new file (an existing one is refused)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    if args.json and args.json.exists():  # checked before the minutes of measuring, never overwritten
        parser.error(f"--json {args.json}: exists; move it away first (it is a measured record)")
    study = ["--scale", "smoke", "--jobs", "2", "--tasks", "RTE"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        shared_cells_only(base, study)  # toy data, preprocessing, pretraining
        times = {mode: {"wall_s": [], "cpu_s": []} for mode in MODES}
        for _ in range(args.repeats):
            for mode, flags in MODES.items():
                out = Path(tmp) / "run"
                shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(base, out)
                wall, cpu = run(out, study + flags)
                times[mode]["wall_s"].append(round(wall, 1))
                times[mode]["cpu_s"].append(round(cpu, 1))
                cells = sum(1 for line in open(out / "results.jsonl") if '"finetune"' in line)
    for mode, t in times.items():
        print(f"{mode}: wall {t['wall_s']} s, CPU {t['cpu_s']} s ({cells} fine-tuning cells)")
    (pre_wall, fresh_wall), (pre_cpu, fresh_cpu) = ([min(t[k]) for t in times.values()] for k in ("wall_s", "cpu_s"))
    print(
        f"preloaded / fresh: wall {pre_wall / fresh_wall:.2f}, CPU {pre_cpu / fresh_cpu:.2f} (best of {args.repeats})"
    )
    if args.json:
        from vega_toolkit.study.runner import code_version

        record = {"command": " ".join(["python", *sys.argv]), "commit": code_version(), "cells": cells}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**record, "times": times}, indent=1) + "\n")


if __name__ == "__main__":
    main()
