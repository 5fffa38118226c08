"""The paper plan's rehearsal (`vega-study rehearse`, vega_toolkit/study/rehearsal.py): its jobs run the paper
recipes with only the sizes shrunk, SLURM records the paper's afterok graph, and the submission check
(`vega-glue validate-submission`) accepts vega-generate's zip and refuses broken ones. The whole rehearsal takes
longer than CI affords on 2 cores: its last run is committed under results/rehearsal/."""

import io
import os
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest
from glue_helpers import FIXTURES

from vega_toolkit.cli.glue import validate_submission
from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.data.glue_tasks import GLUE_TASKS
from vega_toolkit.launch import slurm
from vega_toolkit.study.rehearsal import GRAPH, Job, Rehearsal, RehearsalError, submitted_ids


def dry_run(job: Job, *extra: str):
    """The vega-train command a recipe job would run, printed by the recipe itself (DRY_RUN=1)."""
    proc = subprocess.run(
        [*job.command, *extra],
        env={**os.environ, **job.env, "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout.strip().splitlines()[-1])


def test_pretraining_jobs_are_the_paper_recipes_at_tiny_size_plus_launcher_flags(tmp_path):
    jobs = {job.name: job for job in Rehearsal(tmp_path / "out", Path(FIXTURES)).pretraining_jobs()}
    assert list(jobs) == ["preprocess", "phase1", "phase2", "model"]
    for name, criterion in (("phase1", "rtd_ternary"), ("phase2", "rtd_contrastive")):
        job = jobs[name]
        recipe = Job(name, job.command[:2], env=job.env)  # the recipe alone: its own SCALE=tiny command
        own = dry_run(recipe)
        submitted = dry_run(job, "--slurm-dependency", "afterok:7")
        # the recipe's command, unchanged, then only the launcher flags
        assert submitted[: len(own)] == own
        added = submitted[len(own) :]
        assert added[:4] == ["--save-interval-updates", "10", "--launcher", "submitit"], added
        assert added[-2:] == ["--slurm-dependency", "afterok:7"]
        assert own[own.index("--criterion") + 1] == criterion and own[own.index("--arch") + 1] == "vega_tiny"
        assert own[own.index("--max-update") + 1] == job.env["MAX_UPDATE"]  # the size is what is shrunk
    phase1 = dry_run(jobs["phase1"])
    assert phase1[phase1.index("--slurm-tasks-per-node") + 1] == "2"  # two ranks (gloo: added on CPU by the job)
    phase2 = dry_run(jobs["phase2"])
    assert phase2[phase2.index("--finetune-from-model") + 1] == jobs["phase1"].env["SAVE_DIR"] + "/checkpoint_last.pt"
    assert jobs["model"].command[1:3] == ["export", jobs["phase2"].env["SAVE_DIR"] + "/checkpoint_last.pt"]
    preprocess = jobs["preprocess"].command
    assert preprocess[preprocess.index("--shards") + 1] == "2" and "--launcher" in preprocess  # an array on SLURM
    assert preprocess[preprocess.index("--destdir") + 1] == jobs["phase1"].env["DATA_BIN"]  # its folder of shards


def test_submitted_ids_are_read_from_the_launchers_lines():
    out = "== mnli\nSubmitted job 12\n  stdout: x_0_log.out\n== rte\nSubmitted job 13\nSubmitted job 1x\n"
    assert submitted_ids(out) == ["12", "13"]


@pytest.fixture
def rehearsal(local_slurm, tmp_path):
    r = Rehearsal(tmp_path / "out", Path(FIXTURES), log=lambda s: None)
    r.prepare()
    yield r
    slurm.cancel([job.job_id for job in r.jobs.values() if job.job_id])


def test_slurm_records_the_pretraining_chain_with_afterok_edges(rehearsal):
    for job in rehearsal.pretraining_jobs():
        rehearsal.submit(job, GRAPH[job.name])
    names = ["preprocess", "phase1", "phase2", "model"]
    assert rehearsal.recorded_graph(names) == {name: list(GRAPH[name]) for name in names}
    info = {name: slurm.show_job(rehearsal.jobs[name].job_id) for name in names}
    assert {i["JobState"] for i in info.values()} == {"PENDING"}  # held until the graph is checked
    assert info["preprocess"]["ArrayTaskId"].startswith("0-1")  # one array task per shard ("0-1%2")
    assert info["phase1"]["JobName"] == "vega-phase1" and info["phase1"]["NumTasks"] == "2"


def test_a_graph_that_is_not_the_papers_is_refused_before_anything_runs(rehearsal):
    first = Job("preprocess", ["true"], via="sbatch")
    rehearsal.submit(first, ())
    rehearsal.submit(Job("model", ["true"], via="sbatch"), ["preprocess"])  # the paper's model waits for phase 2
    with pytest.raises(
        RehearsalError,
        match=r"model: SLURM waits for \['preprocess'\], the paper's graph for "
        r"\['phase2'\]",
    ):
        rehearsal.check_and_release(["preprocess", "model"])
    assert slurm.show_job(first.job_id)["JobState"] == "PENDING"  # nothing was released


def held(rehearsal, name):
    info = slurm.show_job(rehearsal.jobs[name].job_id)
    return info["JobState"] == "PENDING" and info["Reason"] == "JobHeldUser"


def test_a_job_is_released_once_the_jobs_waiting_for_it_are_submitted_and_checked(rehearsal):
    # all.sh submits one recipe after the other: MNLI must stay held until RTE, STS-B and MRPC have recorded their
    # afterok on it (a finished MNLI would leave them nothing to record), while SST-2 may start at once
    chain = list(GRAPH["generate"])
    rehearsal.submit(Job("MNLI", ["true"], via="sbatch"), ())
    rehearsal.submit(Job("SST-2", ["true"], via="sbatch"), ())
    rehearsal.check_and_release(chain)
    assert held(rehearsal, "MNLI") and not held(rehearsal, "SST-2")
    for task in ("RTE", "STS-B"):
        rehearsal.submit(Job(task, ["true"], via="sbatch"), ["MNLI"])
    rehearsal.check_and_release(chain)
    assert held(rehearsal, "MNLI") and not any(held(rehearsal, t) for t in ("RTE", "STS-B"))
    rehearsal.submit(Job("MRPC", ["true"], via="sbatch"), ["MNLI"])
    rehearsal.check_and_release(chain)
    assert not held(rehearsal, "MNLI")
    assert all(rehearsal.jobs[t].info["after"] == "MNLI" for t in ("RTE", "STS-B", "MRPC"))


def test_scontrol_requeue_kills_the_running_job_and_starts_it_again_seconds_later(rehearsal):
    job_id = slurm.sbatch(["sleep", "60"], "vega-requeue-test", str(rehearsal.slurm_logs))
    rehearsal.jobs["probe"] = Job("probe", [], job_id=job_id)  # cancelled by the fixture
    slurm.wait_for_state(job_id, lambda i: i["JobState"] == "RUNNING", timeout_s=60, what="start")
    assert slurm.requeue(job_id)["Restarts"] == "1"
    # without the release SLURM would hold it back for two minutes (BeginTime)
    slurm.wait_for_state(job_id, lambda i: i["JobState"] == "RUNNING", timeout_s=30, what="restart")


def test_an_out_folder_that_is_not_empty_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("x")
    with pytest.raises(RehearsalError, match="is not empty"):
        Rehearsal(tmp_path / "out", Path(FIXTURES)).prepare()


def test_a_glue_folder_without_every_task_is_refused_before_anything_is_submitted(tmp_path):
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    with pytest.raises(RehearsalError, match=r"has no MNLI/ folder"):
        Rehearsal(tmp_path / "out", tmp_path / "glue").prepare()
    assert not (tmp_path / "out").exists()


def submission(tmp_path, edit=lambda name, rows: rows, skip=()):
    """A zip as vega-generate writes it for the fixtures: every test row predicted with the task's first label."""
    path = tmp_path / "submission.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for task in GLUE_TASKS.values():
            for split, name in task.submission.items():
                if name in skip:
                    continue
                rows = [
                    f"{ex.index}\t{task.labels[0] if task.labels else '2.500'}"
                    for ex in read_glue_split(FIXTURES, task, split)
                ]
                zf.writestr(name, "\n".join(["index\tprediction", *edit(name, rows)]) + "\n")
    return str(path)


def check(path, allow_partial=True):
    out = io.StringIO()
    problems = validate_submission(path, FIXTURES, allow_partial=allow_partial, out=out)
    return problems, out.getvalue()


def test_a_complete_submission_of_the_fixtures_passes_and_is_not_official(tmp_path):
    problems, report = check(submission(tmp_path))
    assert problems == 0, report
    assert len(report.splitlines()) == 1 + 11  # header + CoLA SST-2 MRPC STS-B QQP MNLI-m MNLI-mm QNLI RTE WNLI AX
    problems, report = check(submission(tmp_path), allow_partial=False)
    assert problems == 11 and "is not the official test set" in report


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda name, rows: rows[:-1] if name == "RTE.tsv" else rows, "RTE.tsv .* indices differ from"),
        (lambda name, rows: rows[::-1] if name == "QNLI.tsv" else rows, "QNLI.tsv .* indices differ from"),
        (
            lambda name, rows: [r.replace("\t0", "\tyes") for r in rows] if name == "CoLA.tsv" else rows,
            r"CoLA.tsv:2: CoLA label 'yes' is not one of",
        ),
        (
            lambda name, rows: [r.replace("2.500", "5.5") for r in rows] if name == "STS-B.tsv" else rows,
            r"STS-B.tsv:2: STS-B score '5.5' is outside \[0, 5\]",
        ),
    ],
)
def test_a_broken_submission_file_is_named_with_what_is_wrong(tmp_path, edit, expected):
    import re

    problems, report = check(submission(tmp_path, edit))
    assert problems == 1 and re.search(expected, report), report


def test_a_missing_file_fails_unless_partial_and_a_stray_file_always_fails(tmp_path):
    path = submission(tmp_path, skip=("AX.tsv",))
    assert check(path, allow_partial=True)[0] == 0
    assert "AX.tsv" in check(path, allow_partial=False)[1]
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", "x")
    problems, report = check(path)
    assert problems == 1 and "notes.txt" in report and "not a GLUE submission file" in report
