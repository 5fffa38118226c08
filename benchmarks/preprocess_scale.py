"""vega-preprocess at growing corpus sizes: wall time, MB/s per worker and peak RSS of the whole process tree; the
pipeline of commit 3af5726 (text split, pieces as text, fairseq's binarizer) and the current one side by side.

    python benchmarks/preprocess_scale.py --corpus /work/shared/corpus/gutenberg --sizes 60,250,1000 \
        --old-at 60 --workers 1 --out /tmp/pp-bench --json results/preprocess_scale.json

The text is generated from the books of --corpus (every non-empty line of every `*.txt`, copied as often as the size
needs), each line with a prefix of its own (copy and line number), so no line ever repeats and the valid/train
overlap handling never fires. Each run is a fresh `vega-preprocess ... --vocab-size 8000 --valid-fraction 0.01` in a
subprocess; the peak RSS is the largest sum of the resident sizes of that process and all its descendants, sampled
every 50 ms from /proc. The old pipeline is `git show 3af5726:vega_toolkit/cli/preprocess.py` run from a temporary
copy (it imports only sentencepiece and fairseq). MB are 10^6 bytes of input text.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OLD_COMMIT = "3af5726"
REPO = Path(__file__).resolve().parents[1]


def generate(books: Path, target_mb: float, out: Path) -> int:
    """Write about `target_mb` MB of distinct lines to `out`; returns the bytes written."""
    lines = [
        line.strip()
        for book in sorted(books.glob("*.txt"))
        for line in book.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    target, written, copy = int(target_mb * 1e6), 0, 0
    with out.open("w", encoding="utf-8") as f:
        while written < target:
            for i, line in enumerate(lines):
                text = f"c{copy}n{i} {line}\n"
                f.write(text)
                written += len(text.encode("utf-8"))
                if written >= target:
                    break
            copy += 1
    return written


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(command: list[str], log: Path) -> dict[str, float]:
    """Run `command`; wall seconds, CPU seconds of the tree, peak tree RSS."""
    peak = [0]
    before = os.times()
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        )
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.monotonic() - t0
    after = os.times()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}); log: {log}\n{log.read_text()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_gb": peak[0] / 1e9}


def old_pipeline(tmp: Path) -> Path:
    script = tmp / "old_preprocess.py"
    script.write_text(
        subprocess.run(
            ["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:vega_toolkit/cli/preprocess.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return script


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", default=os.path.join(os.environ.get("VEGA_CORPUS_DIR", "../shared/corpus"), "gutenberg")
    )
    parser.add_argument("--sizes", default="60,250,1000", help="corpus sizes in MB, comma-separated")
    parser.add_argument("--old-at", default="60", help="sizes (MB) at which the old pipeline runs too")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--spm-sample-lines",
        type=int,
        default=2_000_000,
        help="new pipeline's sentencepiece sample; the old one gets it as --input-sentence-size",
    )
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="pp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    old_script = old_pipeline(work)
    common = ["--vocab-size", "8000", "--valid-fraction", "0.01", "--workers", str(args.workers)]
    rows = []
    print("| corpus | pipeline | workers | wall s | CPU s | MB/s per worker | MB per CPU-s | peak RSS (tree) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in [float(s) for s in args.sizes.split(",")]:
        text = work / f"corpus-{size:g}MB" / "text.txt"
        text.parent.mkdir(exist_ok=True)
        n_bytes = generate(Path(args.corpus), size, text) if not text.exists() else text.stat().st_size
        mb = n_bytes / 1e6
        runs = [
            (
                "new",
                [
                    sys.executable,
                    "-m",
                    "vega_toolkit.cli.preprocess",
                    str(text.parent),
                    "--spm-sample-lines",
                    str(args.spm_sample_lines),
                ],
            )
        ]
        if f"{size:g}" in args.old_at.split(","):
            runs.insert(
                0,
                (
                    f"old ({OLD_COMMIT})",
                    [
                        sys.executable,
                        str(old_script),
                        str(text.parent),
                        "--input-sentence-size",
                        str(args.spm_sample_lines),
                    ],
                ),
            )
        for name, command in runs:
            dest = work / f"bin-{size:g}MB-{name.split()[0]}"
            if dest.exists():
                subprocess.run(["rm", "-rf", str(dest)], check=True)
            result = measure(command + ["--destdir", str(dest)] + common, work / f"{dest.name}.log")
            row = {
                "corpus_mb": round(mb, 1),
                "pipeline": name,
                "workers": args.workers,
                **result,
                "mb_per_s_per_worker": mb / result["wall_s"] / args.workers,
                "mb_per_cpu_s": mb / result["cpu_s"],
            }
            rows.append(row)
            print(
                f"| {mb:.0f} MB | {name} | {args.workers} | {result['wall_s']:.0f} | {result['cpu_s']:.0f} | "
                f"{row['mb_per_s_per_worker']:.2f} | {row['mb_per_cpu_s']:.2f} | {result['peak_rss_gb']:.2f} GB |",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(dest)], check=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
