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

    report = subprocess.run(
        [sys.executable, str(CENSUS / "report.py"), str(census)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert report[0].startswith("3 processes started by the tests: ") and "0 of them imported fairseq" in report[0]
    rows = [row for row in report if row.startswith("| ") and "`" in row]
    assert rows[0].startswith("| 2 | ") and rows[0].endswith("| `tests/test_a.py::test_one` |")
    assert rows[1].startswith("| 1 | ")


def test_without_the_log_variable_nothing_is_written_and_a_bad_line_is_named(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "PROCESS_CENSUS_LOG"}
    subprocess.run([sys.executable, "-c", "pass"], env={**environ, "PYTHONPATH": str(CENSUS)}, check=True, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
    census = tmp_path / "census.jsonl"
    census.write_text('{"argv": [], "cpu": 1}\nnot json\n')
    proc = subprocess.run([sys.executable, str(CENSUS / "report.py"), str(census)], capture_output=True, text=True)
    assert (
        proc.returncode == 1 and proc.stderr.strip() == f"process_census: {census}:2: not a JSON line (Expecting value)"
    )
    missing = subprocess.run(
        [sys.executable, str(CENSUS / "report.py"), str(tmp_path / "none")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "none: no such file" in missing.stderr
