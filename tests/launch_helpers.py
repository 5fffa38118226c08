"""Helpers shared by the launcher, DDP, crash-resume and TensorBoard tests: one tiny RTD pretraining command,
running `vega-train` (locally or submitted to the local SLURM) and reading its checkpoints back."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

TRAIN = [sys.executable, "-m", "vega_toolkit.cli.train"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pretrain_args(data_bin, save_dir, max_update: int, *extra) -> list[str]:
    """Ternary-RTD pretraining of vega_tiny, checkpointing every 5 updates (no epoch checkpoints)."""
    return [
        str(data_bin),
        "--task",
        "denoising_pretrain",
        "--criterion",
        "rtd_ternary",
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
        "--lr-scheduler",
        "fixed",
        "--log-format",
        "simple",
        "--log-interval",
        "5",
        "--cpu",
        "--num-workers",
        "0",
        "--seed",
        "1",
        "--max-update",
        str(max_update),
        "--save-interval-updates",
        "5",
        "--no-epoch-checkpoints",
        "--disable-validation",
        "--save-dir",
        str(save_dir),
        *map(str, extra),
    ]


def vega_train(args, timeout: float = 240, env=None) -> str:
    """Run vega-train in a subprocess; return its output, failing the test with the log tail on error."""
    proc = subprocess.run(
        TRAIN + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **ENV, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def submit(args, env=None) -> tuple[str, str]:
    """`vega-train ARGS --launcher submitit` (plus ARGS' own --slurm-* flags): (job id, output)."""
    out = vega_train(list(args) + ["--launcher", "submitit"], timeout=120, env=env)
    found = re.search(r"^Submitted job (\d+)$", out, re.M)
    assert found, out[-2000:]
    return found.group(1), out


def load_last(save_dir) -> tuple[dict[str, torch.Tensor], int]:
    """(model state dict, num_updates) of `<save_dir>/checkpoint_last.pt`, read through the toolkit's loader."""
    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu

    state = load_checkpoint_to_cpu(str(Path(save_dir) / "checkpoint_last.pt"))
    return state["model"], state["optimizer_history"][-1]["num_updates"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"largest parameter difference {worst:g} > {atol:g}"


def wait_for_file(path: Path, timeout_s: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert alive(), f"the run ended before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s}s"
        time.sleep(0.05)
