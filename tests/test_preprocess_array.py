"""`vega-preprocess --shards N --launcher submitit` on a real one-node SLURM (scripts/slurm_local.sh): one array task
per shard gives the shards a local run gives, byte for byte; a re-run submits only the unfinished shards."""

import os
import re
import subprocess
import sys

import pytest
from launch_helpers import ENV
from test_preprocess import folder_bytes

from vega_toolkit.cli.preprocess import main as preprocess
from vega_toolkit.demo.toy_data import paragraph

PREPROCESS = [sys.executable, "-m", "vega_toolkit.cli.preprocess"]


def submit(args, name):
    try:
        proc = subprocess.run(
            PREPROCESS
            + [str(a) for a in args]
            + ["--launcher", "submitit", "--wait", "--slurm-job-name", name, "--slurm-time", "10"],
            capture_output=True,
            text=True,
            timeout=400,
            env={**os.environ, **ENV},
        )
    finally:
        subprocess.run(["scancel", "--name", name], capture_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture
def corpus(tmp_path):
    import random

    rng = random.Random(3)
    (tmp_path / "text").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "text" / name).write_text("".join(paragraph(rng) + "\n" for _ in range(150)))
    return tmp_path / "text"


def test_one_array_task_per_shard_gives_the_local_shards_and_a_rerun_redoes_only_the_unfinished(
    local_slurm, corpus, tmp_path
):
    flags = ["--vocab-size", "200", "--shards", "3", "--workers", "1", "--valid-fraction", "0.1"]
    local = preprocess([str(corpus), "--destdir", str(tmp_path / "local"), *flags])
    dest = tmp_path / "array"
    name = f"vega-pp-test-{os.getpid()}"
    out = submit([corpus, "--destdir", dest, *flags], name)
    array_id = re.search(r"^Submitted job (\d+)$", out, re.M).group(1)
    assert "shards: 0 1 2 of 3" in out and f"Job {array_id} finished (state COMPLETED)" in out, out
    assert folder_bytes(dest) == folder_bytes(local)
    assert (dest / "slurm").is_dir()  # the job logs, under the destination by default

    # a task killed mid-write: no finished marker, a truncated .bin, a leftover temporary
    (dest / "shard1" / ".vega-shard.json").unlink()
    (dest / "shard1" / "train.bin").write_bytes(b"\0" * 8)
    (dest / "shard1" / ".part-train.bin").write_bytes(b"partial")
    (dest / "dict.txt").unlink()
    untouched = (dest / "shard0" / "train.bin").stat().st_mtime_ns
    out = submit([corpus, "--destdir", dest, *flags], name)
    assert "shards: 1 of 3 (2 finished earlier, skipped)" in out, out
    assert folder_bytes(dest) == folder_bytes(local)
    assert (dest / "shard0" / "train.bin").stat().st_mtime_ns == untouched

    proc = subprocess.run(
        PREPROCESS + [str(corpus), "--destdir", str(dest), *flags, "--launcher", "submitit"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
    )
    assert proc.returncode == 0 and "All 3 shards" in proc.stdout and "Submitted job" not in proc.stdout, proc.stdout
