"""Under CI=true a local SLURM that cannot start fails the run instead of skipping the launcher and DDP tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broken_slurm(tmp_path):
    script = tmp_path / "slurm_broken.sh"
    script.write_text('echo "slurmctld: cannot start (test double)" >&2\nexit 1\n')
    return script


def pytest_run(broken_slurm, ci: str):
    env = {**os.environ, "VEGA_SLURM_LOCAL": str(broken_slurm), "CI": ci}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests" / "test_ddp.py"),
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_ddp_test_fails_under_ci_when_slurm_cannot_start(broken_slurm):
    proc = pytest_run(broken_slurm, "true")
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "CI=true and local SLURM could not start" in proc.stdout, proc.stdout[-2000:]
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout


@pytest.mark.slow
def test_ddp_test_skips_outside_ci_when_slurm_cannot_start(broken_slurm):
    proc = pytest_run(broken_slurm, "")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout


def test_make_test_stops_under_ci_before_pytest_when_slurm_cannot_start(broken_slurm):
    # -o venv-test -o lint: neither (re)build the test venv nor lint; the recipe must stop at the SLURM start, before
    # pytest.
    proc = subprocess.run(
        ["make", "-o", "venv-test", "-o", "lint", "test", "CI=true", f"SLURM_LOCAL={broken_slurm}", "PY=false"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "CI=true: local SLURM could not start" in proc.stderr, proc.stdout + proc.stderr
