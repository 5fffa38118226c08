"""Start-up cost of a toolkit command: the CPU seconds of a fresh Python process that imports `vega_toolkit.cli.train`
(what every `vega-train`, `vega-generate` and study cell pays before its first step), with fairseq's scikit-learn and
scipy.stats imports deferred (vega_toolkit/fairseq_fixes/deferred_metric_imports.py) and with them imported first,
as fairseq did before the fix. Interleaved repetitions, side by side in one run:

    OMP_NUM_THREADS=1 python benchmarks/cli_startup.py --reps 9 --json results/cli_startup/cpu.json
"""

import statistics
import sys

from measured_record import parse_record_args, record_parser, timed_child, write_record  # benchmarks/, on sys.path

VARIANTS = {
    "deferred (today)": "import vega_toolkit.cli.train",
    "eager (sklearn.metrics and scipy.stats imported, as fairseq did)": (
        "import sklearn.metrics, scipy.stats; import vega_toolkit.cli.train"
    ),
}


def child_cpu_seconds(code: str) -> float:
    """User + system CPU seconds of one `python -c CODE` process."""
    return timed_child([sys.executable, "-c", code])[1]


def main(argv=None):
    parser = record_parser(__doc__, "--reps", 9)
    args = parse_record_args(parser, argv, "reps")
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
        write_record(args.json, {"reps": args.reps, "cpu_s": times})


if __name__ == "__main__":
    main()
