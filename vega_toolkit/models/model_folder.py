"""Model folders (model.pt + dict.txt + spm.model) from pretraining checkpoints, or freshly initialised.

    vega-convert export ckpt/phase1/checkpoint_last.pt --data-bin data-bin/gutenberg models/tiny-rtd
    vega-convert export --random-init --arch vega_tiny --seed 3 --data-bin data-bin/gutenberg models/tiny-random

A model folder is what the GLUE recipes (`PRETRAINED=...`), `vega-glue arch` and `VegaModel.from_pretrained` read.
`model.pt` holds the encoder weights (LM head included) and the model config, but no optimizer state and no
pretraining heads (the RTD token head, the contrastive projection): fine-tuning registers its own head.
A `masked_lm` checkpoint has one more embedding row than dict.txt (fairseq's masked_lm task appends `<mask>`);
it is trimmed, so every pretraining objective yields a folder with the same vocabulary and the GLUE task accepts it.
An `rtd_electra` (or `rtd_ternary --replace-with generator`) checkpoint keeps its generator in
`checkpoint["criterion"]`: the folder holds the discriminator alone, and under GDES its embedding is E_G + E_delta
merged into one matrix (models/replacement_generator.py), so it loads, fine-tunes and converts like any other.
`--random-init` gives the "no pretraining" baseline the same tokenizer and architecture as a pretrained arm.
"""

import logging
import os
import shutil
from collections.abc import Iterable

import torch

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
DICT_FILE = "dict.txt"
SPM_FILE = "spm.model"
EMBEDDING_KEY = "encoder.embeddings.embed_tokens.weight"
VOCAB_KEYS = (EMBEDDING_KEY, "encoder.lm_head.weight", "encoder.lm_head.bias")  # tied weight is stored twice
PRETRAINING_HEAD_PREFIXES = ("token_heads.", "classification_heads.")


def write_model_checkpoint(
    path: str,
    cfg_container: dict,
    state: dict[str, torch.Tensor],
    criterion_name: str = "none",
    task_state: dict | None = None,
) -> None:
    """A fairseq checkpoint holding weights and config only, with the bookkeeping fairseq's loader upgrades;
    `task_state`: what the task restores on load (the vocabulary id, vega_toolkit/data/vocabulary.py)."""
    from vega_toolkit.io.atomic import atomic_torch_save

    history = [{"criterion_name": criterion_name, "optimizer_name": "none", "lr_scheduler_state": {}, "num_updates": 0}]
    checkpoint = {
        "cfg": cfg_container,
        "model": state,
        "optimizer_history": history,
        "extra_state": {"train_iterator": {"epoch": 1}},
        "last_optimizer_state": None,
        "task_state": dict(task_state or {}),
    }
    atomic_torch_save(checkpoint, path)


def _pretraining_config(data_bin: str, arch_args: Iterable[str]):
    """fairseq's resolved config of `denoising_pretrain` on DATA_BIN with ARCH_ARGS (the model folder's task)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [data_bin, "--task", "denoising_pretrain", *map(str, arch_args)])
    return convert_namespace_to_omegaconf(args)


def _finish_folder(out_dir: str, data_bin: str, cfg, state: dict[str, torch.Tensor]) -> str:
    from omegaconf import OmegaConf, open_dict

    from vega_toolkit.data.vocabulary import VOCAB_ID_KEY, vocabulary_id

    for name in (DICT_FILE, SPM_FILE):
        src = os.path.join(data_bin, name)
        if not os.path.isfile(src):
            raise FileNotFoundError(
                f"--data-bin {data_bin}: no {name} (a vega-preprocess data-bin has dict.txt and spm.model)"
            )
    os.makedirs(out_dir, exist_ok=True)
    for name in (DICT_FILE, SPM_FILE):
        shutil.copyfile(os.path.join(data_bin, name), os.path.join(out_dir, name))
    with open_dict(cfg):
        cfg.task.data = "."  # from_pretrained and the recipes point it at the folder they load from
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    path = os.path.join(out_dir, MODEL_FILE)
    write_model_checkpoint(path, container, state, task_state={VOCAB_ID_KEY: vocabulary_id(out_dir)})
    return path


def export_checkpoint(checkpoint: str, data_bin: str, out_dir: str) -> str:
    """Model folder from a `vega-train` pretraining checkpoint (denoising_pretrain or masked_lm)."""
    from fairseq.data import Dictionary
    from omegaconf import open_dict

    from vega_toolkit.data.vocabulary import check_vocabulary, stored_vocabulary_id
    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu
    from vega_toolkit.models.replacement_generator import EMBEDDING_DELTA_KEY

    ckpt = load_checkpoint_to_cpu(checkpoint)
    cfg = ckpt.get("cfg")
    if cfg is None or cfg.get("model") is None or not str(cfg.model.get("_name", "")).startswith("vega"):
        raise ValueError(
            f"{checkpoint}: not a vega_encoder checkpoint (model config: "
            f"{None if cfg is None else cfg.get('model', {}).get('_name')})"
        )
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith(PRETRAINING_HEAD_PREFIXES)}
    if not os.path.isfile(os.path.join(data_bin, DICT_FILE)):
        raise FileNotFoundError(
            f"--data-bin {data_bin}: no {DICT_FILE} (a vega-preprocess data-bin has dict.txt and spm.model)"
        )
    check_vocabulary(checkpoint, stored_vocabulary_id(ckpt), data_bin, "--data-bin")
    delta = (ckpt.get("criterion") or {}).get(EMBEDDING_DELTA_KEY)
    if delta is not None:  # GDES: the discriminator's embedding is E_G + E_delta (the generator is not exported)
        merged = state[EMBEDDING_KEY] + delta.to(state[EMBEDDING_KEY].dtype)
        for key in (EMBEDDING_KEY, "encoder.lm_head.weight"):  # the tied output embedding is stored again
            if key in state:
                state[key] = merged
        logger.info("%s: merged the generator's embedding and the discriminator's GDES delta", checkpoint)
    vocab = len(Dictionary.load(os.path.join(data_bin, DICT_FILE)))
    rows = state[EMBEDDING_KEY].size(0)
    task_name = cfg.task.get("_name")
    if rows == vocab + 1 and task_name == "masked_lm":
        # fairseq's masked_lm appended <mask> as the last symbol; no fine-tuning input ever contains it
        for key in VOCAB_KEYS:
            if key in state:
                state[key] = state[key][:vocab].clone()
        logger.info("%s: dropped the <mask> embedding row of the masked_lm dictionary", checkpoint)
    elif rows != vocab:
        raise ValueError(
            f"{checkpoint}: {rows} embedding rows but {os.path.join(data_bin, DICT_FILE)} has {vocab} "
            f"symbols: was it trained on another data-bin?"
        )
    fresh = _pretraining_config(data_bin, ["--arch", cfg.model["_name"]])
    with open_dict(fresh):
        fresh.model = cfg.model
    return _finish_folder(out_dir, data_bin, fresh, state)


def export_random_init(
    arch: str, data_bin: str, out_dir: str, seed: int = 1, model_args: Iterable[str] | None = None
) -> str:
    """Model folder of a freshly initialised ARCH with DATA_BIN's tokenizer (the "no pretraining" arm)."""
    from fairseq import tasks

    cfg = _pretraining_config(data_bin, ["--arch", arch, "--seed", seed, *(model_args or [])])
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    model = task.build_model(cfg.model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(PRETRAINING_HEAD_PREFIXES)}
    return _finish_folder(out_dir, data_bin, cfg, state)
