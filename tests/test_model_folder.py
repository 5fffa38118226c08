"""`vega-convert export`: model folders from pretraining checkpoints (rtd_ternary, masked_lm) and from random init,
accepted by GLUE fine-tuning and by the hub loader."""

import os
import subprocess
import sys

import pytest
import torch
from glue_helpers import FIXTURES, vega_train

PRETRAIN_FLAGS = [
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
    "--tokens-per-sample",
    "64",
    "--batch-size",
    "8",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--max-update",
    "2",
    "--cpu",
    "--num-workers",
    "0",
    "--no-epoch-checkpoints",
    "--log-format",
    "simple",
    "--seed",
    "1",
]


def vega_convert(*args):
    cmd = [sys.executable, "-c", "from vega_toolkit.cli.convert import cli_main; cli_main()", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def pretrained(tiny_data_bin, tmp_path_factory):
    """checkpoint_last.pt of two real 2-update pretrainings on the same data-bin: rtd_ternary and masked_lm."""
    root = tmp_path_factory.mktemp("pretrained")
    out = {}
    for name, objective in (
        ("rtd", ["--task", "denoising_pretrain", "--criterion", "rtd_ternary"]),
        ("mlm", ["--task", "masked_lm", "--criterion", "masked_lm"]),
    ):
        proc = vega_train([str(tiny_data_bin), *objective, *PRETRAIN_FLAGS, "--save-dir", str(root / name)])
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = root / name / "checkpoint_last.pt"
    return out


def _state(folder):
    return torch.load(os.path.join(folder, "model.pt"), weights_only=False)


@pytest.mark.slow
def test_export_keeps_the_encoder_weights_and_drops_optimizer_state_and_pretraining_heads(
    pretrained, tiny_data_bin, tmp_path
):
    proc = vega_convert("export", pretrained["rtd"], "--data-bin", tiny_data_bin, tmp_path / "model")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "model")) == ["dict.txt", "model.pt", "spm.model"]
    exported = _state(tmp_path / "model")
    source = torch.load(pretrained["rtd"], weights_only=False)
    assert exported["last_optimizer_state"] is None
    assert not any(k.startswith("token_heads.") for k in exported["model"])
    assert any(k.startswith("token_heads.") for k in source["model"])  # the RTD head existed and was dropped
    for key, value in exported["model"].items():
        assert torch.equal(value, source["model"][key]), key


@pytest.mark.slow
def test_masked_lm_export_drops_the_mask_row_so_glue_fine_tuning_accepts_it(pretrained, tiny_data_bin, tmp_path):
    proc = vega_convert("export", pretrained["mlm"], "--data-bin", tiny_data_bin, tmp_path / "mlm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    source = torch.load(pretrained["mlm"], weights_only=False)["model"]
    exported = _state(tmp_path / "mlm")["model"]
    vocab = sum(1 for _ in open(tiny_data_bin / "dict.txt")) + 4  # fairseq's 4 specials precede dict.txt
    key = "encoder.embeddings.embed_tokens.weight"
    assert source[key].shape[0] == vocab + 1 and exported[key].shape[0] == vocab
    assert torch.equal(exported[key], source[key][:vocab])
    train = vega_train(
        [
            os.path.join(FIXTURES, "RTE"),
            "--task",
            "glue",
            "--glue-task",
            "RTE",
            "--vocab-dir",
            str(tmp_path / "mlm"),
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
            "--finetune-from-model",
            str(tmp_path / "mlm" / "model.pt"),
            "--criterion",
            "glue_prediction",
            "--classification-head-name",
            "rte_head",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--batch-size",
            "8",
            "--max-update",
            "2",
            "--cpu",
            "--num-workers",
            "0",
            "--glue-cache-dir",
            str(tmp_path / "cache"),
            "--save-dir",
            str(tmp_path / "rte"),
            "--no-epoch-checkpoints",
            "--log-format",
            "simple",
        ]
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "loaded checkpoint" in train.stdout + train.stderr or (tmp_path / "rte" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_random_init_export_is_seeded_and_loads_through_the_hub(tiny_data_bin, tmp_path):
    from vega_toolkit import VegaModel

    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        proc = vega_convert(
            "export",
            "--random-init",
            "--arch",
            "vega_tiny",
            "--seed",
            seed,
            "--data-bin",
            tiny_data_bin,
            tmp_path / name,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b, c = (_state(tmp_path / n)["model"] for n in "abc")
    key = "encoder.layers.0.fc1.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
    hub = VegaModel.from_pretrained(str(tmp_path / "a"))
    features = hub.extract_features(hub.encode("a short sentence"))
    assert features.shape[-1] == 128 and torch.isfinite(features).all()


@pytest.mark.slow
def test_export_names_the_mismatch_when_the_data_bin_is_not_the_checkpoints(pretrained, tmp_path):
    from glue_helpers import make_vocab_dir

    other = make_vocab_dir(str(tmp_path / "other"), vocab_size=60)
    proc = vega_convert("export", pretrained["rtd"], "--data-bin", other, tmp_path / "model")
    assert proc.returncode != 0
    # the vocabulary's identity stored in the checkpoint differs (vega_toolkit/data/vocabulary.py)
    assert "are not the ones" in proc.stderr and "dict.txt" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_export_of_a_missing_or_broken_checkpoint_is_one_line_naming_the_file(tiny_data_bin, tmp_path):
    broken = tmp_path / "checkpoint_last.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    for checkpoint, says in ((tmp_path / "nope.pt", "checkpoint not found"), (broken, "corrupt or truncated")):
        proc = vega_convert("export", checkpoint, "--data-bin", tiny_data_bin, tmp_path / "model")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert (
            proc.stderr.startswith("vega-convert export: ") and str(checkpoint) in proc.stderr and says in proc.stderr
        )
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_export_usage_errors_name_the_flag(tiny_data_bin, tmp_path):
    proc = vega_convert("export", "--random-init", "--data-bin", tiny_data_bin, tmp_path / "m")
    assert proc.returncode == 2 and "--arch" in proc.stderr
    proc = vega_convert("export", "--data-bin", tiny_data_bin, tmp_path / "m")
    assert proc.returncode == 2 and "CHECKPOINT OUT_DIR" in proc.stderr
