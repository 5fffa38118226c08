"""scripts/study_cpu_rules.sh, the background queue of the cpu study: its stage arguments (the order two runners on
one folder take) and its refusal of an unknown stage before any cell starts. The `vega-study run` calls are
recorded by a `python` first on PATH that prints its arguments, so no cell runs here."""

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "study_cpu_rules.sh"


def _run(tmp_path, *stages):
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text('#!/bin/sh\necho "python $*"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "VEGA_GLUE_DIR": "G", "VEGA_CORPUS_DIR": "C"}
    return subprocess.run(["bash", str(SCRIPT), *stages], capture_output=True, text=True, env=env)


def _arms_in_order(stdout: str) -> list:
    return [line.split("--arms ")[1].split()[0] for line in stdout.splitlines() if line.startswith("python ")]


def test_stages_run_in_the_order_given_and_all_four_by_default(tmp_path):
    proc = _run(tmp_path, "2", "1")
    assert proc.returncode == 0, proc.stderr
    claims = "random,rtd_ternary,masked_lm,rtd_replace_only"
    assert _arms_in_order(proc.stdout) == ["rtd_electra,rtd_electra_es,rtd_ternary_generator", claims]
    assert "--tasks CoLA,SST-2,STS-B" in proc.stdout and "--jobs 1" in proc.stdout

    default = _run(tmp_path)
    assert default.returncode == 0, default.stderr
    assert _arms_in_order(default.stdout) == [claims, "rtd_electra,rtd_electra_es,rtd_ternary_generator", claims, "all"]


def test_an_unknown_stage_is_refused_before_any_cell_runs(tmp_path):
    proc = _run(tmp_path, "1", "5")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "study_cpu_rules.sh: unknown stage '5' (choose from 1 2 3 4)"
    assert "python " not in proc.stdout
