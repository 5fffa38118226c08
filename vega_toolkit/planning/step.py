"""One training update of a `vega-train` command line: the real task, model, criterion and fairseq optimizer, built
by fairseq's own Trainer from the same flags, and the update as the Trainer runs it.

    from vega_toolkit.planning.step import (parse_plan_command, training_config, build_task, build_trainer,
                                            make_batch, run_update)
    cfg = training_config(parse_plan_command(["--task", "denoising_pretrain", "--criterion", "rtd_ternary",
                                              "--arch", "vega_tiny", "--tokens-per-sample", "128", "--batch-size", "8",
                                              "--optimizer", "adam", "--bf16"]))
    task = build_task(cfg, vocab_size=128100)
    trainer = build_trainer(cfg, task)                 # under FakeTensorMode for a plan, for real to measure
    run_update(trainer, make_batch(task, cfg.dataset.batch_size, cfg.task.tokens_per_sample))

Used by vega-plan (under fake tensors, vega_toolkit/planning/plan.py) and by the measurements it is checked against
(benchmarks/plan_validation_cpu.py on CPU, benchmarks/planner_calibration.py on a GPU): the planned step and the
measured step are the same code.
"""

import argparse
from collections.abc import Callable

import torch

# Where a command line has no DATA (it starts with a flag), the plan stands in for it: the vocabulary then comes
# from --vocab-size instead of DATA/dict.txt.
NO_DATA = "<no data-bin: vocabulary of --vocab-size rows>"
DEFAULT_VOCAB = 128100  # DeBERTa-v3's sentencepiece vocabulary, as `vega-convert count-params`
PLANNED_TASKS = ("denoising_pretrain",)


class PlanInputError(ValueError):
    """A configuration the planner (or the model) rejects; the message names the flag."""


def parse_plan_command(argv: list[str], add_extra_args: Callable | None = None) -> argparse.Namespace:
    """vega-train's parser over ``argv`` (DATA optional: see ``NO_DATA``), plus the caller's extra flags."""
    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        argv = [NO_DATA] + argv
    return parse_training_args(with_user_dir(argv), add_extra_args=add_extra_args)


def training_config(args):
    """fairseq's config of the parsed command line (dataclass defaults filled in), converted once: the conversion
    composes Hydra configs and takes seconds."""
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    return convert_namespace_to_omegaconf(args)


def with_overrides(cfg, batch_size: int | None = None, checkpoint: bool | None = None, **fields):
    """A copy of ``cfg`` with another batch size / activation checkpointing / ``section__field=value`` settings."""
    import copy

    from omegaconf import open_dict

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        if batch_size is not None:
            cfg.dataset.batch_size = batch_size
        if checkpoint is not None:
            cfg.model.checkpoint_activations = checkpoint
        for key, value in fields.items():
            section, name = key.split("__")
            cfg[section][name] = value
    return cfg


def check_configuration(cfg):
    """What the model or fairseq would reject only deep inside the step (or silently accept), as one-line errors."""
    model, task = cfg.model, cfg.task
    if task._name not in PLANNED_TASKS:
        raise PlanInputError(f"--task {task._name}: vega-plan makes batches for {', '.join(PLANNED_TASKS)} only")
    batch_size = cfg.dataset.batch_size
    if not batch_size or batch_size < 1:
        raise PlanInputError(f"--batch-size must be a positive number of sequences, got {batch_size}")
    if task.tokens_per_sample < 3:
        raise PlanInputError(f"--tokens-per-sample must be >= 3 (<s> token </s>), got {task.tokens_per_sample}")
    max_positions = model.get("max_positions")
    if max_positions and task.tokens_per_sample > max_positions:
        raise PlanInputError(
            f"--tokens-per-sample {task.tokens_per_sample} is longer than the model's --max-positions {max_positions}"
        )
    heads, dim = model.encoder_attention_heads, model.encoder_embed_dim
    if heads < 1 or dim < 1 or model.encoder_layers < 1:
        raise PlanInputError(
            f"--encoder-layers, --encoder-embed-dim and --encoder-attention-heads must be positive, "
            f"got {model.encoder_layers}, {dim}, {heads}"
        )
    if not model.get("attention_head_dim", 0) and dim % heads:
        raise PlanInputError(
            f"--encoder-attention-heads {heads} does not divide --encoder-embed-dim {dim} "
            "(or give --attention-head-dim)"
        )
    if min(cfg.optimization.update_freq) < 1:
        raise PlanInputError(f"--update-freq must be >= 1, got {cfg.optimization.update_freq[0]}")


def synthetic_dictionary(vocab_size: int):
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i in range(vocab_size - len(dictionary)):
        dictionary.add_symbol(f"w{i}")
    return dictionary


def build_task(cfg, vocab_size: int = DEFAULT_VOCAB):
    """The task of ``cfg``: DATA's dictionary where a data-bin is given, else ``vocab_size`` placeholder rows."""
    from fairseq import tasks

    if cfg.task.data == NO_DATA:
        return tasks.TASK_REGISTRY[cfg.task._name](cfg.task, synthetic_dictionary(vocab_size))
    return tasks.setup_task(cfg.task)


def build_trainer(cfg, task):
    """fairseq's Trainer for ``cfg``: the task's model and criterion, cast to the run's dtype, and the fairseq
    optimizer (fp16/bf16 wrapped as the flags say), in this process only (DDP's buffers are the plan's to add)."""
    from fairseq.trainer import Trainer

    cfg = with_overrides(cfg, distributed_training__distributed_world_size=1, distributed_training__distributed_rank=0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    trainer.optimizer  # noqa: B018 -- fairseq builds the (fp16/bf16 wrapped) optimizer on first access
    return trainer


def make_batch(task, batch_size: int, length: int, seed: int = 1):
    """A full batch of ``batch_size`` blocks of ``length`` tokens (no padding: the largest a batch gets), corrupted
    by the task's own noising, as the task's collater lays it out."""
    from vega_toolkit.data.noising import RTDNoisingDataset

    d = task.source_dictionary
    generator = torch.Generator().manual_seed(seed)
    blocks = [
        torch.cat(
            [
                torch.tensor([d.bos()]),
                torch.randint(d.nspecial, len(d), (length - 2,), generator=generator),
                torch.tensor([d.eos()]),
            ]
        )
        for _ in range(batch_size)
    ]
    dataset = RTDNoisingDataset(blocks, task.noiser, d.pad(), seed=seed)
    return dataset.collater([dataset[i] for i in range(batch_size)])


def forward_backward(trainer, sample, update_num: int = 0):
    """The first half of fairseq's Trainer.train_step: forward and backward; returns the sample size."""
    trainer.model.train()
    trainer.criterion.train()
    trainer.zero_grad()
    loss, sample_size, _ = trainer.task.train_step(
        sample, trainer.model, trainer.criterion, trainer.optimizer, update_num
    )
    del loss
    return sample_size


def optimizer_update(trainer, sample_size, update_num: int = 0):
    """The second half: gradients normalised by the sample size, clipped, and the optimizer's step."""
    optimizer = trainer.optimizer
    scaler = getattr(optimizer, "scaler", None)
    # fp16's dynamic loss scaler reads the gradient norm on the host to detect overflow; its arithmetic is
    # scalar, so the step's memory is the same without it.
    if scaler is not None:
        optimizer.scaler = None
    try:
        optimizer.multiply_grads(1.0 / float(sample_size or 1))
        optimizer.clip_grad_norm(trainer.cfg.optimization.clip_norm)
        trainer.task.optimizer_step(optimizer, model=trainer.model, update_num=update_num)
    finally:
        if scaler is not None:
            optimizer.scaler = scaler


def run_update(trainer, sample, update_num: int = 0):
    """One update as fairseq's Trainer.train_step runs it (forward, backward, gradient normalisation, clipping,
    optimizer step), without its logging and NaN checks, which read values on the host."""
    optimizer_update(trainer, forward_backward(trainer, sample, update_num), update_num)


def encoder_step(model, tokens, autocast_device: str):
    """benchmarks/encoder_speed.py's step: the encoder's forward and backward of a squared-output loss under bf16
    autocast (fp32 weights, gradients accumulated, no optimizer)."""
    with torch.autocast(autocast_device, dtype=torch.bfloat16):
        out = model(tokens, features_only=True)[0]
    out.float().pow(2).mean().backward()
