"""scripts/process_census: every Python process started with its folder on PYTHONPATH leaves one census line (argv,
CPU seconds, fairseq imported or not, the test that started it), and the report sums them per test."""

import json
import os
import subprocess
import sys
from pathlib import Path

CENSUS = Path(__file__).resolve().parents[1] / "scripts" / "process_census"


def _python(code, census, **env):
    environ = {**os.environ, "PYTHONPATH": str(CENSUS), "PROCESS_CENSUS_LOG": str(census), **env}
    subprocess.run([sys.executable, "-c", code, "first-arg"], env=environ, check=True)


def report(*args):
    return subprocess.run([sys.executable, str(CENSUS / "report.py"), *map(str, args)], capture_output=True, text=True)


def test_each_process_appends_its_line_and_the_report_sums_them_per_test(tmp_path):
    census = tmp_path / "census.jsonl"
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    _python(spin, census, PYTEST_CURRENT_TEST="tests/test_a.py::test_one (call)")
    _python("import json", census, PYTEST_CURRENT_TEST="tests/test_a.py::test_one (call)")
    _python("import json", census, PYTEST_CURRENT_TEST="tests/test_b.py::test_two (call)")
    lines = [json.loads(line) for line in census.read_text().splitlines()]
    assert [line["test"] for line in lines] == ["tests/test_a.py::test_one"] * 2 + ["tests/test_b.py::test_two"]
    assert lines[0]["argv"] == ["-c", "first-arg"] and lines[0]["cpu"] >= 0.3 > lines[1]["cpu"]
    assert not any(line["fairseq"] or line["ran_pytest"] for line in lines)

    printed = report(census)
    assert printed.returncode == 0, printed.stderr
    summary = printed.stdout.splitlines()
    assert summary[0].startswith("3 processes started by the tests: ") and "0 of them imported fairseq" in summary[0]
    rows = [row for row in summary if row.startswith("| ") and "`" in row]
    assert rows[0].startswith("| 2 | ") and rows[0].endswith("| `tests/test_a.py::test_one` |")
    assert rows[1].startswith("| 1 | ")


def test_without_the_log_variable_nothing_is_written_and_a_bad_line_is_named(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "PROCESS_CENSUS_LOG"}
    subprocess.run([sys.executable, "-c", "pass"], env={**environ, "PYTHONPATH": str(CENSUS)}, check=True, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    census = tmp_path / "census.jsonl"
    good = {"argv": [], "cpu": 1.0, "fairseq": False, "test": "", "ran_pytest": False}
    census.write_text(json.dumps(good) + "\nnot json\n")
    proc = report(census)
    assert (
        proc.returncode == 1 and proc.stderr.strip() == f"process_census: {census}:2: not a JSON line (Expecting value)"
    )
    missing = report(tmp_path / "none")
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"process_census: {tmp_path / 'none'}: no such file or directory"
    )
    folder = report(tmp_path)
    assert folder.returncode == 2 and folder.stderr.strip() == f"process_census: {tmp_path}: is a directory"
    census.write_text('{"argv": [], "cpu": 1}\n')  # JSON, but not what sitecustomize.py writes
    foreign = report(census)
    assert foreign.returncode == 1
    assert foreign.stderr.strip() == f"process_census: {census}:1: not a census line (no fairseq, test, ran_pytest)"
    zero = report(census, "--top", "0")
    assert zero.returncode == 2 and zero.stderr.strip().splitlines()[-1].endswith("--top 0: give at least 1")
