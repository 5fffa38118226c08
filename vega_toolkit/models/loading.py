"""The one path from a checkpoint file to a model: `load_model`, used by the hub interface
(`VegaModel.from_pretrained`) and by GLUE prediction (`GluePredictor.from_checkpoint`).

    from vega_toolkit.models.loading import load_model
    model, cfg, task = load_model("out/rte/checkpoint_best.pt", arg_overrides={"data": "glue_data/RTE"})

It is fairseq's own `checkpoint_utils.load_model_ensemble_and_task`, so the model is rebuilt by its own task exactly
as in training (the task set up `from_checkpoint`, the state dict upgraded and loaded strictly); the checkpoint is
read through the allow-listed loader of vega_toolkit/io/checkpoints.py.
"""

from typing import Any


def load_model(path: str, arg_overrides: dict[str, Any] | None = None, state: dict | None = None):
    """(model, cfg, task) of checkpoint `path`. `state`: the checkpoint already read (and its `cfg` edited) by the
    caller; `arg_overrides` (fairseq's: any config field by name) apply when `state` is not given."""
    from fairseq import checkpoint_utils

    if state is not None and arg_overrides:
        raise ValueError("load_model: give arg_overrides or an already read state, not both")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=arg_overrides, state=state)
    return models[0], cfg, task
