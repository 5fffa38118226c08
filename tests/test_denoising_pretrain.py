"""The denoising_pretrain task: block layout, batches, seeding, errors, and short real trainings (RTD, MLM)."""

import re
import subprocess
import sys

import pytest
import torch

from vega_toolkit.data.noising import IGNORE_INDEX
from vega_toolkit.tasks.denoising_pretrain import DenoisingPretrainConfig, DenoisingPretrainTask

TRAIN = [sys.executable, "-m", "vega_toolkit.cli.train"]


def make_task(data_bin, **overrides):
    cfg = DenoisingPretrainConfig(data=str(data_bin), seed=7, **overrides)
    return DenoisingPretrainTask.setup_task(cfg)


@pytest.mark.parametrize("mode", ["none", "complete", "eos"])
def test_every_block_is_cls_text_sep_and_fits_tokens_per_sample(tiny_data_bin, mode):
    task = make_task(tiny_data_bin, tokens_per_sample=32, sample_break_mode=mode)
    blocks = task.load_blocks("train")
    d = task.source_dictionary
    assert len(blocks) > 0
    for i in range(len(blocks)):
        block = blocks[i]
        assert block[0] == d.bos() and block[-1] == d.eos(), (mode, i)
        assert 3 <= len(block) <= 32
        assert len(block) <= blocks.sizes[i]  # batching never under-estimates a block
        assert block[1] != d.eos() and (block[1:-1] != d.bos()).all()


def test_batch_holds_corrupted_input_clean_copy_and_ternary_labels(tiny_data_bin):
    task = make_task(tiny_data_bin, tokens_per_sample=64)
    task.load_dataset("train")
    ds = task.dataset("train")
    batch = ds.collater([ds[i] for i in range(16)])
    src, orig, target = batch["net_input"]["src_tokens"], batch["original_tokens"], batch["target"]
    pad = task.source_dictionary.pad()
    assert src.shape == orig.shape == target.shape
    assert torch.equal(src == pad, orig == pad)
    assert (target[orig == pad] == IGNORE_INDEX).all()
    assert torch.equal(src != orig, (target == 1) | (target == 2))
    assert (target == 1).any() and (target == 2).any()
    assert batch["ntokens"] == int((orig != pad).sum())


def test_training_noise_changes_each_epoch_and_validation_noise_does_not(tiny_data_bin):
    task = make_task(tiny_data_bin, tokens_per_sample=64)

    def noised(split, epoch):
        task.load_dataset(split)
        ds = task.dataset(split)
        ds.set_epoch(epoch)
        return torch.cat([ds[i]["source"] for i in range(8)])

    assert torch.equal(noised("train", 1), noised("train", 1))
    assert not torch.equal(noised("train", 1), noised("train", 2))
    assert torch.equal(noised("valid", 1), noised("valid", 2))


def test_missing_data_bin_is_reported_with_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "dict.txt"))):
        make_task(tmp_path)


def run_train(args, timeout=300):
    out = subprocess.run(
        TRAIN + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


COMMON = [
    "--arch",
    "vega_tiny",
    "--tokens-per-sample",
    "64",
    "--batch-size",
    "16",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--log-format",
    "simple",
    "--log-interval",
    "5",
    "--cpu",
    "--num-workers",
    "0",
    "--seed",
    "1",
    "--no-save",
]


@pytest.mark.slow
def test_vega_train_rtd_ternary_logs_every_rtd_metric(tiny_data_bin):
    log = run_train(
        [tiny_data_bin, "--task", "denoising_pretrain", "--criterion", "rtd_ternary", "--max-update", "10", *COMMON]
    )
    valid = [line for line in log.splitlines() if "valid on 'valid' subset" in line][-1]
    for key in ("loss", "rtd_acc", "orig_recall", "shuf_recall", "repl_recall", "shuf_frac", "repl_frac"):
        assert re.search(rf"\| {key} [0-9.]+", valid), (key, valid)


@pytest.mark.slow
def test_masked_lm_baseline_trains_vega_encoder_on_the_same_data_bin(tiny_data_bin):
    log = run_train([tiny_data_bin, "--task", "masked_lm", "--criterion", "masked_lm", "--max-update", "30", *COMMON])
    losses = [float(x) for x in re.findall(r"train_inner.*?loss=([0-9.]+)", log)]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
