"""Data-parallel training: a 2-task SLURM job (gloo on CPU) equals one process with the same global batch."""

import subprocess

from launch_helpers import assert_same_weights, load_last, pretrain_args, submit, vega_train

from vega_toolkit.launch import slurm
from vega_toolkit.launch.submitit_launcher import rank_summaries

UPDATES = 10


def test_two_rank_gloo_job_has_identical_ranks_equal_to_a_single_process_run(local_slurm, tiny_data_bin, tmp_path):
    # Same global batch: 2 ranks x 8 sentences vs 1 process x 8 sentences x --update-freq 2. fairseq shards the
    # epoch's batches round-robin over ranks, so update k sees batches 2k and 2k+1 either way; corruption noise is
    # seeded per (seed, epoch, sentence). Dropout is off: fairseq reseeds torch once per update, so rank 1 and the
    # second micro-batch of --update-freq 2 would draw different dropout masks. What remains is the summation
    # order of the gradients (atol 1e-5 covers that float32 rounding; in practice the results are bitwise equal).
    no_dropout = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0"]
    job_id, _ = submit(
        pretrain_args(tiny_data_bin, tmp_path / "ddp", UPDATES, "--slurm-tasks-per-node", "2", *no_dropout)
    )
    try:
        vega_train(pretrain_args(tiny_data_bin, tmp_path / "single", UPDATES, "--update-freq", "2", *no_dropout))
        info = slurm.wait_for_state(
            job_id, lambda i: i["JobState"] in slurm.TERMINAL_STATES, timeout_s=150, what="terminal state"
        )
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)
    assert info["JobState"] == "COMPLETED" and info["NumTasks"] == "2", info

    ranks = rank_summaries(tmp_path / "ddp" / "slurm" / job_id, job_id)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["num_updates"] == ranks[1]["num_updates"] == UPDATES
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]  # both ranks hold bitwise-equal parameters

    ddp, ddp_updates = load_last(tmp_path / "ddp")
    single, single_updates = load_last(tmp_path / "single")
    assert ddp_updates == single_updates == UPDATES
    assert_same_weights(ddp, single, atol=1e-5)
