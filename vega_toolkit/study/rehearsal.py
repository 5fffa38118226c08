"""The paper's whole job graph as real SLURM jobs at tiny sizes: `vega-study rehearse` (recipes/paper/rehearsal.sh).

    bash scripts/slurm_local.sh start && export SLURM_CONF=/tmp/vega-slurm/slurm.conf   # a one-node SLURM
    vega-study rehearse --out /tmp/rehearsal --glue-dir tests/fixtures/glue
    # last line: rehearsal: <N> jobs, <R> requeued and resumed, submission.zip with <F> files

Every box of the paper plan is a SLURM job at tiny sizes, every arrow an `afterok` dependency; phase 2 is requeued
mid-run and must resume; the submission zip is validated. The graph, sizes and checks:
docs/design.md#rehearsal-of-the-papers-job-graph; a run's output and wall time: results/rehearsal/.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vega_toolkit.errors import UserError
from vega_toolkit.launch import slurm

BIN = Path(sys.executable).parent  # the venv's console scripts (vega-train, vega-preprocess, ...)
REPO = Path(__file__).resolve().parents[2]

# The paper plan: job -> the jobs it waits for (afterok). GLUE jobs are named as the recipes name them (vega-glue-TASK).
GRAPH: dict[str, tuple] = {
    "preprocess": (),
    "phase1": ("preprocess",),
    "phase2": ("phase1",),
    "model": ("phase2",),
    "MNLI": (),
    "RTE": ("MNLI",),
    "STS-B": ("MNLI",),
    "MRPC": ("MNLI",),
    "SST-2": (),
    "QNLI": (),
    "QQP": (),
    "CoLA": (),
    "WNLI": (),
    "generate": ("MNLI", "RTE", "STS-B", "MRPC", "SST-2", "QNLI", "QQP", "CoLA", "WNLI"),
}


@dataclass
class Sizes:
    """What is shrunk; everything else is the recipes' own (SCALE=tiny)."""

    corpus_paragraphs: int = 2000  # toy corpus (vega_toolkit/demo/toy_data.py) when no --corpus is given
    vocab_size: int = 400
    shards: int = 2  # preprocessing array tasks
    ranks: int = 2  # phase 1's SLURM tasks, one fairseq rank each (gloo on CPU)
    phase1_updates: int = 20
    phase2_updates: int = 40
    save_interval: int = 10  # --save-interval-updates: what a requeued job loses at most


@dataclass
class Job:
    name: str  # a key of GRAPH
    command: list[str]  # run to submit it: a recipe (prints `Submitted job <id>`) or, with via="sbatch", the job itself
    via: str = "recipe"
    env: dict[str, str] = field(default_factory=dict)
    save_dir: Path | None = None
    job_id: str | None = None
    info: dict[str, str] = field(default_factory=dict)  # last `scontrol show job` fields
    checked: bool = False  # its dependencies, as SLURM recorded them, are the paper's
    released: bool = False  # submitted held; released once checked

    @property
    def state(self) -> str:
        return self.info.get("JobState", "UNSUBMITTED")


class RehearsalError(UserError, RuntimeError):
    """A rehearsal that cannot start (bad --out/--glue-dir, no SLURM) or a job of it that failed; one line."""


class Rehearsal:
    """One rehearsal in the folder `out`: `run_all()` submits, follows and checks the whole graph; its last line."""

    def __init__(
        self,
        out: Path,
        glue_dir: Path,
        corpus: Path | None = None,
        sizes: Sizes | None = None,
        requeue: str = "phase2",
        log: Callable[[str], None] = print,
    ):
        self.out, self.glue_dir, self.sizes, self.log = out.resolve(), glue_dir.resolve(), sizes or Sizes(), log
        self.corpus = corpus.resolve() if corpus else self.out / "data" / "corpus"
        self.requeue_target, self.requeued = requeue, False  # a job with a save_dir and MAX_UPDATE: phase1, phase2
        self.data_bin = self.out / "data-bin"
        self.slurm_logs = self.out / "slurm"
        self.jobs: dict[str, Job] = {}
        self.env = dict(
            os.environ,
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            VEGA_CACHE_DIR=str(self.out / "cache"),
            PYTHONUNBUFFERED="1",
        )

    # ------------------------------------------------------------------ the graph
    def pretraining_jobs(self) -> list[Job]:
        """Preprocessing, the two pretraining phases and the model folder, in submission order."""
        s, recipes = self.sizes, REPO / "recipes" / "pretrain"
        phase1, phase2 = self.out / "pretrain" / "phase1", self.out / "pretrain" / "phase2"
        model = self.out / "model"
        # sentencepiece is trained while submitting (once), then one array task per shard; the data-bin folder
        # stands for its shards (one per epoch) in vega-train and for its dict.txt + spm.model in vega-convert
        preprocess = [
            str(BIN / "vega-preprocess"),
            str(self.corpus),
            "--destdir",
            str(self.data_bin),
            "--vocab-size",
            str(s.vocab_size),
            "--shards",
            str(s.shards),
            "--workers",
            "1",
            "--valid-fraction",
            "0.05",
            "--seed",
            "1",
            "--launcher",
            "submitit",
            "--slurm-time",
            "30",
        ]
        launcher = ["--save-interval-updates", str(s.save_interval), "--launcher", "submitit", "--slurm-time", "30"]
        return [
            Job("preprocess", preprocess),
            Job(
                "phase1",
                [
                    "bash",
                    str(recipes / "phase1_rtd.sh"),
                    *launcher,
                    "--slurm-job-name",
                    "vega-phase1",
                    "--slurm-tasks-per-node",
                    str(s.ranks),
                    "--slurm-cpus-per-task",
                    "1",
                ],
                env=dict(
                    DATA_BIN=str(self.data_bin), SAVE_DIR=str(phase1), SCALE="tiny", MAX_UPDATE=str(s.phase1_updates)
                ),
                save_dir=phase1,
            ),
            Job(
                "phase2",
                ["bash", str(recipes / "phase2_contrastive.sh"), *launcher, "--slurm-job-name", "vega-phase2"],
                env=dict(
                    DATA_BIN=str(self.data_bin),
                    SAVE_DIR=str(phase2),
                    SCALE="tiny",
                    MAX_UPDATE=str(s.phase2_updates),
                    PHASE1_CKPT=str(phase1 / "checkpoint_last.pt"),
                ),
                save_dir=phase2,
            ),
            Job(
                "model",
                [
                    str(BIN / "vega-convert"),
                    "export",
                    str(phase2 / "checkpoint_last.pt"),
                    "--data-bin",
                    str(self.data_bin),
                    str(model),
                ],
                via="sbatch",
            ),
        ]

    def glue_env(self) -> dict[str, str]:
        """recipes/glue/all.sh's environment: the whole plan, every training a SLURM job, submitted held."""
        return dict(
            GLUE_DIR=str(self.glue_dir),
            PRETRAINED=str(self.out / "model"),
            OUT=str(self.out / "glue"),
            SCALE="tiny",
            LAUNCHER="submitit",
            SLURM_ARGS="--slurm-hold --slurm-time 30",
            # the fixtures' test files have 12 rows, not the official counts (validate-submission checks
            # the zip against the files themselves)
            GENERATE_ARGS="--allow-partial",
        )

    # ------------------------------------------------------------------ submission
    def submit(self, job: Job, after: Sequence[str]) -> str:
        """Submit `job` held, waiting (afterok) for the jobs named in `after`; returns its SLURM id."""
        ids = [self.jobs[name].job_id for name in after]
        if job.via == "sbatch":
            job.job_id = slurm.sbatch(job.command, f"vega-{job.name}", str(self.slurm_logs), after=ids, hold=True)
        else:
            dependency = ["--slurm-dependency", "afterok:" + ":".join(ids)] if ids else []
            out = self.run([*job.command, *dependency, "--slurm-hold"], job.env)
            if not submitted_ids(out):
                raise RehearsalError(f"{job.name}: {shlex.join(job.command)} printed no `Submitted job <id>`:\n{out}")
            job.job_id = submitted_ids(out)[-1]
        self.jobs[job.name] = job
        self.log(f"submitted {job.name}: job {job.job_id}" + (f" (afterok {', '.join(after)})" if after else ""))
        return job.job_id

    def run(self, argv: list[str], env: dict[str, str]) -> str:
        """Run a submitting command here (a recipe); its stdout, or RehearsalError with its output."""
        proc = subprocess.run(argv, env={**self.env, **env}, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RehearsalError(
                f"{shlex.join(argv)} failed (exit {proc.returncode}):\n" + proc.stdout[-2000:] + proc.stderr[-3000:]
            )
        return proc.stdout

    def submit_glue(self) -> None:
        """recipes/glue/all.sh under LAUNCHER=submitit, then the vega-generate command it prints, after all of it.
        all.sh submits one recipe after the other (each reads the task table and parses its flags: tens of seconds):
        a job is released as soon as it and every job that waits for it have been checked, so the early ones train
        while the later ones are submitted."""
        chain = list(GRAPH["generate"])
        errors = self.slurm_logs / "glue-recipes.err"
        lines = []
        with open(errors, "w") as err:
            proc = subprocess.Popen(
                ["bash", str(REPO / "recipes" / "glue" / "all.sh")],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**self.env, **self.glue_env()},
            )
            for line in proc.stdout:
                lines.append(line)
                for job_id in submitted_ids(line):
                    task = slurm.show_job(job_id)["JobName"][len("vega-glue-") :]  # the recipes' job names
                    self.jobs[task] = Job(task, [], job_id=job_id, save_dir=self.out / "glue" / task)
                    self.log(f"submitted {task}: job {job_id} (recipes/glue/all.sh)")
                    self.check_and_release(chain)
        out = "".join(lines)
        if proc.wait() != 0:
            raise RehearsalError(
                f"recipes/glue/all.sh failed (exit {proc.returncode}):\n{out[-2000:]}{_tail(str(errors))}"
            )
        missing = [task for task in chain if task not in self.jobs]
        if missing or "pack the submission with:" not in out:
            raise RehearsalError(f"recipes/glue/all.sh submitted no job for {missing or 'vega-generate'}:\n{out}")
        generate = shlex.split(out[out.index("pack the submission with:") :].splitlines()[1])
        generate[0] = str(BIN / generate[0])
        self.submission = Path(generate[generate.index("--out-dir") + 1]) / "submission.zip"
        self.submit(Job("generate", generate, via="sbatch"), after=GRAPH["generate"])
        self.check_and_release(["generate"])

    def recorded_graph(self, names: Sequence[str]) -> dict[str, list[str]]:
        """job -> the jobs SLURM waits for (afterok), as SLURM recorded them."""
        by_id = {job.job_id: job.name for job in self.jobs.values()}
        graph = {}
        for name in names:
            recorded = slurm.show_job(self.jobs[name].job_id)["Dependency"]
            # "afterok:12(unfulfilled),afterok:13(unfulfilled)" or "afterok:12:13"
            ids = [i for group in re.findall(r"afterok:([0-9:]+)", recorded) for i in group.split(":") if i]
            graph[name] = sorted(by_id.get(i, i) for i in ids)
        return graph

    def check(self, name: str) -> None:
        """SLURM must wait for exactly the jobs the paper's graph says; SLURM drops a dependency once it is satisfied,
        so a job that already succeeded may be missing from the record (jobs stay held until those waiting for them
        are checked, which keeps that case to vega-generate's dependencies)."""
        self.poll()
        waits_for = self.recorded_graph([name])[name]
        done = [n for n in GRAPH[name] if n not in waits_for and n in self.jobs and self.jobs[n].state == "COMPLETED"]
        if sorted(waits_for + done) != sorted(GRAPH[name]):
            raise RehearsalError(
                f"{name}: SLURM waits for {waits_for or 'nothing'}, the paper's graph for "
                f"{sorted(GRAPH[name]) or 'nothing'}"
            )
        self.jobs[name].info["after"] = ",".join(GRAPH[name]) or "-"
        self.jobs[name].checked = True

    def check_and_release(self, names: Sequence[str]) -> None:
        """Check the submitted jobs among `names`; release (they were submitted held) each one whose dependents among
        `names` have all been submitted and checked: a job that ran first would leave no dependency to check."""
        held = [self.jobs[n] for n in names if n in self.jobs and not self.jobs[n].released]
        for job in held:
            if not job.checked:
                self.check(job.name)
        ready = [
            job for job in held if all(n in self.jobs and self.jobs[n].checked for n in names if job.name in GRAPH[n])
        ]
        slurm.release([job.job_id for job in ready])
        for job in ready:
            job.released = True

    # ------------------------------------------------------------------ following the jobs
    def poll(self) -> None:
        for job in self.jobs.values():
            if job.state in slurm.TERMINAL_STATES:
                continue  # SLURM forgets finished jobs after MinJobAge: keep what was last seen
            info = slurm.show_job(job.job_id)
            if info is None:
                raise RehearsalError(f"{job.name}: SLURM no longer knows job {job.job_id}")
            job.info.update(info)
            if job.state in slurm.TERMINAL_STATES and job.state != "COMPLETED":
                raise RehearsalError(
                    f"{job.name} (job {job.job_id}) ended {job.state}; log: {job.info.get('StdErr')}"
                    f"\n{_tail(job.info.get('StdErr'))}"
                )

    def maybe_requeue(self) -> None:
        """Requeue the target once it runs and has written an interval checkpoint (what a preemption would lose)."""
        job = self.jobs.get(self.requeue_target)
        if self.requeued or job is None or job.state != "RUNNING":
            return
        saved = [
            int(m.group(1))
            for p in job.save_dir.glob("checkpoint_*_*.pt")
            if (m := re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", p.name))
        ]
        if saved:
            self.log(
                f"requeueing {job.name} (job {job.job_id}) after its checkpoint at update {max(saved)} "
                f"(scontrol requeue)"
            )
            slurm.requeue(job.job_id)
            self.requeued = True

    def wait(self, names: Sequence[str], deadline: float) -> None:
        while any(self.jobs[n].state != "COMPLETED" for n in names):
            if time.monotonic() > deadline:
                late = {n: self.jobs[n].state for n in names if self.jobs[n].state != "COMPLETED"}
                raise RehearsalError(f"jobs still unfinished at the time limit: {late}")
            self.poll()
            self.maybe_requeue()
            time.sleep(0.2)

    def check_resumed(self) -> int:
        """1 if the requeued job resumed from its checkpoint_last.pt mid-way and still reached its last update."""
        from vega_toolkit.io.checkpoints import read_num_updates

        job = self.jobs[self.requeue_target]
        if not self.requeued:
            raise RehearsalError(
                f"{job.name} finished before it wrote an interval checkpoint: nothing was requeued "
                f"(give it more updates)"
            )
        last = int(job.env["MAX_UPDATE"])
        log = "".join(_read(job.info.get(k)) for k in ("StdOut", "StdErr"))
        # fairseq's line for its own checkpoint_last.pt (phase 2 also logs loading phase 1's, at 0 updates)
        own = re.escape(str(job.save_dir / "checkpoint_last.pt"))
        resumed = [int(u) for u in re.findall(rf"Loaded checkpoint {own} \(epoch \d+ @ (\d+) updates\)", log)]
        reached = read_num_updates(job.save_dir / "checkpoint_last.pt")
        if int(job.info.get("Restarts", 0)) < 1 or not resumed or not 0 < resumed[-1] < last or reached != last:
            raise RehearsalError(
                f"{job.name} (job {job.job_id}) did not resume from its checkpoint: restarts "
                f"{job.info.get('Restarts')}, resumed at {resumed or 'no checkpoint'}, ended at "
                f"update {reached} of {last}; log: {job.info.get('StdErr')}"
            )
        self.log(f"{job.name} resumed from checkpoint_last.pt at update {resumed[-1]} and ended at update {reached}")
        return 1

    def check_submission(self) -> int:
        out = self.run(
            [
                sys.executable,
                "-m",
                "vega_toolkit.cli.glue",
                "validate-submission",
                str(self.submission),
                "--glue-dir",
                str(self.glue_dir),
                "--allow-partial",
            ],
            {},
        )
        self.log(out.rstrip())
        import zipfile

        with zipfile.ZipFile(self.submission) as zf:
            return len(zf.namelist())

    # ------------------------------------------------------------------ the whole rehearsal
    def prepare(self) -> None:
        if self.out.exists() and any(self.out.iterdir()):
            raise RehearsalError(f"--out {self.out} is not empty: give a new folder (nothing is overwritten)")
        for name in ("MNLI", "diagnostic"):
            if not (self.glue_dir / name).is_dir():
                raise RehearsalError(
                    f"--glue-dir {self.glue_dir} has no {name}/ folder: the paper plan needs every "
                    f"GLUE task (tests/fixtures/glue has them all)"
                )
        if shutil.which("sbatch") is None or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
            raise RehearsalError(
                "no SLURM answers here (sbatch/sinfo): start one with `bash scripts/slurm_local.sh "
                "start` and export the SLURM_CONF it prints"
            )
        self.slurm_logs.mkdir(parents=True)
        if not self.corpus.exists():
            from vega_toolkit.demo.toy_data import write_toy_data

            write_toy_data(
                self.out / "data", seed=1, corpus_paragraphs=self.sizes.corpus_paragraphs, task_sizes=(8, 8, 8)
            )

    def run_all(self, time_limit_s: float = 3600) -> str:
        start = time.monotonic()
        deadline = start + time_limit_s
        self.prepare()
        try:
            pretraining = self.pretraining_jobs()
            for job in pretraining:
                self.submit(job, GRAPH[job.name])
            self.check_and_release([job.name for job in pretraining])
            self.wait(["model"], deadline)
            self.submit_glue()
            self.wait(list(self.jobs), deadline)
        except BaseException:
            slurm.cancel(
                [job.job_id for job in self.jobs.values() if job.job_id and job.state not in slurm.TERMINAL_STATES]
            )
            raise
        resumed = self.check_resumed()
        files = self.check_submission()
        # what vega-generate printed: one dev line per task and the GLUE score (16-row fixtures: a smoke test only)
        generated = _read(self.jobs["generate"].info.get("StdOut")).splitlines()
        self.log("\n".join(line for line in generated if line.startswith("dev ") or "submission.zip" in line))
        self.log(self.table())
        self.log(f"wall time {time.monotonic() - start:.0f} s")
        return f"rehearsal: {len(self.jobs)} jobs, {resumed} requeued and resumed, submission.zip with {files} files"

    def table(self) -> str:
        rows = [("job", "slurm id", "state", "restarts", "run time", "afterok")]
        rows += [
            (
                j.name,
                j.job_id,
                j.state,
                j.info.get("Restarts", "?"),
                j.info.get("RunTime", "?"),
                j.info.get("after", "-"),
            )
            for j in self.jobs.values()
        ]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def submitted_ids(output: str) -> list[str]:
    """The ids of `Submitted job <id>` lines (vega-train --launcher submitit, the GLUE recipes)."""
    return re.findall(r"^Submitted job (\d+)$", output, re.M)


def _read(path: str | None) -> str:
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def _tail(path: str | None, lines: int = 30) -> str:
    return "\n".join(_read(path).splitlines()[-lines:])
