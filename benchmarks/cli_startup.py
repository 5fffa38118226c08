"""Start-up cost of a toolkit command: the CPU seconds of a fresh Python process that imports `vega_toolkit.cli.train`
(what every `vega-train`, `vega-generate` and study cell pays before its first step), with fairseq's scikit-learn and
scipy.stats imports deferred (vega_toolkit/fairseq_fixes/deferred_metric_imports.py) and with them imported first,
as fairseq did before the fix. Interleaved repetitions, side by side in one run:

    OMP_NUM_THREADS=1 python benchmarks/cli_startup.py --reps 9 --json results/cli_startup/cpu.json
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "deferred (today)": "import vega_toolkit.cli.train",
    "eager (sklearn.metrics and scipy.stats imported, as fairseq did)": (
        "import sklearn.metrics, scipy.stats; import vega_toolkit.cli.train"
    ),
}


def child_cpu_seconds(code: str) -> float:
    """User + system CPU seconds of one `python -c CODE` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9, help="repetitions of each variant, interleaved")
    parser.add_argument(
        "--json", type=Path, help="also write the timings to this new file (an existing one is refused)"
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps {args.reps}: must be at least 1")
    if args.json and args.json.exists():  # checked before the minutes of measuring, never overwritten
        parser.error(f"--json {args.json}: exists; move it away first (it is a measured record)")
    if args.json and args.json.parent.exists() and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: {args.json.parent} is a file, not a folder")
    child_cpu_seconds(VARIANTS["deferred (today)"])  # warm the page cache and write the .pyc files
    times = {name: [] for name in VARIANTS}
    for _ in range(args.reps):
        for name, code in VARIANTS.items():
            times[name].append(child_cpu_seconds(code))
    deferred, eager = (statistics.median(t) for t in times.values())
    print("| start-up of `import vega_toolkit.cli.train` | CPU s, median | min | max |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    print(f"\nsaved per process: {eager - deferred:.2f} CPU s (median), deferred/eager = {deferred / eager:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        from vega_toolkit.study.runner import code_version

        record = {"command": " ".join(sys.argv), "commit": code_version(), "reps": args.reps, "cpu_s": times}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
