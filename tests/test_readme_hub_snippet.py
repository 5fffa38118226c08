"""The README's hub snippet ("Using a model") runs as printed, on a real model folder and fine-tuned checkpoint.

python -m pytest tests/test_readme_hub_snippet.py -q
"""

import os
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def hub_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Using a model\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_hub_snippet_runs_on_a_model_folder_and_a_glue_checkpoint(model_dir):
    code = hub_snippet()
    assert '"vega-model"' in code and '"runs/glue/RTE/checkpoint_best.pt"' in code
    # the fixture's model.pt is a `vega-train --task glue` checkpoint (SST-2), so it serves as both
    model_pt = os.path.join(model_dir, "model.pt")
    code = code.replace('"vega-model"', repr(str(model_dir)))
    code = code.replace('"runs/glue/RTE/checkpoint_best.pt"', repr(model_pt))
    lines = code.rstrip("\n").splitlines()
    # keep the values of the snippet's bare expression lines to check them
    lines = [
        f"_{i} = {line}" if line and not re.match(r"(from |import |\w+ = )", line) else line
        for i, line in enumerate(lines)
    ]
    scope = {}
    exec(compile("\n".join(lines), "README.md (Using a model)", "exec"), scope)
    assert scope["tokens"].dim() == 1 and scope["tokens"][0].item() == scope["m"].dictionary.bos()
    assert scope["features"].shape[:2] == (1, len(scope["tokens"])) and torch.isfinite(scope["features"]).all()
    predicted, scores = (value for name, value in scope.items() if re.fullmatch(r"_\d+", name))
    assert len(predicted) == 1 and predicted[0] in scope["clf"].glue.labels
    assert set(scores) == {"dev"} and "accuracy" in scores["dev"]
