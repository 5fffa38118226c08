"""A study as a script: every cell's commands in the study's run order. For the scales that never run here
(`paper`) each training is submitted through `vega-train --launcher submitit --wait`
(vega_toolkit/launch/submitit_launcher.py) with the paper cluster's resources; for the local scales (smoke, cpu,
cpu-small, gpu) the commands are exactly those `vega-study run` executes, without its resume bookkeeping.

    vega-study plan --scale paper --arms all --glue-dir glue_data --corpus corpus/ --out /shared/study-paper > study.sh
    bash study.sh        # on the cluster's login node: one blocking job after the other, in the study's run order

Pretraining is submitted on the paper's cluster (40 nodes x 8 GPUs, recipes/pretrain/common.sh); a fine-tuning job
takes one GPU. A requeued or timed-out job resumes from its save dir's checkpoint_last.pt (submitit requeues the same
argv), so rerunning the script after an interruption continues: a finished fine-tuning exits at once. Cells of one
arm and task are independent and may be split over several copies of the script.
"""

import shlex

from vega_toolkit.study.cells import Cell
from vega_toolkit.study.plan import Scale

# recipes/pretrain/common.sh paper_update_freq: 40 DGX nodes x 8 A100, as the paper pretrained Vega v1
PRETRAIN_SLURM = (
    "--slurm-nodes",
    "40",
    "--slurm-gpus-per-node",
    "8",
    "--slurm-time",
    "4320",
    "--slurm-max-num-timeout",
    "20",
)
FINETUNE_SLURM = ("--slurm-nodes", "1", "--slurm-gpus-per-node", "1", "--slurm-time", "720")


def _submitted(cell: Cell, cmd: list[str], index: int) -> list[str]:
    if cmd[0] != "vega-train":
        return cmd
    job = f"vega-study-{cell.name}".replace("/", "-").replace(" ", "-").replace("+", "-")
    resources = PRETRAIN_SLURM if cell.kind == "pretrain" else FINETUNE_SLURM
    return cmd + ["--launcher", "submitit", "--wait", "--slurm-job-name", f"{job}-{index}", *resources]


def cluster_script(scale: Scale, cells: list[Cell], paths: dict[str, str]) -> str:
    lines = [
        "#!/usr/bin/env bash",
        f"# vega-study plan --scale {scale.name}: {len(cells)} cells. {scale.about}",
        "set -euo pipefail",
        f"mkdir -p {shlex.quote(paths['out'])}",
        f"cd {shlex.quote(paths['out'])}",
    ]
    for cell in cells:
        lines += ["", f"# {cell.kind} {cell.name} (key {cell.key})"]
        for i, cmd in enumerate(cell.resolve(paths)):
            cmd = cmd if scale.local else _submitted(cell, cmd, i)
            lines.append(" ".join(shlex.quote(arg) for arg in cmd))
    return "\n".join(lines) + "\n"
