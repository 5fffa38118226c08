"""`vega-preprocess ... --shards N --launcher submitit`: one SLURM array task per shard, through vega-train's
`--slurm-*` flags (submitit_launcher.py builds the executor).

    vega-preprocess big/ --destdir bin --vocab-size 128000 --shards 64 --workers 8 \
        --launcher submitit --slurm-partition cpu --slurm-cpus-per-task 8 --slurm-time 240
    # prints "Submitted job <array id>"; chain the pretraining with --slurm-dependency afterok:<array id>

sentencepiece is trained first, once, in the submitting process (`corpus_pipeline.prepare`: a bounded sample), so
every task encodes with the same model. Only unfinished shards are submitted: a re-run after a failure or a
cancellation sends the missing ones again (a half-written shard is redone from scratch). The task that finishes last
writes dict.txt (counts summed over the shards); until then the data-bins are incomplete and vega-train refuses them.
A preempted task requeues itself (submitit's checkpoint) and redoes its shard.
"""

import argparse
import os
from typing import Any

from vega_toolkit.data.corpus_pipeline import PreprocessConfig, encode_shard, finalize, prepare, shard_finished
from vega_toolkit.launch.submitit_launcher import build_executor, wait_for_job


class PreprocessShardJob:
    """The callable of every array task: encode one shard, then write dict.txt if it was the last one."""

    def __init__(self, destdir: str, workers: int):
        self.destdir = destdir
        self.workers = workers

    def __call__(self, shard: int) -> dict[str, Any]:
        summary = encode_shard(self.destdir, shard, self.workers)
        summary["dict_written"] = finalize(self.destdir)
        return summary

    def checkpoint(self, shard: int):
        import submitit

        return submitit.helpers.DelayedSubmission(type(self)(self.destdir, self.workers), shard)


def submit_shards(args: argparse.Namespace, config: PreprocessConfig) -> list | None:
    """Train sentencepiece here, then submit the unfinished shards as one job array; print `Submitted job <id>`
    (afterok on it waits for every shard). Returns the submitit jobs (None when every shard was already finished)."""
    plan = prepare(config)
    pending = [k for k in range(plan.shards) if not shard_finished(plan, k)]
    if not pending:
        finalize(plan.destdir)
        print(f"All {plan.shards} shards of {plan.destdir} are finished; nothing submitted", flush=True)
        return None
    executor = build_executor(
        args, [], default_job_dir=os.path.join(plan.destdir, "slurm", "%j"), job_name="vega-preprocess"
    )
    jobs = executor.map_array(PreprocessShardJob(plan.destdir, config.workers), pending)
    array_id = str(jobs[0].job_id).split("_")[0]
    print(f"Submitted job {array_id}", flush=True)
    print(
        f"  shards: {' '.join(map(str, pending))} of {plan.shards}"
        + (f" ({plan.shards - len(pending)} finished earlier, skipped)" if len(pending) < plan.shards else ""),
        flush=True,
    )
    print(f"  stdout: {jobs[0].paths.stdout}", flush=True)
    if args.wait:
        for job in jobs:
            wait_for_job(job)
        print(f"Job {array_id} finished (state COMPLETED)", flush=True)
    return jobs
