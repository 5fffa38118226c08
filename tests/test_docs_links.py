"""The README is short and points to topic pages: every relative link of the README and the pages resolves to a file
(and a `#fragment` to a heading of it), and every topic page is reachable from the README.

    python -m pytest tests/test_docs_links.py -q
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# the pages the README sends a reader to: every docs/*.md and the benchmark tables
TOPIC_PAGES = sorted([*ROOT.glob("docs/*.md"), ROOT / "benchmarks" / "README.md"])
PAGES = [README, *TOPIC_PAGES]
README_MAX_LINES = 260

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(page: Path):
    """Targets of the markdown links of a page, outside code blocks and inline code."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    return _LINK.findall(text)


def anchors(page: Path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes (repeats get -1, -2, ...)."""
    seen, out = {}, set()
    for line in _FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_anchors_follow_githubs_heading_slugs(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "# Results on real data\n## Paper scale on SLURM\n```\n# not a heading\n```\n"
        "## fairseq users: Hydra configs and sweeps\n## `vega-plan`, twice\n## `vega-plan`, twice\n"
    )
    assert anchors(page) == {
        "results-on-real-data",
        "paper-scale-on-slurm",
        "fairseq-users-hydra-configs-and-sweeps",
        "vega-plan-twice",
        "vega-plan-twice-1",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert broken == []


def test_every_topic_page_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    assert [str(p.relative_to(ROOT)) for p in TOPIC_PAGES if p.resolve() not in linked] == []
    for name in ("results", "pretraining", "glue", "launch", "troubleshooting"):  # the pages the README was split into
        assert ROOT / "docs" / f"{name}.md" in TOPIC_PAGES


def test_the_readme_stays_short_and_opens_with_the_two_commands_make_demo_and_make_test():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    first = text.index("\n## ")
    assert text[first:].startswith("\n## The two commands\n")
    section = text[first + 1 : text.index("\n## ", first + 1)]
    commands = [line.split("#")[0].strip() for block in _FENCE.findall(section) for line in block.splitlines()[1:-1]]
    assert commands == ["make demo", "make test"]
