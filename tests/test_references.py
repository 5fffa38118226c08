"""Docstrings and comments cite what a reader can open: the paper section or the upstream file, never a notes
file outside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_source_file_cites_research_notes_that_are_not_in_the_repository():
    cited = []
    for folder in ("vega_toolkit", "recipes", "scripts", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sh", ".yaml") and path.is_file():
                for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    for ref in re.findall(r"(?:\.\./shared/)?research/[\w./-]+\.md", line):
                        if not (ROOT / ref).exists():
                            cited.append(f"{path.relative_to(ROOT)}:{number}: {ref}")
    assert not cited, "\n".join(cited)
