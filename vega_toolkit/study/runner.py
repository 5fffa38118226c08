"""Run a study's cells as real subprocesses, resumably.

    vega-study run --scale smoke --out /tmp/study-smoke --jobs 2    # the same command again resumes it

A finished cell is a JSON line in OUT/results.jsonl carrying its key; a re-run skips every cell whose key is there,
so a killed study resumes at its first unfinished cell, and a cell whose configuration changed (new key) runs again.
A pretraining cell that was killed resumes from its own checkpoint_last.pt (its folder carries its key); a
fine-tuning cell is short and starts over in a wiped folder. Independent cells run side by side (`--jobs`), each
with `Cell.threads` BLAS threads; every cell's output goes to OUT/logs/<cell>.log. Several runners may share one
folder: each claims a cell before starting it (cell_claims.py) and goes on without the cells others are running.
"""

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

from vega_toolkit.data.glue_binarize import file_sha256
from vega_toolkit.launch.preloaded import ForkedCommand, PreloadedCommands
from vega_toolkit.study import carried
from vega_toolkit.study.cell_claims import CellClaims
from vega_toolkit.study.cells import Cell, build_cells
from vega_toolkit.study.plan import ARMS, Scale, resolve_arms
from vega_toolkit.study.pretrain_lr import chosen_pretrain_lrs
from vega_toolkit.study.selection import checkpoint_of, edge_extensions, score_grid

# cells that fine-tune on a GLUE task and are scored on its dev set; an "intermediate" one's model is the start
# of other cells (intermediate-task arms) and enters no table
FINE_TUNINGS = ("finetune", "intermediate")
# how long a stopped study waits for its cells' checkpoints (one update and one validation of the slowest scale
# run here)
STOP_GRACE_S = 300
# how often a runner looks again at cells another runner on the same folder is running
CLAIM_POLL_S = 5.0

RESULTS_FILE = "results.jsonl"
STUDY_FILE = "study.json"
BIN = Path(sys.executable).parent
_DEV_LINE = re.compile(r"^dev (?P<task>\S+) (?P<split>\S+) (?P<metrics>(?:\S+=\S+ ?)+)$")
_VALID_LINE = re.compile(r"\| valid on '(?P<subset>[^']+)' subset \| (?P<metrics>.*)$")


class CellFailed(RuntimeError):
    pass


def read_results(out: Path) -> list[dict]:
    path = Path(out) / RESULTS_FILE
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:  # a line cut by a kill during the append: that cell runs again
                print(f"vega-study: {path}:{lineno}: unreadable result line ignored ({e})", file=sys.stderr)
    return records


def newest_records(records: list[dict]) -> dict[str, dict]:
    """name -> the newest record of each cell name: a cell re-run under another configuration keeps its name, and
    its later line supersedes the earlier ones."""
    return {r.get("name", r["key"]): r for r in records}


def append_result(out: Path, record: dict):
    """Append `record` to OUT/results.jsonl as one line, under a file lock (other runners on the folder append
    too). One write of one line: a kill leaves at most one torn last line, which read_results skips; the next
    append ends that line first, or its record would be glued onto it and lost as well."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    with (Path(out) / RESULTS_FILE).open("ab+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


# what a cell's result does not depend on: committed study folders (a running study appends to its results.jsonl,
# so any second runner would otherwise stamp "-dirty") and the prose
NOT_CODE = (":(exclude)results", ":(exclude)*.md")


def code_version(root: Path | None = None) -> str:
    """The toolkit's git commit (with -dirty when the checkout's code has uncommitted changes), or its version."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from vega_toolkit import __version__

        return f"vega-toolkit {__version__}"


def parse_dev_scores(log_text: str) -> dict[str, dict[str, float]]:
    """{split: {metric: value}} from vega-generate --dev's `dev TASK SPLIT metric=value ...` lines."""
    scores = {}
    for line in log_text.splitlines():
        m = _DEV_LINE.match(line.strip())
        if m:
            scores[m["split"]] = {k: float(v) for k, v in (kv.split("=") for kv in m["metrics"].split())}
    return scores


def parse_validation_curve(log_text: str) -> list[dict[str, float]]:
    """Every `valid on 'valid' subset | k v | ...` line of a fairseq log as a dict of numbers, in update order. A
    pretraining's log holds all its attempts (a resumed run may validate an update twice): the last one counts. A
    cell of two phases (`$ vega-train` lines with different commands) counts its updates from 0 again in the second:
    each command's validations are kept apart, in the order the commands first ran."""
    by_command: dict[str, dict[float, dict[str, float]]] = {}
    command = ""
    for line in log_text.splitlines():
        if line.startswith("$ "):
            command = line
            continue
        m = _VALID_LINE.search(line)
        if not m or m["subset"] != "valid":
            continue
        point = {}
        for part in m["metrics"].split(" | "):
            name, _, value = part.strip().partition(" ")
            try:
                point[name] = float(value)
            except ValueError:
                pass
        points = by_command.setdefault(command, {})
        points[point.get("num_updates", len(points))] = point
    return [points[u] for points in by_command.values() for u in sorted(points)]


def generate_dev_scores(log_text: str) -> list[dict[str, dict[str, float]]]:
    """The dev scores of each `$ vega-generate` command of a cell's log, in the order they ran (the scored
    checkpoint's first, then the per-epoch best's where the cell scores both)."""
    scores, current = [], None
    for line in log_text.splitlines():
        if line.startswith("$ "):
            current = {} if line.startswith("$ vega-generate") or "/vega-generate " in line.split()[1] else None
            if current is not None:
                scores.append(current)
            continue
        if current is not None:
            current.update(parse_dev_scores(line))
    return [s for s in scores if s]


def compact_predictions(values: list[str], labels=()) -> object:
    """Dev predictions (one string per example) as results.jsonl keeps them: with the task's LABELS (fewer than
    10), one digit per example, the label's index ("0110..."); else a list (STS-B's scores, 4 decimals)."""
    if labels and len(labels) < 10 and all(v in labels for v in values):
        return "".join(str(labels.index(v)) for v in values)
    try:
        return [round(float(v), 4) for v in values]
    except ValueError:
        return list(values)


def expand_predictions(compact, labels=()) -> list[str]:
    """compact_predictions' value back to one prediction (a label string, or a score) per dev example."""
    if isinstance(compact, str):
        return [labels[int(c)] if labels else c for c in compact]
    return [str(v) for v in compact]


_RAN = re.compile(r"^# vega-study: `[^`]+` ran (?P<s>\d+(?:\.\d+)?) s", re.M)


def logged_run_s(log_text: str) -> float:
    """The seconds of every command a cell's log records (`# vega-study: `CMD` ran N s`), over all its attempts: a
    resumed pretraining's own clock sees only its last attempt. An attempt killed with its runner (SIGKILL) leaves
    no such line and is not counted."""
    return sum(float(m["s"]) for m in _RAN.finditer(log_text))


def cell_log_path(out: Path, cell_name: str) -> Path:
    """Where the runner writes the output of cell `cell_name` (e.g. `rtd_ternary/CoLA/lr0.001/seed1`)."""
    return Path(out) / "logs" / (cell_name.replace("/", "_").replace(" ", "_") + ".log")


class StudyRunner:
    def __init__(
        self,
        scale: Scale,
        out: Path,
        glue_dir: str,
        corpus_dir: str,
        jobs: int = 1,
        extra_finetune_args: tuple[str, ...] = (),
        arms=None,
        tasks=None,
        threads: int | None = None,
        log: Callable[[str], None] = print,
        preload: bool = True,
    ):
        self.scale, self.out, self.jobs, self.log = scale, Path(out).resolve(), max(1, jobs), log
        self.paths = {
            "out": str(self.out),
            "glue": str(Path(glue_dir).resolve()),
            "corpus": str(Path(corpus_dir).resolve()),
        }
        if not scale.local:
            raise ValueError(
                f"the {scale.name} scale has no local execution: `vega-study plan --scale {scale.name}` "
                f"prints its cluster commands"
            )
        self.arms, self.extra_finetune_args = resolve_arms(scale, arms), tuple(extra_finetune_args)
        self.tasks, self.threads = tasks, threads
        self.extensions = self._edge_extensions()
        self.pretrain_lrs = self._chosen_pretrain_lrs()
        self.cells = self._build()
        self.commit = code_version()
        self._lock = threading.Lock()
        self.claims = CellClaims(self.out)
        self._children: dict[int, subprocess.Popen | ForkedCommand] = {}
        # the toolkit's own commands start forked from one server that has imported fairseq once (launch/preloaded.py)
        self._preloaded = PreloadedCommands() if preload else None
        self._rebuilding: set[str] = set()  # keys of finished cells whose missing outputs Cell.rebuild re-makes

    def _build(self) -> list[Cell]:
        cells = build_cells(
            self.scale,
            self.paths["glue"],
            self.paths["corpus"],
            self.extra_finetune_args,
            self.arms,
            self.tasks,
            self.extensions,
            self.pretrain_lrs,
        )
        if self.threads:  # BLAS threads per cell, whatever the scale declares (keys do not depend on it)
            for cell in cells:
                cell.threads = self.threads
        return cells

    def _edge_extensions(self) -> dict[tuple[str, str], tuple[float, ...]]:
        """The grid points the edge rule adds, from the finished last-checkpoint cells in the folder."""
        newest = newest_records(read_results(self.out))
        scored_last = [r for r in newest.values() if checkpoint_of(r) == "last"]
        seeds = {int(s) for s in self.scale.seeds}

        def wanted(task, arm):
            pretrained = arm in ARMS and ARMS[arm].pretrained
            return {(p, s) for p in (self.scale.pretrain_seeds_of(arm) if pretrained else (1,)) for s in seeds}

        return edge_extensions(score_grid(scored_last), self.scale.learning_rates, self.scale.lr_edge_steps, wanted)

    def _chosen_pretrain_lrs(self) -> dict[str, float] | None:
        """{arm: pretraining rate} the grid's rule chose from the finished runs in the folder (pretrain_lr.py); None
        for a scale without a grid (every arm at its rate, nothing waits)."""
        if not self.scale.pretrain_lr_grid:
            return None
        newest = newest_records(read_results(self.out))
        return chosen_pretrain_lrs(list(newest.values()), self.scale.pretrain_lr_grid, self.scale.pretrain.lr)

    def _alias_reused_cells(self):
        """A planned cell whose key finished under another name (the compute axis' 1,500-update pretraining is the
        first cpu study's pretraining, same commands) gets a record under its own name, so that the report finds
        it by that name; nothing runs again."""
        records = read_results(self.out)
        names = {(r["key"], r.get("name")) for r in records}
        by_key = {r["key"]: r for r in records}
        for cell in self.cells:
            if cell.key in by_key and (cell.key, cell.name) not in names:
                before = by_key[cell.key]
                self._append({**before, **cell.fields, "name": cell.name, "alias_of": before.get("name")})

    # ------------------------------------------------------------------ bookkeeping
    def _append(self, record: dict):
        with self._lock:
            append_result(self.out, record)

    def _write_study_file(self):
        """study.json: the scale, and the arms of every run into this folder with the number of cells of all of
        them. A run of some arms or tasks (`--arms masked_lm`, `--tasks SST-2`) adds to the folder's study; it does
        not shrink what the report counts as planned."""
        arms = list(self.arms)
        path = self.out / STUDY_FILE
        if path.exists():
            before = json.loads(path.read_text())
            if before.get("scale", {}).get("name") == self.scale.name:  # an arm withdrawn since is not planned
                arms = [a for a in dict.fromkeys([*before.get("arms", []), *arms]) if a in ARMS]
        planned = build_cells(
            self.scale, self.paths["glue"], self.paths["corpus"], self.extra_finetune_args, tuple(arms)
        )
        study = {
            "scale": asdict(self.scale),
            "arms": arms,
            "paths": self.paths,
            "cells": len({cell.key for cell in planned}),
        }
        tmp = path.with_name(f".{STUDY_FILE}.{os.getpid()}")  # another runner may be reading it
        tmp.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def _log_path(self, cell: Cell) -> Path:
        return cell_log_path(self.out, cell.name)

    # ------------------------------------------------------------------ one cell
    def _output_hashes(self, cell: Cell) -> dict[str, str]:
        """sha256 of each of the cell's outputs (by templated name)."""
        return {name: file_sha256(name.format(**self.paths)) for name in cell.outputs}

    def _recorded_output_hashes(self, cell: Cell) -> dict[str, str]:
        """The outputs' hashes the finished cell recorded; a re-making is refused without them, because the code that
        makes them may have changed since (the cpu study's preprocessing did) and nothing else would tell."""
        recorded = newest_records(r for r in read_results(self.out) if r["key"] == cell.key and "outputs_sha256" in r)
        if not recorded:
            raise CellFailed(
                f"{cell.name}: cannot re-make its missing outputs: its record has no checksums of them (it finished "
                f"before vega-study recorded them), so a re-made file could differ unnoticed; restore the missing "
                f"files from where the study ran"
            )
        return next(iter(recorded.values()))["outputs_sha256"]

    def _check_remade(self, cell: Cell, before: dict[str, str | None], now: dict[str, str]):
        """Every re-made output (`before`: the ones that were missing, with their recorded hashes) must be the file
        the finished cell made; a differing one is removed (nothing the study had is lost) and the cell fails."""
        differ = [name for name in before if now.get(name) != before[name]]
        if differ:
            for name in differ:
                Path(name.format(**self.paths)).unlink(missing_ok=True)
            shown = differ[0].format(**self.paths)
            raise CellFailed(
                f"{cell.name}: the re-made {shown} differs from the one it made when it finished (sha256 "
                f"{now.get(differ[0], '')[:12]} against {(before[differ[0]] or 'none recorded')[:12]}): the code that "
                f"makes it has changed; "
                f"restore the missing files from where the study ran"
            )

    def _run_cell(self, cell: Cell) -> dict:
        workdir = Path(cell.workdir.format(**self.paths))
        if cell.kind in FINE_TUNINGS and workdir.exists():
            shutil.rmtree(workdir)  # a killed fine-tuning restarts clean; pretraining resumes its checkpoint
        log_path = self._log_path(cell)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if cell.kind == "pretrain":  # ... its own, or one carried from another machine (carried.py) when ahead
            for path, update, replaced in carried.restore(self.out, workdir):
                was = f"update {replaced}" if replaced is not None else "no checkpoint"
                self.log(f"  {cell.name}: resuming from the carried checkpoint at update {update} ({path}: {was})")
        env = dict(
            os.environ, OMP_NUM_THREADS=str(cell.threads), MKL_NUM_THREADS=str(cell.threads), PYTHONUNBUFFERED="1"
        )
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        t0 = time.time()
        rebuild = cell.key in self._rebuilding
        commands = cell.resolve(self.paths, rebuild)
        made_before = self._recorded_output_hashes(cell) if rebuild else None
        remade = [name for name in cell.outputs if not Path(name.format(**self.paths)).exists()]
        # a pretraining resumes its checkpoint, so its log keeps every attempt; a fine-tuning restarts clean. Appended
        # to (O_APPEND) by this process and by its commands, forked ones included, in turn
        if cell.kind != "pretrain":
            log_path.write_text("", encoding="utf-8")
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"# vega-study: {cell.name} started {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            for cmd in commands:
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                proc = self._preloaded and self._preloaded.start(cmd, log_path, env, self.out)
                if proc is None:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.out)
                self._children[proc.pid] = proc
                started = time.time()
                try:
                    rc = proc.wait()
                finally:
                    self._children.pop(proc.pid, None)
                    log.write(f"# vega-study: `{cmd[0]}` ran {time.time() - started:.1f} s\n")
                if rc != 0:
                    raise CellFailed(f"{cell.name}: `{cmd[0]}` exited with {rc}; see {log_path}")
        if cell.kind == "pretrain":
            carried.drop(self.out, workdir)
        hashes = self._output_hashes(cell) if cell.rebuild else None
        if made_before is not None:
            self._check_remade(cell, {name: made_before.get(name) for name in remade}, hashes)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        record = {
            "kind": cell.kind,
            "name": cell.name,
            "key": cell.key,
            "scale": self.scale.name,
            **cell.fields,
            "commands": [" ".join(c) for c in (cell.rebuild if rebuild else cell.commands)],
            "commit": self.commit,
            "wall_s": round(time.time() - t0, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if hashes:  # what a later re-making of the outputs (Cell.rebuild) must give again
            record["outputs_sha256"] = hashes
        if cell.kind in FINE_TUNINGS:
            from vega_toolkit.metrics.glue_metrics import task_score
            from vega_toolkit.models.glue_predictor import DEV_PREDICTIONS

            scored = generate_dev_scores(text)
            if not scored:
                raise CellFailed(f"{cell.name}: no dev scores in {log_path}")
            record["dev"] = scored[0]
            record["score"] = task_score(cell.fields["task"], next(iter(scored[0].values())))
            if len(scored) > 1:  # the per-epoch best checkpoint, scored to compare the two rules
                record["dev_best"] = scored[1]
                record["score_best"] = task_score(cell.fields["task"], next(iter(scored[1].values())))
            kept = sorted((workdir / "predictions" / DEV_PREDICTIONS).glob("*.txt"))
            if kept:  # {split: one prediction per dev example}: a re-analysis needs no cell folder
                from vega_toolkit.data.glue_tasks import get_glue_task

                labels = get_glue_task(cell.fields["task"]).labels
                record["dev_predictions"] = {
                    p.stem.split(".", 1)[1]: compact_predictions(p.read_text(encoding="utf-8").split(), labels)
                    for p in kept
                }
            ckpt = workdir / "ckpt"
            if cell.kind == "finetune" and ckpt.exists():
                # the score and predictions are kept; 100 cells of optimizer state are not (an intermediate
                # fine-tuning's checkpoint is what later cells start from)
                shutil.rmtree(ckpt)
        elif cell.kind == "pretrain":
            record["valid_curve"] = parse_validation_curve(text)
            record["wall_s"] = round(max(record["wall_s"], logged_run_s(text)), 1)
        return record

    # ------------------------------------------------------------------ the grid
    def run(self) -> int:
        """Run every pending cell; then, while the edge rule asks for grid points the finished cells did not have, or
        the pretraining rate of an arm is newly chosen (its seeds and fine-tunings wait for it), run those too."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._write_study_file()
        try:
            return self._run_passes()
        finally:
            if self._preloaded:
                self._preloaded.close()

    def _run_passes(self) -> int:
        rc = 0
        while True:
            self._alias_reused_cells()
            rc = max(rc, self._run_pass())
            extensions, pretrain_lrs = self._edge_extensions(), self._chosen_pretrain_lrs()
            if extensions == self.extensions and pretrain_lrs == self.pretrain_lrs:
                return rc
            if extensions != self.extensions:
                self.log(
                    f"vega-study: the edge rule adds {sum(map(len, extensions.values()))} grid points "
                    f"({', '.join(f'{a} {t} lr {lr:g}' for (a, t), lrs in sorted(extensions.items()) for lr in lrs)})"
                )
            for arm, lr in sorted((pretrain_lrs or {}).items()):
                if (self.pretrain_lrs or {}).get(arm) != lr:
                    self.log(f"vega-study: the pretraining learning-rate rule chose {lr:g} for {arm}")
            self.extensions, self.pretrain_lrs = extensions, pretrain_lrs
            self.cells = self._build()

    def _run_pass(self) -> int:
        recorded = Counter(r["key"] for r in read_results(self.out))
        done = set(recorded)

        def recorded_since():  # keys another runner on this folder has written since this one started
            now = Counter(r["key"] for r in read_results(self.out))
            return {key for key, n in now.items() if n > recorded[key]}

        # a finished cell whose outputs are gone (a fresh checkout of a committed study) runs again if a cell
        # still to run reads them; pretraining is seeded, so it reproduces the same model
        rerun = True
        while rerun:  # to a fixed point: re-running pretraining needs the data-bin too
            rerun = False
            needed = {d for c in self.cells if c.key not in done for d in c.deps}
            for cell in self.cells:
                missing = [p for p in cell.outputs if not Path(p.format(**self.paths)).exists()]
                if cell.key in needed and cell.key in done and missing:
                    rebuilt = cell.rebuild and len(missing) < len(cell.outputs)
                    how = "re-making it from the outputs still there" if rebuilt else "running it again"
                    self.log(f"vega-study: {cell.name} finished before but {missing[0]} is missing: {how}")
                    if rebuilt:
                        self._rebuilding.add(cell.key)
                    done.discard(cell.key)
                    rerun = True
        pending = [c for c in self.cells if c.key not in done]
        total, skipped = len(self.cells), len(self.cells) - len(pending)
        self.log(
            f"vega-study: {self.scale.name} scale, {total} cells, {skipped} already finished "
            f"(skipped), {len(pending)} to run with --jobs {self.jobs}; results in {self.out / RESULTS_FILE}"
        )
        failed: list[str] = []
        finished = set(done)
        running = {}
        started, ran_here, t_start = 0, 0, time.time()
        in_study = {c.key for c in self.cells}
        elsewhere: dict[str, str] = {}  # key -> pid of the other runner holding it, announced once
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:

            def slots_used():
                return sum(min(c.threads, self.jobs) for c in running.values())

            while pending or running:
                if elsewhere:  # another runner may have finished what this one waits for
                    finished |= recorded_since()
                for cell in [c for c in pending if c.key in finished]:
                    pending.remove(cell)
                    self.claims.release(cell.key)
                    self.log(f"  done {cell.name} by another vega-study run (pid {elsewhere.pop(cell.key, '?')})")
                for cell in [c for c in pending if any(d in failed for d in c.deps)]:
                    pending.remove(cell)
                    failed.append(cell.key)
                    self.log(f"  skipped {cell.name}: a cell it depends on failed")
                for cell in list(pending):
                    if any(d not in finished for d in cell.deps):
                        continue
                    if slots_used() + min(cell.threads, self.jobs) > self.jobs:
                        break  # keep run order: wait for room rather than jump ahead
                    if not self.claims.try_claim(cell.key):
                        if cell.key not in elsewhere:
                            elsewhere[cell.key] = self.claims.holder(cell.key)
                            self.log(
                                f"  {cell.name} is running in another vega-study run on this folder "
                                f"(pid {elsewhere[cell.key]}): going on without it"
                            )
                        continue
                    if cell.key in recorded_since():
                        finished.add(cell.key)  # finished by another runner since this one read the results
                        continue
                    elsewhere.pop(cell.key, None)  # its runner stopped without finishing it: this one runs it
                    pending.remove(cell)
                    started += 1
                    self.log(f"[{skipped + started}/{total}] {cell.kind} {cell.name} ...")
                    running[pool.submit(self._run_cell, cell)] = cell
                if not running:
                    if (
                        pending
                        and all(d in in_study for c in pending for d in c.deps)
                        and (elsewhere or any(c.key in finished for c in pending))
                    ):
                        time.sleep(CLAIM_POLL_S)  # the rest waits on cells another runner is running
                        continue
                    for cell in pending:
                        failed.append(cell.key)
                        self.log(f"  cannot run {cell.name}: its dependencies are not in this study")
                    break
                done_now, _ = wait(
                    list(running), timeout=CLAIM_POLL_S if elsewhere else None, return_when=FIRST_COMPLETED
                )
                for future in done_now:
                    cell = running.pop(future)
                    try:
                        record = future.result()
                    except CellFailed as e:
                        self.claims.release(cell.key)
                        failed.append(cell.key)
                        self.log(f"  FAILED {e}")
                        continue
                    self._append(record)
                    self.claims.release(cell.key)  # only once its line is written: no other runner redoes it
                    finished.add(cell.key)
                    ran_here += 1
                    shown = f" score={record['score']:.2f}" if "score" in record else ""
                    self.log(f"  done {cell.name} in {record['wall_s']:.0f} s{shown}")
        by_others = len(finished) - len(done) - ran_here
        self.log(
            f"vega-study: {ran_here} cells run"
            + (f", {by_others} by another runner" if by_others else "")
            + f", {len(failed)} failed, {time.time() - t_start:.0f} s"
        )
        return 1 if failed else 0

    def terminate_children(self, *_):
        """SIGTERM to the study: each running cell gets it too, and a pretraining saves checkpoint_last.pt at its
        next update (vega_toolkit/runtime/graceful_stop.py). Wait for those saves, so the next `vega-study run` resumes
        from them rather than from the last --save-interval-updates checkpoint."""
        children = list(self._children.values())
        for proc in children:
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in children:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        raise SystemExit(128 + signal.SIGTERM)
