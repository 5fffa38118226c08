"""The package's layering, read from its source: console scripts (`vega_toolkit/cli/`) are the top layer, imported by
no other module; no two modules of the package import each other, directly or around a loop; and every module has
its line in docs/ARCHITECTURE.md. Every import counts, module-level or inside a function: a function-local import
that only hides a cycle from Python's import machinery is still a cycle for a reader following the code.

    python -m pytest tests/test_layering.py"""

import ast
import re
from pathlib import Path

PACKAGE = "vega_toolkit"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
ARCHITECTURE = ROOT.parent / "docs" / "ARCHITECTURE.md"


def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports anywhere in its body (functions and classes included).
    `from a.b import c` is an import of `a.b.c` when that is a module, else of `a.b`; relative imports resolve
    against the module's package."""
    own_package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = own_package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(root, package)
    known = set(modules)
    return {
        name: imported_modules(path.read_text(), name, path.name == "__init__.py", known)
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None (iterative depth-first search, nodes in sorted order
    so the answer is stable)."""
    done, on_path = set(), {}
    for start in sorted(graph):
        if start in done:
            continue
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        on_path[start] = 0
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                del on_path[node]
                done.add(node)
            elif child in on_path:
                path = [n for n, _ in stack]
                return path[on_path[child] :] + [child]
            elif child not in done:
                on_path[child] = len(stack)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def documented_modules(doc: str, package: str = PACKAGE) -> set[str]:
    """The modules (paths relative to the package) that ARCHITECTURE.md names: `folder/name.py` anywhere, or
    `name.py` inside its folder's entry of the first code block (the tree: a line `  folder/` at two spaces opens
    the entry, a line `  name.py` at two spaces is a module of the package's top level)."""
    found = set(re.findall(r"\b((?:\w+/)+\w+\.py)\b", doc))
    tree = doc.split("```")[1] if doc.count("```") >= 2 else ""
    folder = ""
    for line in tree.splitlines():
        top = re.match(r"^  (\w+)(/|\.py)", line)
        if top:
            folder = top.group(1) + "/" if top.group(2) == "/" else ""
        found |= {folder + name for name in re.findall(r"\b(\w+\.py)\b", line)}
    return {path[len(package) + 1 :] if path.startswith(package + "/") else path for path in found}


def undocumented_modules(root: Path, doc: str, package: str = PACKAGE) -> list[str]:
    """The modules under `root` (paths relative to it) that `doc` does not name; a package's __init__.py is named
    by its folder."""
    named = documented_modules(doc, package)
    return [
        path
        for path in (p.relative_to(root).as_posix() for p in sorted(root.rglob("*.py")))
        if path not in named
        and not (
            path.endswith("__init__.py")
            and path.rpartition("/")[0] + "/" in {n.rpartition("/")[0] + "/" for n in named} | {""}
        )
    ]


# --- the finder itself, on graphs small enough to check by eye --------------------------------------------------
def test_cycle_finder_finds_a_three_module_loop_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_function_local_import_counts_as_an_edge(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "cli" / "train.py").write_text("from pkg import core\n")
    (pkg / "core.py").write_text("def f():\n    from pkg.cli.train import g\n    from . import util\n")
    (pkg / "util.py").write_text("import pkg.core.something\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.core"] == {"pkg.cli.train", "pkg.util"}
    assert graph["pkg.util"] == {"pkg.core"}
    assert find_cycle(graph) == ["pkg.cli.train", "pkg.core", "pkg.cli.train"]


def test_a_module_missing_from_the_architecture_doc_is_reported(tmp_path):
    pkg = tmp_path / "pkg"
    for path in (
        "__init__.py",
        "errors.py",
        "data/__init__.py",
        "data/noising.py",
        "data/text_files.py",
        "study/plan.py",
        "study/overlap.py",
        "planning/plan.py",
        "cli/__init__.py",
        "cli/plan.py",
    ):
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text("")
    doc = (
        "# the tree\n```\npkg/\n  errors.py    user errors\n  data/\n    noising.py   corruption\n"
        "  study/       plan.py (arms)\n  planning/\n    plan.py\n```\n"
        "| layer | `cli/plan.py` |\n"
    )
    # study/overlap.py and data/text_files.py are named nowhere; study/plan.py's name does not cover a plan.py of
    # another folder, and an __init__.py is covered by its folder's entry (cli/ by `cli/plan.py`)
    assert undocumented_modules(pkg, doc, "pkg") == ["data/text_files.py", "study/overlap.py"]
    assert undocumented_modules(pkg, doc + "  and `study/overlap.py`, `pkg/data/text_files.py`", "pkg") == []


# --- the package ------------------------------------------------------------------------------------------------
def test_no_module_outside_cli_imports_cli():
    graph = import_graph()
    offenders = [
        f"{name} imports {target}"
        for name, targets in sorted(graph.items())
        if not name.startswith(PACKAGE + ".cli")
        for target in sorted(targets)
        if target.startswith(PACKAGE + ".cli")
    ]
    assert not offenders, "console scripts are the top layer:\n" + "\n".join(offenders)


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert len(graph) > 50 and f"{PACKAGE}.models.vega_encoder" in graph[f"{PACKAGE}.models"]


def test_every_module_has_its_line_in_the_architecture_doc():
    missing = undocumented_modules(ROOT, ARCHITECTURE.read_text())
    assert not missing, "docs/ARCHITECTURE.md names no line for:\n" + "\n".join(missing)
