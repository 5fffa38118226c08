"""What the repository's text promises a reader who has only the repository: no pointer to a tracker item they
cannot open, module docstrings short enough to read (what the module is, how to run it), and every link from a
docstring to docs/design.md landing on a section that exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("vega_toolkit", "tests", "benchmarks", "scripts", "recipes", "user_dir")
TEXT_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".md", ".txt", ".ini", ".cfg", ".toml"}
TRACKER_REFERENCE = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)
MAX_DOCSTRING_LINES = 15
# Modules whose docstring may run longer, each with its reason. Empty: a longer text belongs in docs/design.md.
LONG_DOCSTRING_EXCEPTIONS: dict = {}
DESIGN_LINK = re.compile(r"docs/design\.md#([\w\-]+)")


def text_files(root: Path, folders=CODE_FOLDERS):
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in TEXT_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


def tracker_references(root: Path, folders=CODE_FOLDERS) -> list:
    found = []
    for path in text_files(root, folders):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if TRACKER_REFERENCE.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def long_docstrings(root: Path, folders=("vega_toolkit", "benchmarks", "scripts", "user_dir")) -> list:
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            name = str(path.relative_to(root))
            doc = ast.get_docstring(ast.parse(path.read_text()))
            lines = len(doc.splitlines()) if doc else 0
            if lines > MAX_DOCSTRING_LINES and name not in LONG_DOCSTRING_EXCEPTIONS:
                found.append(f"{name}: {lines} lines")
    return found


def markdown_anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_no_file_refers_the_reader_to_a_tracker_item():
    found = tracker_references(ROOT)
    assert not found, "say the behaviour instead of the tracker item:\n" + "\n".join(found)


def test_the_tracker_check_finds_a_planted_reference(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("x = 1\n# see " + "Issue" + " #13, item 7\n")
    (tmp_path / "tests" / "clean.py").write_text("# 13 issues of a journal are not a tracker item\n")
    assert tracker_references(tmp_path, ("tests",)) == ["tests/test_x.py:2: # see " + "Issue" + " #13, item 7"]


def test_module_docstrings_say_what_the_module_is_in_at_most_15_lines():
    found = long_docstrings(ROOT)
    assert not found, "move the design notes to docs/design.md and link the section:\n" + "\n".join(found)


def test_the_docstring_length_check_finds_a_long_docstring(tmp_path):
    (tmp_path / "vega_toolkit").mkdir()
    (tmp_path / "vega_toolkit" / "short.py").write_text('"""One line.\n\n    vega-train ...\n"""\nx = 1\n')
    (tmp_path / "vega_toolkit" / "essay.py").write_text('"""' + "a line\n" * 16 + '"""\n')
    assert long_docstrings(tmp_path, ("vega_toolkit",)) == ["vega_toolkit/essay.py: 16 lines"]


def test_every_link_to_the_design_notes_lands_on_a_section():
    headings = re.findall(r"(?m)^#+ (.+)$", (ROOT / "docs" / "design.md").read_text())
    anchors = {markdown_anchor(h) for h in headings}
    broken = [
        f"{path.relative_to(ROOT)}: #{anchor}"
        for path in text_files(ROOT)
        for anchor in DESIGN_LINK.findall(path.read_text(errors="replace"))
        if anchor not in anchors
    ]
    toc = re.findall(r"\]\(#([\w\-]+)\)", (ROOT / "docs" / "design.md").read_text())
    broken += [f"docs/design.md: #{anchor}" for anchor in toc if anchor not in anchors]
    assert not broken, "\n".join(broken)
