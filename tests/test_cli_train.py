"""`vega-train` is fairseq-train with the plugins; stock `fairseq-train --user-dir user_dir` sees the same."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kw)


def test_importing_the_package_registers_every_component():
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    import vega_toolkit  # noqa: F401

    assert "vega_encoder" in MODEL_REGISTRY
    assert {"vega_tiny", "vega_small", "vega_base", "vega_large", "vega_v1_1_3b"} <= set(ARCH_MODEL_REGISTRY)
    assert {"denoising_pretrain", "glue", "glue_transductive", "glue_self_calibrated"} <= set(TASK_REGISTRY)
    assert {"rtd_ternary", "rtd_contrastive", "adversarial_ce"} <= set(CRITERION_REGISTRY)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "vega-train"), "--help"],
        [str(BIN / "fairseq-train"), "--user-dir", "user_dir", "--arch", "vega_base", "--help"],
    ],
)
def test_help_lists_the_encoder_options(command):
    out = run(command)
    assert out.returncode == 0, out.stderr
    for flag in ("--position-buckets", "--max-relative-positions", "--attention-impl", "--checkpoint-activations"):
        assert flag in out.stdout, flag


@pytest.mark.slow
def test_help_lists_the_chosen_task_and_criterion_options():
    out = run([str(BIN / "vega-train"), "--task", "denoising_pretrain", "--criterion", "rtd_contrastive", "--help"])
    assert "--shuffle-prob" in out.stdout and "--temperature" in out.stdout


def test_bf16_does_not_select_fairseqs_tpu_code_path(tiny_data_bin):
    """vega-train's parser and fairseq's own (what `fairseq-train --user-dir user_dir` uses) alike."""
    from fairseq import options

    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    argv = [str(tiny_data_bin), "--task", "masked_lm", "--arch", "vega_tiny", "--bf16", "--cpu"]
    args = parse_training_args(with_user_dir(argv))
    assert args.bf16 and not args.tpu
    stock = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    assert stock.bf16 and not stock.tpu
    assert options.parse_args_and_arch(options.get_training_parser(), input_args=argv + ["--tpu"]).tpu


@pytest.mark.slow
def test_unknown_architecture_is_reported_by_flag():
    out = run([str(BIN / "vega-train"), "/nonexistent", "--arch", "vega_huge"])
    assert out.returncode != 0 and "--arch" in out.stderr and "vega_huge" in out.stderr
