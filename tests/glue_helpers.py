"""Helpers shared by the GLUE tests: a tiny model folder (spm.model + dict.txt, optionally model.pt) built from
the synthetic fixtures in tests/fixtures/glue."""

import collections
import glob
import os
import re
import subprocess
import sys
from pathlib import Path

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "glue")
TINY_ARCH = [
    "--arch",
    "vega_tiny",
    "--encoder-layers",
    "1",
    "--encoder-embed-dim",
    "32",
    "--encoder-ffn-embed-dim",
    "64",
    "--encoder-attention-heads",
    "2",
    "--position-buckets",
    "16",
    "--max-positions",
    "64",
]


def make_vocab_dir(out_dir: str, vocab_size: int = 120) -> str:
    """Train a sentencepiece model on every fixture sentence and write the matching fairseq dict.txt."""
    import sentencepiece as spm

    from vega_toolkit.data.corpus_pipeline import write_dictionary
    from vega_toolkit.data.glue_readers import read_glue_file
    from vega_toolkit.data.glue_tasks import GLUE_TASKS

    os.makedirs(out_dir, exist_ok=True)
    texts = []
    for task in GLUE_TASKS.values():
        for split, spec in task.splits.items():
            for ex in read_glue_file(os.path.join(FIXTURES, task.folder, spec.file), task, split):
                texts += [ex.text_a] + ([ex.text_b] if ex.text_b else [])
    corpus = os.path.join(out_dir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=os.path.join(out_dir, "spm"),
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
    )
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out_dir, "spm.model"))
    counts = collections.Counter(p for t in texts for p in sp.encode(t, out_type=str))
    write_dictionary(Path(out_dir) / "spm.model", counts, Path(out_dir) / "dict.txt")
    os.remove(corpus)
    return out_dir


def vega_cli(module, args, env=None, cwd=None):
    """Run the CLI `vega_toolkit.cli.<module>` in a subprocess (fairseq keeps global state) with one thread."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    cmd = [sys.executable, "-c", f"from vega_toolkit.cli.{module} import cli_main; cli_main()"] + list(args)
    return subprocess.run(cmd, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=300)


def vega_train(args, env=None, cwd=None):
    return vega_cli("train", args, env, cwd)


def glue_train_args(task, data, vocab_dir, save_dir, cache_dir, extra=()):
    return [
        data,
        "--task",
        "glue",
        "--glue-task",
        task,
        "--vocab-dir",
        vocab_dir,
        "--glue-cache-dir",
        cache_dir,
        "--save-dir",
        save_dir,
        *TINY_ARCH,
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--max-epoch",
        "1",
        "--cpu",
        "--num-workers",
        "0",
        "--no-progress-bar",
        "--log-format",
        "simple",
        "--seed",
        "1",
        *extra,
    ]


def checkpoints(save_dir):
    return sorted(glob.glob(os.path.join(save_dir, "*.pt")))


def build_glue(task, vocab_dir, cache_dir, extra=(), data=None):
    """Parse a vega-train command line in-process and build (cfg, task, model, criterion) with fairseq's own code."""
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    argv = glue_train_args(task, data or os.path.join(FIXTURES, task), vocab_dir, "/nonexistent", cache_dir, extra)
    cfg = convert_namespace_to_omegaconf(parse_training_args(with_user_dir(argv)))
    glue = tasks.setup_task(cfg.task)
    model = glue.build_model(cfg.model)
    return cfg, glue, model, glue.build_criterion(cfg.criterion)


def make_model_dir(out_dir: str, cache_dir: str) -> str:
    """A model folder (model.pt + dict.txt + spm.model) holding a vega_tiny encoder briefly trained on the SST-2
    fixture, standing in for a pretrained model in recipe and vega-generate tests."""
    import shutil

    make_vocab_dir(out_dir)
    save = os.path.join(out_dir, "train")
    r = vega_train(
        glue_train_args(
            "SST-2",
            os.path.join(FIXTURES, "SST-2"),
            out_dir,
            save,
            cache_dir,
            [
                "--criterion",
                "glue_prediction",
                "--no-epoch-checkpoints",
                "--classification-head-name",
                "pretrain_probe_head",
            ],
        )
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    shutil.copyfile(os.path.join(save, "checkpoint_last.pt"), os.path.join(out_dir, "model.pt"))
    shutil.rmtree(save)
    return out_dir


def recipe_env(glue_dir, model_dir, out, cache_dir, **extra):
    bin_dir = os.path.dirname(sys.executable)  # the venv's vega-train / vega-generate / vega-glue
    # GENERATE_ARGS: fixtures have 12 test rows, not the official counts vega-generate otherwise insists on
    env = dict(
        os.environ,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        GLUE_DIR=glue_dir,
        PRETRAINED=model_dir,
        OUT=out,
        SCALE="tiny",
        VEGA_CACHE_DIR=cache_dir,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        GENERATE_ARGS="--allow-partial",
    )
    env.update(extra)
    return env


def save_glue_checkpoint(path, cfg, model):
    """Write a model in fairseq's checkpoint layout ({"cfg", "model"}), as the trainer's save does, without
    training: prediction tests need the layout and the task config, not trained weights."""
    import torch
    from omegaconf import OmegaConf

    torch.save(
        {
            "cfg": OmegaConf.to_container(cfg, resolve=True),
            "model": model.state_dict(),
            "args": None,
            "extra_state": {"epoch": 1},
            "optimizer_history": [
                {
                    "criterion_name": "GluePredictionCriterion",
                    "optimizer_name": "Adam",
                    "lr_scheduler_state": {},
                    "num_updates": 0,
                }
            ],
        },
        path,
    )
    return path


def model_overrides(model_dir):
    """The Hydra overrides for the encoder of a model folder: what the recipes read with `vega-glue info`."""
    from vega_toolkit.cli.glue import arch_flags

    arch = arch_flags(model_dir)  # `--arch vega_tiny --encoder-layers 1 ...`
    return [f"model._name={arch[1]}"] + flag_overrides(arch, "model", {a for a in arch[2:] if a.startswith("--")})


def flag_overrides(argv, group, flags):
    """`--encoder-layers 1` -> `++model.encoder_layers=1` for the given flags of argv."""
    out = []
    for i, arg in enumerate(argv):
        if arg in flags:
            value = argv[i + 1]
            value = value if re.fullmatch(r"-?[0-9.e-]+", value) else f"'{value}'"
            out.append(f"++{group}.{arg[2:].replace('-', '_')}={value}")  # ++: set, whether the yaml has it or not
    return out
