"""Checkpoints written by `vega-train` reload under torch 2.13 (weights_only default) and give identical outputs."""

import pickle
import subprocess
import sys

import pytest
import torch

import vega_toolkit
from vega_toolkit.io import atomic, checkpoints

TRAIN = [sys.executable, "-m", "vega_toolkit.cli.train"]


@pytest.fixture(scope="module")
def trained_run(tiny_data_bin, tmp_path_factory):
    """A tiny vega_encoder trained for a few updates by the real CLI, checkpointing every 3 updates."""
    save_dir = tmp_path_factory.mktemp("ckpt")
    args = [
        str(tiny_data_bin),
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        "--arch",
        "vega_tiny",
        "--tokens-per-sample",
        "64",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--save-dir",
        str(save_dir),
        "--cpu",
        "--save-interval-updates",
        "3",
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
        "--seed",
        "3",
    ]
    subprocess.run(TRAIN + args + ["--max-update", "6"], check=True, capture_output=True)
    return save_dir, args


@pytest.fixture(scope="module")
def legacy_arch_run(tiny_data_bin, tmp_path_factory):
    """fairseq's own legacy-arch RoBERTa (the MLM baseline's usual model): its checkpoints pickle argparse.Namespace,
    which torch 2.13's weights-only loader refuses unless allow-listed."""
    save_dir = tmp_path_factory.mktemp("legacy")
    args = [
        str(tiny_data_bin),
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        "--arch",
        "roberta_base",
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
        "--save-dir",
        str(save_dir),
        "--cpu",
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
    ]
    subprocess.run(TRAIN + args + ["--max-update", "3"], check=True, capture_output=True)
    return save_dir, args


ALLOWED = {f"{g.__module__}.{g.__qualname__}" for g in checkpoints.checkpoint_globals()}


@pytest.mark.slow
def test_checkpoints_need_only_allow_listed_globals(trained_run, legacy_arch_run):
    for save_dir, _ in (trained_run, legacy_arch_run):
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(save_dir / "checkpoint_last.pt")))
        assert unsafe <= ALLOWED


@pytest.mark.slow
def test_legacy_checkpoint_resumes_although_plain_torch_load_refuses_it(legacy_arch_run):
    save_dir, args = legacy_arch_run
    # the allow-list is scoped to fairseq's loading sites: torch.load elsewhere keeps its weights-only protection
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(save_dir / "checkpoint_last.pt")
    out = subprocess.run(TRAIN + args + ["--max-update", "5"], check=True, capture_output=True, text=True)
    assert "Loaded checkpoint" in out.stdout + out.stderr
    state = checkpoints.load_checkpoint_to_cpu(str(save_dir / "checkpoint_last.pt"))
    assert state["cfg"].model.encoder_layers == 1


@pytest.mark.slow
def test_training_resumes_from_checkpoint_last(trained_run):
    save_dir, args = trained_run
    out = subprocess.run(TRAIN + args + ["--max-update", "9"], check=True, capture_output=True, text=True)
    log = out.stdout + out.stderr
    assert "Loaded checkpoint" in log and "@ 6 updates" in log
    state = checkpoints.load_checkpoint_to_cpu(str(save_dir / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 9


@pytest.mark.slow
def test_reloaded_model_gives_identical_outputs_through_fairseq_and_hub(trained_run, tiny_data_bin):
    from fairseq import checkpoint_utils

    save_dir, _ = trained_run
    path = str(save_dir / "checkpoint_best.pt")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={"data": str(tiny_data_bin)})
    fairseq_model = models[0].eval()
    hub = vega_toolkit.VegaModel.from_pretrained(
        str(save_dir), checkpoint_file="checkpoint_best.pt", data_name_or_path=str(tiny_data_bin)
    ).eval()
    tokens = hub.encode("the old farmer found a letter .", "anna sold the boat .")
    with torch.no_grad():
        expected, _ = fairseq_model(tokens.unsqueeze(0), features_only=True)
        assert torch.equal(hub.extract_features(tokens), expected)
    # the saved weights are exactly the ones fairseq restored
    state = checkpoints.load_checkpoint_to_cpu(path)
    for name, tensor in fairseq_model.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name


@pytest.mark.slow
def test_corrupt_checkpoint_error_names_the_file_and_the_earlier_checkpoints(trained_run, tmp_path):
    save_dir, _ = trained_run
    good = (save_dir / "checkpoint_last.pt").read_bytes()
    broken = tmp_path / "checkpoint_last.pt"
    broken.write_bytes(good[: len(good) // 3])
    (tmp_path / "checkpoint_1_3.pt").write_bytes(good)
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint_to_cpu(str(broken))
    message = str(error.value)
    assert str(broken) in message and "corrupt or truncated" in message
    # the advice holds for every run kind (GLUE runs cannot add --restore-file to their --finetune-from-model)
    assert "checkpoint_1_3.pt" in message and "vega-train resumes from the newest readable one" in message
    assert "--restore-file" not in message


def test_a_file_that_is_no_torch_checkpoint_is_reported_as_corrupt_not_as_an_allow_list_matter(tmp_path):
    garbage = tmp_path / "checkpoint_last.pt"
    garbage.write_text("<html>404 Not Found</html>\n")  # e.g. a failed download saved under the checkpoint's name
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint_to_cpu(str(garbage))
    message = str(error.value)
    assert str(garbage) in message and "corrupt or truncated" in message and "not a torch.save file" in message
    assert "allow-list" not in message and "weights_only" not in message
    # the memory-mapped peek (vega-glue arch, the finished-run check) says the same, where torch's unpickler raised
    # a bare KeyError of a memo index
    with pytest.raises(checkpoints.CheckpointError, match="not a torch.save file"):
        checkpoints.peek_checkpoint(str(garbage))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="not found"):
        checkpoints.load_checkpoint_to_cpu(str(tmp_path / "nope.pt"))


@pytest.mark.slow
def test_checkpoints_get_the_umask_mode_so_a_shared_folder_stays_readable(trained_run, tmp_path):
    import os

    umask = os.umask(0o022)  # what vega-train's subprocess ran with, read back; 0o022 for the write below
    os.umask(umask)
    save_dir, _ = trained_run
    written = sorted(save_dir.glob("checkpoint*.pt"))
    assert len(written) >= 3  # written (checkpoint_1_3.pt) and copied (checkpoint_best.pt, checkpoint_last.pt)
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path  # mkstemp alone gives 0o600
    old = os.umask(0o027)
    try:
        atomic.atomic_write(str(tmp_path / "group.pt"), lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "group.pt").stat().st_mode & 0o777 == 0o640
