"""scripts/gpu_checks.sh rehearsed on CPU: the staged plan fits a ten-minute GPU window, the budget skips what could
overrun, bad flags and an existing log folder are refused before anything runs; scripts/gpu_probe.py reports the
versions and says when there is no GPU; the benchmarks it runs keep going when one model fails; and the fused kernels
compile for an H100 / H200 (sm_90) without spilling registers, which needs no GPU."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ["bash", str(ROOT / "scripts" / "gpu_checks.sh")]
STAGE = re.compile(r"^\[(\d\d)_(\w+)\] timeout +(\d+) s: (.*)$")
SKIPPED = re.compile(r"^\[(\d\d)_(\w+)\] skipped: (\d+) s elapsed \+ (\d+) s timeout > budget (\d+) s$")


def run(*args, **env):
    return subprocess.run(SCRIPT + list(args), capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env})


def plan(*args):
    result = run("--dry-run", *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    return [STAGE.match(line).groups() for line in lines if STAGE.match(line)], lines


def test_dry_run_plan_fits_eight_minutes_with_fused_results_first_and_calibration_last():
    stages, lines = plan()
    names = [name for _, name, _, _ in stages]
    assert names[:3] == ["probe", "fused_tests", "base"] and names[-1] == "calibration"
    assert sum(int(limit) for _, _, limit, _ in stages) <= 8 * 60
    assert stages[-1][3].startswith("python3 -u benchmarks/planner_calibration.py --out ")
    assert stages[-1][3].endswith("/calibration")  # under $OUT: what a lent machine sends back
    assert all(" -u " in command for *_, command in stages)  # unbuffered: a killed stage still leaves its log
    assert lines[-1].startswith("total of the timeouts: 480 s")


def test_every_script_and_test_file_the_plan_runs_exists():
    stages, _ = plan()
    paths = {path for *_, command in stages for path in re.findall(r"\b(?:scripts|benchmarks|tests)/\w+\.py", command)}
    missing = {path for path in paths if not (ROOT / path).exists()}
    assert not missing
    assert {"tests/test_cuda.py", "benchmarks/encoder_speed.py", "benchmarks/fused_attention_layer.py"} <= paths


def test_budget_skips_each_stage_that_could_overrun_and_keeps_later_ones_that_fit():
    stages, lines = plan("--budget", "300")
    skipped = [SKIPPED.match(line).groups() for line in lines if SKIPPED.match(line)]
    assert skipped and sum(int(limit) for _, _, limit, _ in stages) <= 300
    assert all(int(at) + int(limit) > 300 for _, _, at, limit, _ in skipped)
    first_skip = min(int(n) for n, *_ in skipped)
    assert any(int(n) > first_skip for n, *_ in stages)  # a shorter later stage still runs


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "0"], "--budget needs a positive whole number"),
        (["--budget", "ten"], "--budget needs a positive whole number"),
        (["--budget"], "--budget needs a positive whole number"),
        (["--fast"], "unknown argument '--fast'"),
    ],
)
def test_bad_flag_is_one_line_error(args, message):
    result = run(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"gpu_checks.sh: {message}")


def test_existing_log_folder_is_not_overwritten(tmp_path):
    (tmp_path / "01_probe.log").write_text("an earlier window's log")
    result = run("--budget", "1", OUT=str(tmp_path))
    assert result.returncode == 2 and "exists and is not empty" in result.stderr
    assert (tmp_path / "01_probe.log").read_text() == "an earlier window's log"


def test_run_with_a_budget_too_small_for_any_stage_writes_a_summary_of_skips(tmp_path):
    out = tmp_path / "logs"
    result = run("--budget", "1", OUT=str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in (out / "summary.tsv").read_text().splitlines()]
    assert rows[0] == ["stage", "timeout_s", "status", "seconds"]
    assert [row[2] for row in rows[1:]] == ["skipped"] * 8


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the probe's answer on a machine without a GPU")
def test_gpu_probe_reports_versions_against_the_pins_and_fails_without_a_gpu():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_probe.py")], capture_output=True, text=True)
    assert result.returncode == 1
    assert re.search(
        rf"^torch {re.escape(torch.__version__)} \((= tested pin|tested pin [\d.]+)\)$", result.stdout, re.M
    ), result.stdout
    assert result.stdout.rstrip().endswith("gpu_probe: torch sees no CUDA device")


def cpu_env():
    """This environment without TRITON_INTERPRET (an interpreter test in this process may have set it)."""
    return {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "script,args,rows",
    [
        (
            "encoder_speed.py",
            ["--models", "vega,plain", "--vega-impls", "fused,sdpa", "--layers", "1", "--vocab", "100"],
            ["vega_encoder fused", "vega_encoder sdpa", "plain SDPA encoder"],
        ),
        ("fused_attention_layer.py", [], ["fused", "sdpa"] * 4),
    ],
)
def test_benchmark_row_of_a_model_that_fails_says_err_and_the_other_rows_still_run(script, args, rows):
    # On CPU without the interpreter the fused kernel refuses to run (UnsupportedSetupError, a RuntimeError): a compile
    # or resource error on a GPU takes the same path.
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / script),
        "--dim",
        "32",
        "--heads",
        "2",
        "--lengths",
        "16",
        "--tokens",
        "32",
        "--reps",
        "1",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**cpu_env(), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| 16 |")]
    name, time = (4, 5) if script == "fused_attention_layer.py" else (2, 3)  # the columns of the model and its time
    assert [cells[name] for cells in table] == rows
    for cells in table:
        assert (cells[time] == "ERR: UnsupportedSetupError") == ("fused" in cells[name]), cells
        assert cells[time].startswith("ERR") or float(cells[time]) > 0
    assert "UnsupportedSetupError: --attention-impl fused runs Triton kernels" in result.stderr  # the traceback is kept


@pytest.mark.slow
def test_fused_kernels_compile_for_sm90_at_the_cuda_defaults_without_spilling(tmp_path):
    # Triton compiles to a cubin without a GPU; a compile error here would otherwise surface only in a GPU window.
    env = {**cpu_env(), "PYTHONPATH": str(ROOT), "TRITON_CACHE_DIR": str(tmp_path), "TRITON_DEFAULT_FP_FUSION": "1"}
    env = {key: value for key, value in env.items() if not key.startswith("VEGA_FUSED_")}  # the defaults
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fused_kernel_resources.py")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in result.stdout.splitlines() if re.match(r"\| (fwd|bwd)", line)]
    assert [row[0] for row in rows] == ["fwd", "bwd_kv", "bwd_q"]
    for name, *_, registers, stack, shared in rows:
        assert int(registers) <= 255 and int(stack) == 0 and 0 < int(shared) <= 227 * 1024, (name, registers, stack)
