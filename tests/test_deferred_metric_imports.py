"""vega_toolkit/fairseq_fixes/deferred_metric_imports.py: `import vega_toolkit` no longer loads scikit-learn or
scipy.stats, and fairseq's metric code computes the same numbers through the deferred names."""

import ast
import subprocess
import sys
import textwrap

import pytest

from vega_toolkit.fairseq_fixes.deferred_metric_imports import Deferred, defer_imports, deferred


def _fresh_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_importing_the_toolkit_loads_neither_scikit_learn_nor_scipy_stats_and_fairseq_metrics_still_agree():
    out = _fresh_python(
        """
        import sys
        import vega_toolkit.cli.train
        print(sorted(m for m in ("sklearn", "sklearn.metrics", "scipy.stats") if m in sys.modules))
        from fairseq.criterions import sentence_prediction as sp
        from fairseq.tasks import audio_classification as ac
        print(type(sp.f1_score).__name__, type(ac.sklearn_metrics).__name__)
        preds, gold = [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1]
        x, y = [0.1, 0.4, 0.35, 0.8, 0.7], [0.0, 0.5, 0.3, 0.9, 0.6]
        ours = (sp.f1_score(gold, preds), sp._matthews_corrcoef(gold, preds), sp.pearsonr(x, y)[0],
                sp.spearmanr(x, y)[0], tuple(ac.sklearn_metrics.roc_curve(gold, x + [0.5])[0]))
        import sklearn.metrics, scipy.stats
        theirs = (sklearn.metrics.f1_score(gold, preds), sklearn.metrics.matthews_corrcoef(gold, preds),
                  scipy.stats.pearsonr(x, y)[0], scipy.stats.spearmanr(x, y)[0],
                  tuple(sklearn.metrics.roc_curve(gold, x + [0.5])[0]))
        print(ours == theirs)
        """
    )
    assert out.splitlines() == ["[]", "Deferred Deferred", "True"]


def test_only_top_level_absolute_from_imports_of_the_deferred_packages_are_rewritten():
    source = textwrap.dedent(
        """
        import numpy as np
        from sklearn.metrics import f1_score, roc_curve as roc
        from scipy.stats import *
        from .sklearn import helper
        from collections import OrderedDict

        def later():
            from scipy.stats import pearsonr
            return pearsonr
        """
    )
    tree = ast.parse(source)
    assert defer_imports(tree) == 2
    rewritten = ast.unparse(tree)
    assert "f1_score = _vega_deferred('sklearn.metrics', 'f1_score')" in rewritten
    assert "roc = _vega_deferred('sklearn.metrics', 'roc_curve')" in rewritten
    for kept in ("from scipy.stats import *", "from .sklearn import helper", "from collections import OrderedDict"):
        assert kept in rewritten
    assert "    from scipy.stats import pearsonr" in rewritten  # inside a function: it already runs on first use


def test_a_deferred_name_resolves_once_and_a_loaded_module_gives_the_real_object():
    import json

    assert deferred("json", "dumps") is json.dumps  # already loaded: nothing to defer
    name = Deferred("json", "dumps")
    assert name({"a": 1}) == '{"a": 1}' and name._target is json.dumps
    assert Deferred("os", "path").join("a", "b") == "a/b"  # a module: its attributes pass through


@pytest.mark.parametrize("script, repeats", [("cli_startup.py", "--reps"), ("study_launch.py", "--repeats")])
def test_the_start_up_benchmarks_refuse_bad_flags_in_one_line_before_measuring(tmp_path, script, repeats):
    """benchmarks/cli_startup.py and study_launch.py (benchmarks/measured_record.py): a repetition count below 1, an
    existing --json record and a file where its folder belongs."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / script
    (tmp_path / "done.json").write_text("{}")
    (tmp_path / "a_file").write_text("")
    for flags, says in (
        ([repeats, "0"], f"{repeats} 0: must be at least 1"),
        (["--json", str(tmp_path / "done.json")], "exists; move it away first"),
        (["--json", str(tmp_path / "a_file" / "t.json")], "is a file, not a folder"),
    ):
        run = subprocess.run([sys.executable, str(path), *flags], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and says in run.stderr.strip().splitlines()[-1], (flags, run.stderr)
    assert (tmp_path / "done.json").read_text() == "{}"
