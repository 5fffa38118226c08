"""Summarise a process census (see sitecustomize.py beside this file): how many Python processes the tests started,
their CPU seconds, and the tests that started the most, so that CI time can be cut where it is spent.

    python scripts/process_census/report.py CENSUS.jsonl [--top 15]
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

FIELDS = ("argv", "cpu", "fairseq", "test", "ran_pytest")  # what sitecustomize.py writes and the report reads


def read_census(path: str) -> list[dict]:
    lines = []
    with open(path) as census:
        for number, text in enumerate(census, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as error:
                raise SystemExit(f"process_census: {path}:{number}: not a JSON line ({error.msg})") from None
            missing = [field for field in FIELDS if not isinstance(line, dict) or field not in line]
            if missing:
                raise SystemExit(f"process_census: {path}:{number}: not a census line (no {', '.join(missing)})")
            lines.append(line)
    return lines


def census_report(lines: list[dict], top: int) -> str:
    started = [line for line in lines if not line["ran_pytest"]]
    pytest_processes = [line for line in lines if line["ran_pytest"]]
    cpu = sum(line["cpu"] for line in started)
    median = statistics.median(line["cpu"] for line in started) if started else 0.0
    out = [
        f"{len(started)} processes started by the tests: {cpu:.0f} CPU s, median {median:.1f} s each, "
        f"{sum(line['fairseq'] for line in started)} of them imported fairseq",
        f"pytest's own processes (the tests that run in process): {len(pytest_processes)}, "
        f"{sum(line['cpu'] for line in pytest_processes):.0f} CPU s",
        "",
        "| processes | CPU s | test |",
        "|---|---|---|",
    ]
    by_test: dict[str, list[float]] = defaultdict(list)
    for line in started:
        by_test[line["test"] or "(no test: a child started with a cleared environment, or outside pytest)"].append(
            line["cpu"]
        )
    for test, cpus in sorted(by_test.items(), key=lambda item: -sum(item[1]))[:top]:
        out.append(f"| {len(cpus)} | {sum(cpus):.0f} | `{test}` |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("census", help="the JSON lines file PROCESS_CENSUS_LOG named")
    parser.add_argument("--top", type=int, default=15, help="how many tests to list (default 15)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top {args.top}: give at least 1")
    try:
        lines = read_census(args.census)
    except OSError as error:  # missing, a folder, unreadable
        print(f"process_census: {args.census}: {error.strerror.lower()}", file=sys.stderr)
        return 2
    print(census_report(lines, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
