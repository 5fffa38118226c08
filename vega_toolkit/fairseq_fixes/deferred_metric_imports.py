"""Fix: importing fairseq no longer imports scikit-learn and scipy.stats, which only two of its modules call.

`import fairseq` imports all its tasks and criterions; `fairseq.criterions.sentence_prediction` and
`fairseq.tasks.audio_classification` import scikit-learn's metrics and scipy.stats at module level, 1.0-1.6 CPU s
of the start-up of every command and study cell (benchmarks/cli_startup.py). `install()`, run before any other fix
imports fairseq, compiles those two modules with each top-level `from sklearn... / scipy... import NAME` replaced by
`NAME = deferred(module, NAME)`, which imports on first call or attribute read. Nothing enters `sys.modules` (a
placeholder module there broke `inspect` inside torch's import). Another fairseq version's modules are rewritten
the same way; if fairseq was imported before vega_toolkit (stock `fairseq-train --user-dir`), nothing changes.
"""

import ast
import importlib
import importlib.abc
import importlib.machinery
import sys

DEFERRED_MODULES = ("fairseq.criterions.sentence_prediction", "fairseq.tasks.audio_classification")
DEFERRED_PACKAGES = ("sklearn", "scipy")


class Deferred:
    """MODULE.NAME, imported when first called or read."""

    def __init__(self, module: str, name: str):
        self._module, self._name, self._target = module, name, None

    def _resolve(self):
        if self._target is None:
            self._target = getattr(importlib.import_module(self._module), self._name)
        return self._target

    def __call__(self, *args, **kwargs):
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, attr):
        if attr.startswith("_"):  # private names of this object (set in __init__) never reach here; dunders do
            raise AttributeError(attr)
        return getattr(self._resolve(), attr)

    def __repr__(self):
        return f"<deferred {self._module}.{self._name}>"


def deferred(module: str, name: str):
    """The value of `from MODULE import NAME` when MODULE is already loaded, else a Deferred for it."""
    if module in sys.modules:
        return getattr(sys.modules[module], name)
    return Deferred(module, name)


def defer_imports(tree: ast.Module) -> int:
    """Rewrites TREE in place: each top-level `from PKG... import NAME [as ALIAS]` of a DEFERRED_PACKAGES package
    becomes `ALIAS = _vega_deferred("PKG...", "NAME")`. Returns how many imports it deferred."""
    deferred_count = 0
    body = []
    for node in tree.body:
        root = node.module.split(".")[0] if isinstance(node, ast.ImportFrom) and node.module else None
        if root in DEFERRED_PACKAGES and node.level == 0 and all(a.name != "*" for a in node.names):
            for alias in node.names:
                call = ast.Call(
                    func=ast.Name("_vega_deferred", ast.Load()),
                    args=[ast.Constant(node.module), ast.Constant(alias.name)],
                    keywords=[],
                )
                body.append(
                    ast.copy_location(ast.Assign([ast.Name(alias.asname or alias.name, ast.Store())], call), node)
                )
                deferred_count += 1
        else:
            body.append(node)
    tree.body = body
    ast.fix_missing_locations(tree)
    return deferred_count


class _DeferringLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module from its source with defer_imports applied (never from a .pyc of the original)."""

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        tree = ast.parse(self.get_data(path), filename=path)
        defer_imports(tree)
        return compile(tree, path, "exec", dont_inherit=True)

    def exec_module(self, module):
        module.__dict__["_vega_deferred"] = deferred
        super().exec_module(module)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in DEFERRED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _DeferringLoader(spec.loader.name, spec.loader.path)
        return spec


_FINDER = _DeferringFinder()


def install():
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
