"""The package's metadata has one source each: the version is `__version__` in vega_toolkit/__init__.py (setup.py
parses it), the license that setup.py declares is the LICENSE file, and the CHANGELOG's latest entry is the version.

    python -m pytest tests/test_packaging.py -q
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import vega_toolkit

ROOT = Path(__file__).resolve().parents[1]


def setup_call_keywords():
    tree = ast.parse((ROOT / "setup.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"]
    assert len(calls) == 1
    return {k.arg: k.value for k in calls[0].keywords}


def test_setup_reports_the_version_written_once_in_the_package():
    out = subprocess.run(
        [sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().splitlines()[-1] == vega_toolkit.__version__
    assert not isinstance(setup_call_keywords()["version"], ast.Constant)  # no second literal in setup.py
    assigned = [
        path
        for path in sorted((ROOT / "vega_toolkit").rglob("*.py"))
        if re.search(r"^__version__\s*=", path.read_text(encoding="utf-8"), re.M)
    ]
    assert assigned == [ROOT / "vega_toolkit" / "__init__.py"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", vega_toolkit.__version__)


def test_the_license_file_is_the_one_setup_declares():
    keywords = setup_call_keywords()
    assert ast.literal_eval(keywords["license"]) == "MIT"
    assert "License :: OSI Approved :: MIT License" in ast.literal_eval(keywords["classifiers"])
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) " in text and "the vega-toolkit authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_the_changelogs_latest_entry_is_the_packages_version():
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert entries and entries[0] == vega_toolkit.__version__
