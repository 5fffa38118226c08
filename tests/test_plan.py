"""vega-plan: the traced peak against a real CPU update, the H200 measurements, the report's last line and JSON, the
errors of bad input, and which parameters pretraining leaves without a gradient (why the paper recipe keeps
--find-unused-parameters)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

PLAN = [sys.executable, "-m", "vega_toolkit.cli.plan"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
RTD = [
    "--task",
    "denoising_pretrain",
    "--criterion",
    "rtd_ternary",
    "--optimizer",
    "adam",
    "--lr",
    "1e-4",
    "--clip-norm",
    "1.0",
]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpointed"])
def test_traced_cpu_peak_is_within_15_percent_of_a_real_cpu_update(checkpoint):
    # the two smallest rows of benchmarks/plan_validation_cpu.py (benchmarks/README.md has them all)
    from vega_toolkit.planning.measure import measure_cpu_peak
    from vega_toolkit.planning.step import parse_plan_command, training_config
    from vega_toolkit.planning.trace import trace_update

    argv = (
        RTD
        + ["--cpu", "--arch", "vega_tiny", "--tokens-per-sample", "128", "--batch-size", "32"]
        + (["--checkpoint-activations"] if checkpoint else [])
    )
    measured = measure_cpu_peak(argv, vocab_size=8000)
    traced = trace_update(training_config(parse_plan_command(argv)), 8000, "cpu")
    assert abs(traced.peak_bytes / measured - 1) <= 0.15, (traced.peak_bytes, measured)
    # checkpointing keeps only the layer inputs for backward
    assert (traced.at_peak["kept for backward (activations)"] < 20 * 2**20) == checkpoint


def test_h200_peak_of_the_small_encoder_is_predicted_within_15_percent():
    # one row of benchmarks/calibration/h200.json (`vega-plan --validate` predicts all four)
    from vega_toolkit.planning.calibration import load_calibration
    from vega_toolkit.planning.plan import trace_row

    rows = load_calibration(os.path.join(ROOT, "benchmarks", "calibration", "h200.json")).rows
    row = next(r for r in rows if r.name.startswith("4x384 L=128"))
    predicted = trace_row(row).peak_bytes
    assert abs(predicted / row.peak_allocated_bytes - 1) <= 0.15


@pytest.mark.slow
def test_cuda_trace_keeps_no_attention_probabilities_where_the_cpu_core_does():
    # CUDA's memory-efficient kernel saves a logsumexp, not [B, H, L, L] probabilities (planning/cuda_model.py)
    from vega_toolkit.planning.step import parse_plan_command, training_config
    from vega_toolkit.planning.trace import trace_update

    cfg = training_config(
        parse_plan_command(RTD + ["--arch", "vega_tiny", "--tokens-per-sample", "256", "--batch-size", "8"])
    )
    kept = {
        device: trace_update(cfg, 8000, device).at_peak["kept for backward (activations)"] for device in ("cpu", "cuda")
    }
    probabilities = 2 * 8 * 2 * 256 * 256 * 4  # two layers' [B, H, L, L] fp32 probabilities
    assert kept["cpu"] - kept["cuda"] >= probabilities


@pytest.mark.slow
def test_last_line_and_json_of_a_plan():
    argv = RTD + [
        "--arch",
        "vega_tiny",
        "--tokens-per-sample",
        "128",
        "--batch-size",
        "16",
        "--max-update",
        "1000",
        "--vocab-size",
        "8000",
        "--gpu",
        "h100-80gb",
        "--gpus",
        "16",
        "--no-search",
    ]
    out = subprocess.run(PLAN + argv, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"plan vega_tiny h100-80gb x16: peak \d+\.\d\d GiB/GPU \((fits|does not fit)\), "
        r"\d+\.\d days for 1000 updates at MFU \d\.\d{3}",
        last,
    ), last
    from vega_toolkit.cli.plan import cli_main

    plan = json.loads(_run_in_process(cli_main, argv + ["--json"])[1])
    for key in ("peak_bytes", "fits", "max_batch_size", "max_batch_size_checkpointed", "flops_per_token", "days"):
        assert key in plan
    assert plan["fits"] is True and plan["summary"] == last
    # executed FLOPs: at least the dense layers' 6 x (non-embedding parameters) per token
    assert plan["flops_per_token"] > 6 * (plan["parameters"] - 8000 * 128)


def test_parallel_tracing_gives_the_serial_plan_and_keeps_the_childrens_traces():
    from vega_toolkit.planning import plan as planning

    argv = RTD + [
        "--arch",
        "vega_tiny",
        "--tokens-per-sample",
        "128",
        "--batch-size",
        "16",
        "--vocab-size",
        "8000",
        "--gpu",
        "a100-40gb",
        "--gpu-memory",
        "1.5",
        "--gpus",
        "8",
    ]  # a small card: the search traces
    planning._TRACES.clear()
    serial = planning.plan_json(planning.make_plan(argv + ["--jobs", "1"]))
    serial_traces = dict(planning._TRACES)
    planning._TRACES.clear()
    parallel = planning.plan_json(planning.make_plan(argv + ["--jobs", "3"]))
    assert parallel == serial
    assert set(planning._TRACES) == set(serial_traces) and len(serial_traces) > 3  # the searches traced too


def test_an_error_in_a_tracing_child_is_raised_by_the_parent():
    from vega_toolkit.planning.plan import in_parallel
    from vega_toolkit.planning.step import PlanInputError

    def refused():
        raise PlanInputError("--tokens-per-sample 9999 is longer than the model's --max-positions 512")

    assert in_parallel(2, lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]
    with pytest.raises(PlanInputError, match="--max-positions 512"):
        in_parallel(2, lambda: 1, refused)


def _run_in_process(cli_main, argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--gpu", "v100"], "--gpu 'v100' is not one of"),
        (["--encoder-attention-heads", "3"], "--encoder-attention-heads 3 does not divide --encoder-embed-dim 128"),
        (["--tokens-per-sample", "1024"], "--tokens-per-sample 1024 is longer than the model's --max-positions 512"),
        (["--batch-size", "0"], "--batch-size must be a positive number of sequences, got 0"),
        (["--jobs", "0"], "--jobs must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_error_line(extra, message):
    from vega_toolkit.cli.plan import cli_main

    argv = RTD + ["--arch", "vega_tiny", "--tokens-per-sample", "128", "--batch-size", "8"]
    code, out, err = _run_in_process(cli_main, argv + extra)
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("vega-plan:")]
    assert len(lines) == 1 and message in lines[0], err


def test_rtd_pretraining_leaves_exactly_the_lm_heads_own_parameters_without_gradient():
    # why recipes/pretrain/phase1_rtd.sh SCALE=paper keeps --find-unused-parameters: DDP would otherwise wait
    # forever for these gradients
    from vega_toolkit.planning.step import (
        build_task,
        build_trainer,
        forward_backward,
        make_batch,
        parse_plan_command,
        training_config,
    )

    for checkpoint in ([], ["--checkpoint-activations"]):
        cfg = training_config(
            parse_plan_command(
                RTD + ["--cpu", "--arch", "vega_tiny", "--tokens-per-sample", "32", "--batch-size", "2", *checkpoint]
            )
        )
        task = build_task(cfg, 1000)
        trainer = build_trainer(cfg, task)
        forward_backward(trainer, make_batch(task, 2, 32))
        without = {n for n, p in trainer.model.named_parameters() if p.grad is None}
        assert without == {
            "encoder.lm_head.dense.weight",
            "encoder.lm_head.dense.bias",
            "encoder.lm_head.layer_norm.weight",
            "encoder.lm_head.layer_norm.bias",
            "encoder.lm_head.bias",
        }, without
        assert all(torch.isfinite(p.grad).all() for p in trainer.model.parameters() if p.grad is not None)
