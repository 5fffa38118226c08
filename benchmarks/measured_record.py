"""What the benchmarks that write a measured record share: their repetition and --json flags, checked before the
minutes of measuring (an existing record is never overwritten), the timing of one child process, and the record's
header (the command and the commit it measured)."""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def record_parser(description: str, repeats_flag: str, default: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(repeats_flag, type=int, default=default, help="repetitions of each variant, interleaved")
    parser.add_argument(
        "--json", type=Path, help="also write the timings to this new file (an existing one is refused)"
    )
    return parser


def parse_record_args(parser: argparse.ArgumentParser, argv, repeats: str):
    args = parser.parse_args(argv)
    if getattr(args, repeats) < 1:
        parser.error(f"--{repeats} {getattr(args, repeats)}: must be at least 1")
    if args.json and args.json.exists():
        parser.error(f"--json {args.json}: exists; move it away first (it is a measured record)")
    if args.json and args.json.parent.exists() and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: {args.json.parent} is a file, not a folder")
    return args


def timed_child(command: list[str], **run_kwargs) -> tuple[float, float]:
    """(wall s, user + system CPU s) of one child process and everything it waited for."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    subprocess.run(command, check=True, **run_kwargs)
    wall, after = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_record(path: Path, fields: dict):
    from vega_toolkit.study.runner import code_version

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "commit": code_version(), **fields}
    path.write_text(json.dumps(record, indent=1) + "\n")
