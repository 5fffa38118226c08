"""recipes/pretrain/*.sh: both phases end to end at SCALE=tiny; SCALE=paper dry runs print a command vega-train
accepts."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "pretrain"
BIN = os.path.dirname(sys.executable)  # the venv's vega-train


def run_recipe(name, timeout=300, **env):
    full_env = {
        **os.environ,
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **{k: str(v) for k, v in env.items()},
    }
    out = subprocess.run(["bash", str(RECIPES / name)], capture_output=True, text=True, timeout=timeout, env=full_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def last_valid(log):
    return [line for line in log.splitlines() if "valid on 'valid' subset" in line][-1]


@pytest.mark.slow
def test_phase1_then_phase2_run_end_to_end_at_tiny_scale(tiny_data_bin, tmp_path):
    phase1 = tmp_path / "phase1"
    log1 = run_recipe("phase1_rtd.sh", DATA_BIN=tiny_data_bin, SAVE_DIR=phase1, MAX_UPDATE=6)
    assert (phase1 / "checkpoint_last.pt").is_file()
    assert "rtd_acc" in last_valid(log1) and "shuf_recall" in last_valid(log1)

    phase2 = tmp_path / "phase2"
    log2 = run_recipe(
        "phase2_contrastive.sh",
        DATA_BIN=tiny_data_bin,
        SAVE_DIR=phase2,
        PHASE1_CKPT=phase1 / "checkpoint_last.pt",
        MAX_UPDATE=4,
    )
    assert (phase2 / "checkpoint_last.pt").is_file()
    assert "loading pretrained model from" in log2  # phase-1 weights, not a fresh init
    valid = last_valid(log2)
    for key in ("rtd_loss", "contrastive_loss", "contrastive_acc"):
        assert re.search(rf"\| {key} [0-9.]+", valid), key
    # fresh optimizer and schedule: phase 2 counts its own updates from 0
    assert re.search(r"num_updates 4\b", valid), valid


@pytest.mark.slow
def test_rtd_electra_runs_end_to_end_at_tiny_scale_and_exports_the_discriminator(tiny_data_bin, tmp_path):
    log = run_recipe("rtd_electra.sh", DATA_BIN=tiny_data_bin, SAVE_DIR=tmp_path / "electra", MAX_UPDATE=4)
    valid = last_valid(log)
    for key in ("rtd_acc", "prior_acc", "mlm_loss", "gen_acc", "gen_unigram_acc"):
        assert re.search(rf"\| {key} [0-9.]+", valid), key
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vega_toolkit.cli.convert",
            "export",
            str(tmp_path / "electra" / "checkpoint_last.pt"),
            "--data-bin",
            str(tiny_data_bin),
            str(tmp_path / "model"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and (tmp_path / "model" / "model.pt").is_file(), out.stderr[-2000:]


def dry_run(name, **env):
    out = run_recipe(name, DRY_RUN=1, DATA_BIN="DATA", SAVE_DIR="SAVE", PHASE1_CKPT="P1.pt", **env)
    return shlex.split(out.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["phase1_rtd.sh", "phase2_contrastive.sh", "rtd_electra.sh"])
def test_tiny_dry_run_prints_the_command_in_the_header_comment(name):
    header = []
    for line in (RECIPES / name).read_text().splitlines():
        if line.startswith("#   vega-train") or (header and line.startswith("#     ")):
            header.append(line[1:].strip())
        elif header:
            break
    expected = " ".join(header).replace("$DATA_BIN", "DATA").replace("$SAVE_DIR", "SAVE")
    expected = expected.replace("$PHASE1_CKPT", "P1.pt")
    assert dry_run(name) == shlex.split(expected)


def test_paper_dry_runs_parse_as_vega_train_commands_with_the_cluster_math():
    from vega_toolkit.runtime.training import parse_training_args

    for name, updates in (
        ("phase1_rtd.sh", 1_000_000),
        ("phase2_contrastive.sh", 100_000),
        ("rtd_electra.sh", 1_000_000),
    ):
        cmd = dry_run(name, SCALE="paper", NODES=4, GPUS_PER_NODE=8, BATCH_PER_GPU=8, GLOBAL_BATCH=2048)
        assert cmd[0] == "vega-train"
        args = parse_training_args(cmd[1:])
        assert args.arch == "vega_v1_1_3b" and args.max_update == updates and args.bf16 and not args.tpu
        assert args.update_freq == [2048 // (4 * 8 * 8)] and args.distributed_world_size == 32
        assert args.optimizer == "adam" and args.weight_decay > 0
        if name.startswith("phase2"):
            assert args.finetune_from_model == "P1.pt" and args.criterion == "rtd_contrastive"
        if name == "rtd_electra.sh":  # DeBERTa-v3's rtd.sh: lambda 10, lr 1e-4, warmup 10k
            assert (args.criterion, args.embedding_sharing, args.rtd_lambda, args.lr, args.warmup_updates) == (
                "rtd_electra",
                "gdes",
                10.0,
                [1e-4],
                10000,
            )


def test_paper_default_cluster_is_the_papers_40_dgx_nodes_of_8_gpus():
    from vega_toolkit.runtime.training import parse_training_args

    args = parse_training_args(dry_run("phase1_rtd.sh", SCALE="paper")[1:])
    assert args.distributed_world_size == 40 * 8 and args.batch_size * args.update_freq[0] * 320 == 2560


def test_paper_batch_that_does_not_divide_the_cluster_is_rejected():
    out = subprocess.run(
        ["bash", str(RECIPES / "phase1_rtd.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "DATA_BIN": "D", "SAVE_DIR": "S", "SCALE": "paper", "DRY_RUN": "1", "GLOBAL_BATCH": "1000"},
    )
    assert out.returncode != 0 and "GLOBAL_BATCH=1000" in out.stderr
