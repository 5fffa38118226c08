"""A study's commands forked from one preloaded server (the default) or each in a fresh interpreter (`--no-preload`):
wall and CPU seconds of the same cells, side by side.

    OMP_NUM_THREADS=1 python benchmarks/study_launch.py --repeats 2 --json results/study_launch/cpu.json

Runs the smoke scale's RTE cells (toy data: the cells of tests/test_study.py's killed-study test) into fresh folders,
`vega-study run --jobs 2` with and without `--no-preload`, interleaved REPEATS times (the machine is noisy). The
preprocessing and pretraining run once first and both modes start from copies of them, so what is timed is the
fine-tuning cells: two commands each (vega-train, vega-generate), the unit a study repeats hundreds of times.
CPU seconds are the study's and all its descendants' (user + system).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# benchmarks/ is the script's folder, first on sys.path
from measured_record import parse_record_args, record_parser, timed_child, write_record
from study_parallel import shared_cells_only

STUDY = [sys.executable, "-c", "import sys; from vega_toolkit.cli.study import cli_main; sys.exit(cli_main())"]
MODES = {"preloaded (default)": [], "fresh interpreters (--no-preload)": ["--no-preload"]}


def run(out: Path, args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the study and everything it started)."""
    return timed_child(STUDY + ["run", "--out", str(out), "--no-report", *args], stdout=subprocess.DEVNULL)


def main(argv=None):
    args = parse_record_args(record_parser(__doc__, "--repeats", 2), argv, "repeats")
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
        write_record(args.json, {"cells": cells, "times": times})


if __name__ == "__main__":
    main()
