"""Shared pytest fixtures (keep each one small, generic and fast) and the fixture -> lane marks of the test lanes."""

import json
import os
from pathlib import Path

import pytest

# A test that requests one of these fixtures belongs to the lane of the same row (pytest.ini's markers): marking it
# here, from the fixture it really uses, keeps `make test-fast` (Makefile FAST_MARKERS) from starting SLURM or
# needing KenLM whatever module the test lives in. tests/test_lanes.py checks the fast lane against this table.
FIXTURE_LANES = {"local_slurm": "slurm", "kenlm_programs": "kenlm"}
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.hookimpl(tryfirst=True)  # before the -m selection, which reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, lane in FIXTURE_LANES.items():
            if fixture in item.fixturenames:
                item.add_marker(lane)


_deselected = []


def pytest_deselected(items):
    _deselected.extend(items)


def pytest_collection_finish(session):
    """With VEGA_LANE_REPORT=path, write the tests a `-m` expression selected and those it left out (node id,
    fixtures, marks) there as JSON: how tests/test_lanes.py sees what a lane runs."""
    path = os.environ.get("VEGA_LANE_REPORT")
    if path:

        def rows(items):
            return [
                {
                    "id": item.nodeid,
                    "fixtures": sorted(item.fixturenames),
                    "marks": sorted({mark.name for mark in item.iter_markers()}),
                }
                for item in items
            ]

        with open(path, "w", encoding="utf-8") as f:
            json.dump({"selected": rows(session.items), "deselected": rows(_deselected)}, f)


def slurm_unavailable(reason: str):
    """Skip a test that needs the local SLURM; under CI=true fail it instead, so a broken SLURM setup cannot land
    green."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail("CI=true and " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_data_bin(tmp_path_factory):
    """A real `vega-preprocess` data-bin (sentencepiece model, dict.txt, mmap train/valid) built once per session
    from tests/fixtures/tiny_corpus/stories.txt: 600 grammar-generated paragraphs whose word order and vocabulary
    are learnable, so short trainings show signal. The text is a frozen file, not regenerated, because the recorded
    losses of test_expected_loss.py are measured on it: a change to the demo's grammar (vega_toolkit.demo.toy_data,
    whose `paragraph` wrote it with random.Random(0)) must not move them. Returns the data-bin directory (Path);
    treat it as read-only."""
    from vega_toolkit.cli.preprocess import main as preprocess

    root = tmp_path_factory.mktemp("tiny_corpus")
    text = FIXTURES / "tiny_corpus" / "stories.txt"
    return preprocess(
        [
            str(text),
            "--destdir",
            str(root / "data-bin"),
            "--vocab-size",
            "256",
            "--workers",
            "1",
            "--valid-fraction",
            "0.05",
            "--seed",
            "0",
        ]
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A model folder (model.pt + dict.txt + spm.model) whose model.pt is a vega_tiny briefly fine-tuned on the SST-2
    fixture (classification head included): glue_helpers.make_model_dir, built once per session. Read-only."""
    from glue_helpers import make_model_dir

    root = tmp_path_factory.mktemp("fine_tuned_model")
    return make_model_dir(str(root / "model"), str(root / "cache"))


@pytest.fixture(scope="session")
def local_slurm():
    """A running one-node SLURM cluster (scripts/slurm_local.sh; installs and starts the daemons if needed).

    VEGA_SLURM_LOCAL names another start/stop/status script (the CI test uses one that always fails).
    Sets SLURM_CONF for this process and its children. Skips, with the script's reason, where the daemons cannot
    start (not root, no apt, no munge ...); under CI=true it fails instead. Daemons this fixture started are stopped at
    the end of the session."""
    import re
    import subprocess

    script = os.environ.get("VEGA_SLURM_LOCAL") or str(
        Path(__file__).resolve().parents[1] / "scripts" / "slurm_local.sh"
    )
    was_running = subprocess.run(["bash", script, "status"], capture_output=True).returncode == 0
    try:
        proc = subprocess.run(["bash", script, "start"], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        slurm_unavailable("local SLURM: scripts/slurm_local.sh start did not finish in 15 minutes")
    found = re.search(r"^export SLURM_CONF=(\S+)$", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        slurm_unavailable("local SLURM could not start (scripts/slurm_local.sh start): " + proc.stderr.strip()[-500:])
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = found.group(1)
    yield found.group(1)
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    if not was_running:
        subprocess.run(["bash", script, "stop"], capture_output=True)


@pytest.fixture(scope="session")
def kenlm_programs():
    """{name: path} of KenLM's lmplz and build_binary (scripts/build_kenlm.sh compiles them into .venv/bin; `make
    test` does it once). A test that runs them requests this fixture, which puts it in the `kenlm` lane."""
    from vega_toolkit.selection.lm import find_kenlm_program

    return {name: find_kenlm_program(name) for name in ("lmplz", "build_binary")}
