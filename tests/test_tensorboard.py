"""`--tensorboard-logdir`: fairseq's tensorboardX event files hold the RTD metrics of a tiny pretraining run."""

import pytest
from launch_helpers import pretrain_args, vega_train

from vega_toolkit.metrics.tensorboard import read_scalars


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_rtd_training_and_validation_metrics(tiny_data_bin, tmp_path):
    logdir = tmp_path / "tb"
    args = pretrain_args(tiny_data_bin, tmp_path / "ckpt", 10, "--tensorboard-logdir", logdir)
    args.remove("--disable-validation")
    vega_train(args + ["--validate-interval-updates", "5", "--log-interval", "1"])

    inner, valid = read_scalars(logdir / "train_inner"), read_scalars(logdir / "valid")
    for key in ("loss", "rtd_acc", "orig_recall", "shuf_recall", "repl_recall"):
        assert [step for step, _ in inner[key]] == list(range(1, 11)), (key, sorted(inner))
        assert [step for step, _ in valid[key]] == [5, 10], (key, sorted(valid))
    assert all(0.0 <= value <= 1.0 for _, value in inner["rtd_acc"] + valid["rtd_acc"])


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_glue_fine_tuning_metrics(tmp_path):
    from glue_helpers import FIXTURES, glue_train_args, make_vocab_dir

    vocab = make_vocab_dir(str(tmp_path / "vocab"))
    logdir = tmp_path / "tb"
    args = glue_train_args(
        "RTE",
        f"{FIXTURES}/RTE",
        vocab,
        str(tmp_path / "ckpt"),
        str(tmp_path / "cache"),
        ["--criterion", "glue_prediction", "--no-save", "--tensorboard-logdir", str(logdir), "--log-interval", "1"],
    )
    vega_train(args)
    train, valid = read_scalars(logdir / "train"), read_scalars(logdir / "valid")
    assert train["loss"] and valid["loss"], (sorted(train), sorted(valid))
    assert "accuracy" in valid and 0.0 <= valid["accuracy"][-1][1] <= 100.0, sorted(valid)
