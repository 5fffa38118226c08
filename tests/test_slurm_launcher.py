"""`vega-train --launcher submitit` on a real one-node SLURM (scripts/slurm_local.sh): completion, preemption with
requeue and resume, job dependencies. Job states are read from SLURM (`scontrol show job`), never from a mock."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from launch_helpers import ENV, TRAIN, assert_same_weights, load_last, pretrain_args, submit, wait_for_file

from vega_toolkit.launch import slurm
from vega_toolkit.launch.submitit_launcher import split_launcher_args

MAX_UPDATE = 40


def finished(info):
    return info["JobState"] in slurm.TERMINAL_STATES


@pytest.fixture
def jobs(local_slurm):
    """Job ids a test submitted; whatever is still queued or running is cancelled afterwards."""
    ids = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


@pytest.fixture(scope="module")
def uninterrupted(local_slurm, tiny_data_bin, tmp_path_factory):
    """A tiny RTD pretraining job run to completion on SLURM: (job fields from scontrol, save dir)."""
    save_dir = tmp_path_factory.mktemp("slurm_uninterrupted")
    name = f"vega-test-{os.getpid()}"  # to cancel the job even when vega-train --wait itself fails
    try:
        job_id, out = submit(pretrain_args(tiny_data_bin, save_dir, MAX_UPDATE) + ["--wait", "--slurm-job-name", name])
    finally:
        subprocess.run(["scancel", "--name", name], capture_output=True)
    return slurm.show_job(job_id), save_dir, out


def test_submitted_pretraining_job_completes_on_slurm_and_its_checkpoint_reloads(uninterrupted):
    info, save_dir, out = uninterrupted
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
    assert re.search(r"^  stdout: .*_0_log\.out$", out, re.M)  # vega-train tells where the logs are
    assert f"Job {info['JobId']} finished (state COMPLETED)" in out  # --wait followed the job to its end
    assert re.search(rf"^  rank=0 num_updates={MAX_UPDATE} params_sha256=[0-9a-f]{{64}}$", out, re.M)
    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(save_dir / "checkpoint_last.pt")])
    assert type(models[0]).__name__ == "VegaEncoderModel"
    assert load_last(save_dir)[1] == MAX_UPDATE


def test_usr1_makes_the_job_requeue_itself_and_resume_to_the_uninterrupted_result(
    uninterrupted, tiny_data_bin, tmp_path, jobs
):
    save_dir = tmp_path / "preempted"
    job_id, _ = submit(pretrain_args(tiny_data_bin, save_dir, MAX_UPDATE) + ["--slurm-signal", "USR1"])
    jobs.append(job_id)
    wait_for_file(
        save_dir / "checkpoint_1_10.pt", timeout_s=120, alive=lambda: slurm.job_state(job_id) in ("PENDING", "RUNNING")
    )
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    # submitit's handler calls `scontrol requeue`: the job is pending again. SLURM holds requeued jobs back for
    # two minutes (BeginTime); release it sooner, but not within the second of the requeue: slurmd refuses to launch
    # a job whose credential it revoked in that same second ("Job credential revoked"), and the job ends FAILED.
    info = slurm.wait_for_state(
        job_id, lambda i: i["Restarts"] != "0" and i["JobState"] == "PENDING", timeout_s=60, what="requeue"
    )
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"], check=True)
    info = slurm.wait_for_state(job_id, finished, timeout_s=150, what="terminal state")
    log = Path(info["StdOut"]).read_text() + Path(info["StdErr"]).read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", f"{info}\n{log[-3000:]}"

    assert "Requeued job" in log or "requeue" in log.lower()
    resumed = re.findall(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)", log)
    assert resumed and int(resumed[-1]) >= 10, "the requeued run did not resume from checkpoint_last.pt"
    weights, updates = load_last(save_dir)
    reference, reference_updates = load_last(uninterrupted[1])
    assert updates == reference_updates == MAX_UPDATE
    # fairseq restores the model, optimizer, lr schedule, data position and per-update seeds: exact resume.
    assert_same_weights(weights, reference, atol=1e-6)


def test_wait_exits_non_zero_naming_the_state_and_log_when_the_job_fails(local_slurm, tiny_data_bin, tmp_path):
    args = pretrain_args(tmp_path / "no-such-data-bin", tmp_path / "ckpt", 2) + ["--launcher", "submitit", "--wait"]
    proc = subprocess.run(
        TRAIN + [str(a) for a in args], capture_output=True, text=True, timeout=150, env={**os.environ, **ENV}
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    job_id = re.search(r"^Submitted job (\d+)$", proc.stdout, re.M).group(1)
    assert slurm.show_job(job_id)["JobState"] == "FAILED"
    assert re.search(rf"Job {job_id} failed \(state FAILED, outcome error\); logs: \S+_0_log\.err", proc.stderr)
    assert "no-such-data-bin" in proc.stderr  # the job's own traceback is shown


# Submitted held (sbatch reads SBATCH_HOLD from the environment): SLURM clears a job's Dependency field once it is
# satisfied, so the chain is inspected before anything runs.
HELD = ["--slurm-hold"]  # SLURM forgets a dependency once it is satisfied: keep the first job from finishing


def test_dependency_flag_is_recorded_by_slurm(tiny_data_bin, tmp_path, jobs):
    first, _ = submit(pretrain_args(tiny_data_bin, tmp_path / "a", 2) + ["--slurm-job-name", "vega-first"] + HELD)
    jobs.append(first)
    second, _ = submit(
        pretrain_args(tiny_data_bin, tmp_path / "b", 2) + ["--slurm-dependency", f"afterok:{first}"] + HELD
    )
    jobs.append(second)
    assert slurm.show_job(first)["JobState"] == "PENDING"  # held, as --slurm-hold asked
    info = slurm.show_job(second)
    assert info["Dependency"].startswith(f"afterok:{first}"), info["Dependency"]
    assert info["JobName"] == "vega-train" and slurm.show_job(first)["JobName"] == "vega-first"


RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "glue"


def test_glue_all_sh_under_submitit_chains_rte_stsb_mrpc_after_mnli(local_slurm, model_dir, tmp_path, jobs):
    from glue_helpers import FIXTURES, recipe_env

    cache = str(tmp_path / "cache")
    # held: a 2-update MNLI job would finish (and SLURM forget the satisfied dependency) before the next recipe
    env = recipe_env(
        FIXTURES,
        model_dir,
        str(tmp_path / "out"),
        cache,
        LAUNCHER="submitit",
        PLAN="mnli rte stsb mrpc",
        MAX_UPDATE="2",
        SLURM_ARGS="--slurm-hold",
    )
    proc = subprocess.run(["bash", str(RECIPES / "all.sh")], capture_output=True, text=True, env=env, timeout=240)
    ids = re.findall(r"^Submitted job (\d+)$", proc.stdout, re.M)
    jobs.extend(ids)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    submitted = [slurm.show_job(i) for i in ids]

    def job_of(task):  # the recipes name their training jobs vega-glue-<TASK> (--slurm-job-name)
        matches = [info for info in submitted if info["JobName"].lower().replace("-", "") == f"vegaglue{task}"]
        assert len(matches) == 1, (task, [info["JobName"] for info in submitted])
        return matches[0]

    mnli = job_of("mnli")
    assert mnli["Dependency"] == "(null)"
    for task in ("rte", "stsb", "mrpc"):
        assert f"afterok:{mnli['JobId']}" in job_of(task)["Dependency"], (task, job_of(task)["Dependency"])


def test_launcher_flags_are_split_from_fairseq_flags_and_yaml_defaults_apply(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("partition: gpu\ngpus_per_node: 8\ntime: 4320\n")
    args, rest = split_launcher_args(
        [
            "DATA",
            "--lr",
            "1e-4",
            "--launcher",
            "submitit",
            "--slurm-config",
            str(config),
            "--slurm-time",
            "30",
            "--wait",
        ]
    )
    assert rest == ["DATA", "--lr", "1e-4"]
    assert (args.launcher, args.slurm_partition, args.slurm_gpus_per_node, args.slurm_time, args.wait) == (
        "submitit",
        "gpu",
        8,
        30,
        True,
    )  # the command line wins over the yaml


def test_unknown_key_in_slurm_config_names_the_file_and_key(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("partiton: gpu\n")
    with pytest.raises(ValueError, match=re.escape(f"{config}: unknown key 'partiton'")):
        split_launcher_args(["DATA", "--launcher", "submitit", "--slurm-config", str(config)])
