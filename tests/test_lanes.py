"""The test lanes: `make test-fast` (the Makefile's FAST_MARKERS) leaves out every test that starts SLURM, runs
KenLM's programs, runs a study or needs a GPU, and still runs most of the suite."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_LANES

ROOT = Path(__file__).resolve().parents[1]
LANES = ("slow", "slurm", "kenlm", "study", "gpu")


def fast_markers() -> str:
    found = re.search(r"^FAST_MARKERS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "Makefile: no FAST_MARKERS line"
    return found.group(1).strip()


@pytest.fixture(scope="module")
def fast_lane(tmp_path_factory):
    """What pytest itself selects for `make test-fast`: {"selected": [...], "deselected": [...]} (conftest.py)."""
    report = tmp_path_factory.mktemp("lanes") / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-m",
            fast_markers(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "VEGA_LANE_REPORT": str(report)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(report.read_text())


def test_the_fast_lane_expression_leaves_out_every_lane_marker():
    expression = fast_markers()
    assert sorted(expression.split(" and ")) == sorted(f"not {lane}" for lane in LANES), expression
    registered = (ROOT / "pytest.ini").read_text()
    for lane in LANES:
        assert re.search(rf"^    {lane}: ", registered, re.M), f"pytest.ini registers no `{lane}` marker"


def test_no_test_of_the_fast_lane_uses_slurm_or_kenlm_fixtures(fast_lane):
    assert set(FIXTURE_LANES) == {"local_slurm", "kenlm_programs"}
    leaked = [t["id"] for t in fast_lane["selected"] if set(t["fixtures"]) & set(FIXTURE_LANES)]
    assert not leaked, leaked
    # and the fixtures' users exist and were left out because of the mark conftest.py gave them
    for fixture, lane in FIXTURE_LANES.items():
        users = [t for t in fast_lane["deselected"] if fixture in t["fixtures"]]
        assert users, f"no test requests {fixture}: the lane mark is never exercised"
        assert all(lane in t["marks"] for t in users), [t["id"] for t in users if lane not in t["marks"]]


def test_the_fast_lane_keeps_no_marked_test_and_at_least_sixty_percent_of_the_suite(fast_lane):
    selected, deselected = fast_lane["selected"], fast_lane["deselected"]
    assert not [t["id"] for t in selected if set(t["marks"]) & set(LANES)]
    assert all(set(t["marks"]) & set(LANES) for t in deselected)
    assert len(selected) >= 0.6 * (len(selected) + len(deselected)), (len(selected), len(deselected))
