"""A study's cells: one real command sequence each, keyed by its fully resolved configuration.

Commands are templates over `{out}` (the study folder), `{glue}` and `{corpus}` (the data folders), so a key does
not depend on where the study or the data live, only on what runs and on the data itself (file names and sizes).
A cell's key covers its commands and, through their paths, the keys of the cells it reads from: changing the
pretraining budget re-runs pretraining and every fine-tuning cell of that arm; changing one task's grid re-runs
only that task's cells.
"""

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.study.plan import Arm, Scale, TaskPlan, find_task, get_arm, pretrain_budget, resolve_arms

KEY_CHARS = 12


@dataclass
class Cell:
    kind: str  # preprocess | pretrain | finetune
    name: str  # human-readable, unique within a study
    commands: list[list[str]]  # each a program + args, templated over {out} {glue} {corpus}
    workdir: str  # templated folder the cell writes into (wiped before a fine-tuning cell starts)
    deps: tuple[str, ...] = ()  # keys of the cells whose outputs the commands read
    fields: dict = field(default_factory=dict)  # what the report groups by (arm, task, lr, seed, ...)
    threads: int = 1
    outputs: tuple[str, ...] = ()  # templated files later cells read: a finished cell without them runs again
    key: str = ""
    # commands that re-make a finished cell's missing outputs from those still there (not part of the key); empty:
    # the cell's own commands run again
    rebuild: list[list[str]] = field(default_factory=list)

    def resolve(self, paths: dict[str, str], rebuild: bool = False) -> list[list[str]]:
        return [[arg.format(**paths) for arg in cmd] for cmd in (self.rebuild if rebuild else self.commands)]


def fingerprint(folder: str | None, pattern: str = "**/*") -> list[tuple[str, int]]:
    """(relative name, size) of the data files a study reads: the data's identity, not its location."""
    if not folder:
        return []
    root = Path(folder)
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.glob(pattern) if p.is_file())


def _key(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:KEY_CHARS]


def _keyed(cell: Cell, data_identity) -> Cell:
    cell.key = _key({"kind": cell.kind, "commands": cell.commands, "deps": list(cell.deps), "data": data_identity})
    return cell


def _with_tokenizer_of(command: list[str], data_bin: str) -> list[str]:
    """A vega-preprocess command that encodes with the tokenizer `data_bin` already holds instead of training one."""
    at = command.index("--vocab-size")
    return [
        *command[:at],
        *command[at + 2 :],
        "--spm-model",
        f"{data_bin}/spm.model",
        "--srcdict",
        f"{data_bin}/dict.txt",
    ]


def _lr_name(lr: float) -> str:
    return f"{lr:g}"


def build_cells(
    scale: Scale,
    glue_dir: str,
    corpus_dir: str,
    extra_finetune_args: tuple[str, ...] = (),
    arms: tuple[str, ...] | None = None,
    tasks: tuple[str, ...] | None = None,
    extensions: dict[tuple[str, str], tuple[float, ...]] | None = None,
    pretrain_lrs: dict[str, float] | None = None,
) -> list[Cell]:
    """Every cell of SCALE in run order: the task-adaptive text (if any), preprocess, the external pool of the
    self-calibrated arms (if any), each arm's first pretraining run, its runs at the pretraining learning-rate grid's
    other rates, its other pretraining seeds, fine-tuning task by task, then the compute axis. ARMS: names, ("all",)
    for the scale's ablation arms, None for its default arms. EXTENSIONS: {(arm, task): learning rates} the edge rule
    adds (selection.edge_extensions). PRETRAIN_LRS: {arm: the pretraining rate the grid's rule chose}
    (pretrain_lr.chosen_pretrain_lrs); an arm of a scale with a grid that it does not name has its grid planned and
    nothing that starts from its pretraining. None: every arm at the scale's rate (what a study plans in all)."""
    unknown = [t for t in tasks or () if t not in {plan.name for plan in scale.tasks}]
    if unknown:  # an unknown name would otherwise run the pretrainings and then no fine-tuning at all
        raise ValueError(
            f"--tasks {','.join(unknown)}: not a task of the {scale.name} scale (its tasks: "
            f"{', '.join(plan.name for plan in scale.tasks)})"
        )
    corpus_id = fingerprint(corpus_dir)
    cells: list[Cell] = []
    inputs, prep_deps = ["{corpus}"], ()
    if scale.task_adaptive_text:
        text = _glue_text_cell("glue training text", scale.task_adaptive_text, glue_dir, "glue-train-text")
        cells.append(text)
        inputs, prep_deps = ["{corpus}", text.outputs[0]], (text.key,)
    prep = _keyed(
        Cell(
            kind="preprocess",
            name="preprocess",
            commands=[
                [
                    "vega-preprocess",
                    *inputs,
                    "--destdir",
                    "{out}/data-bin",
                    *scale.preprocess_args,
                    "--workers",
                    "1",
                    "--seed",
                    "1",
                ]
            ],
            workdir="{out}/data-bin",
            deps=prep_deps,
            fields={},
        ),
        corpus_id,
    )
    # the data-bin folder is named after its key, so a changed tokenizer never overwrites the old one
    prep.commands[0][prep.commands[0].index("{out}/data-bin")] = f"{{out}}/data-bin-{prep.key}"
    prep.workdir = f"{{out}}/data-bin-{prep.key}"
    # the binarized text too: a committed study keeps only the tokenizer, and a pretraining run it still has to do
    # (another seed) needs the text, so the preprocessing (seeded) runs again first
    prep.outputs = tuple(
        f"{prep.workdir}/{name}"
        for name in ("dict.txt", "spm.model", "train.bin", "train.idx", "valid.bin", "valid.idx")
    )
    # ... beside the committed tokenizer, which stays as it is (trained again, its bytes would differ: sentencepiece
    # stores its training file's path)
    prep.rebuild = [_with_tokenizer_of(prep.commands[0], prep.workdir)]
    cells.append(prep)
    data_bin = prep.workdir

    selected = [get_arm(a) for a in resolve_arms(scale, arms)]
    pool = None
    pooled = [a for a in selected if a.external_pool]
    if pooled:  # the other tasks' training text: never the adapted task's own text, never dev/test
        own = {t for a in pooled for t in a.only_tasks}
        pool = _glue_text_cell(
            "external pool", tuple(t.name for t in scale.tasks if t.name not in own), glue_dir, "external-pool"
        )
        cells.append(pool)

    # (pretrained arm, pretraining seed) -> (model folder template, deps). Every arm's first run, then the grid's
    # other rates (the rule needs them all before anything starts from the arm), then the other seeds at the chosen
    # rate, so a resumed study reaches them before the fine-tunings that read them
    model_dirs: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {}
    pretrained = [a.name for a in selected if a.pretrained] + [a.starts_from for a in selected if a.starts_from]
    pretrained_arms = list(map(get_arm, dict.fromkeys(pretrained)))  # unique, in order
    chosen = _chosen_rates(scale, pretrained_arms, pretrain_lrs)
    for arm in pretrained_arms:
        cells.append(_pretrain_cell(scale, arm, data_bin, prep.key, 1))
    cells += _pretrain_lr_cells(scale, pretrained_arms, data_bin, prep.key)
    by_run = {(c.fields["arm"], 1, c.fields["pretrain_lr"]): c for c in cells if c.kind == "pretrain"}
    for seed in sorted({s for arm in pretrained_arms for s in scale.pretrain_seeds_of(arm.name)}):
        for arm in (a for a in pretrained_arms if a.name in chosen and seed in scale.pretrain_seeds_of(a.name)):
            lr = chosen[arm.name]
            pre = by_run.get((arm.name, seed, lr))
            if pre is None:
                pre = _pretrain_cell(scale, arm, data_bin, prep.key, seed, None if lr == scale.pretrain.lr else lr)
                cells.append(pre)
            model_dirs[(arm.name, seed)] = (f"{{out}}/models/{arm.name}-{pre.key}", (pre.key,))

    intermediates: dict[tuple[str, int], Cell] = {}  # (arm, seed) -> its intermediate fine-tuning
    for arm in (a for a in selected if a.intermediate and (a.starts_from, 1) in model_dirs):
        if not any(arm.runs_on(t.name) and (not tasks or t.name in tasks) for t in scale.tasks):
            continue  # none of its tasks is run: no intermediate model is needed
        task = find_task(scale, scale.intermediate_task)
        if task is None:
            raise ValueError(
                f"arm {arm.name}: the {scale.name} scale's intermediate task {scale.intermediate_task} "
                f"is not one of its tasks"
            )
        glue_id = fingerprint(glue_dir, f"{task.name}/*.tsv")
        train_rows = len(read_glue_split(glue_dir, task.name, "train"))
        lr = scale.learning_rates[len(scale.learning_rates) // 2]
        for seed in scale.seeds:
            cell = _finetune_cell(
                scale,
                arm,
                task,
                lr,
                seed,
                data_bin,
                prep.key,
                model_dirs[(arm.starts_from, 1)],
                train_rows,
                (),
                extra_finetune_args,
            )
            cell.kind = "intermediate"
            cell.outputs = (f"{cell.workdir}/ckpt/checkpoint_{cell.fields['checkpoint']}.pt",)
            intermediates[(arm.name, seed)] = _keyed(cell, glue_id)
            cells.append(cell)

    # the averaged tasks first (the claims rest on them), then the tasks reported at their floor
    for task in sorted(scale.tasks, key=lambda t: not t.in_average):
        if tasks and task.name not in tasks:
            continue
        glue_id = fingerprint(glue_dir, f"{task.name}/*.tsv")
        train_rows = len(read_glue_split(glue_dir, task.name, "train"))
        for arm in selected:
            if not arm.runs_on(task.name):
                continue
            arm_args = tuple(
                a.replace("{pool}", pool.outputs[0]) if pool else a
                for a in arm.finetune_args + scale.extra_arm_args(arm.name)
            )
            learning_rates = scale.learning_rates + tuple(
                lr for lr in (extensions or {}).get((arm.name, task.name), ()) if lr not in scale.learning_rates
            )
            pretrain_seeds = scale.pretrain_seeds_of(arm.name) if arm.pretrained else (1,)
            for pretrain_seed in pretrain_seeds:
                model = model_dirs.get((arm.starts_from or arm.name, pretrain_seed))
                if model is None and (arm.pretrained or arm.starts_from):
                    continue  # its pretraining rate is not chosen yet
                if arm.external_pool:
                    model = (model[0], model[1] + (pool.key,))
                for lr in learning_rates:
                    for seed in scale.seeds:
                        start, deps = None, model
                        if arm.intermediate:  # that seed's intermediate model: its weights, the same tokenizer
                            first = intermediates[(arm.name, seed)]
                            start, deps = first.outputs[0], (model[0], model[1] + (first.key,))
                        cell = _finetune_cell(
                            scale,
                            arm,
                            task,
                            lr,
                            seed,
                            data_bin,
                            prep.key,
                            deps,
                            train_rows,
                            arm_args,
                            extra_finetune_args,
                            start,
                            pretrain_seed,
                        )
                        cells.append(_keyed(cell, glue_id))
    cells += _compute_axis_cells(scale, selected, chosen, tasks, glue_dir, data_bin, prep.key, extra_finetune_args)
    return cells


def _chosen_rates(scale: Scale, arms: list[Arm], pretrain_lrs: dict[str, float] | None) -> dict[str, float]:
    """{arm: the pretraining rate its seeds, fine-tunings and compute axis use} for the arms that have one: every arm
    at the scale's rate without a grid or without PRETRAIN_LRS, else the arms PRETRAIN_LRS names."""
    if pretrain_lrs is None or not scale.pretrain_lr_grid:
        return {arm.name: scale.pretrain.lr for arm in arms}
    return {arm.name: pretrain_lrs[arm.name] for arm in arms if arm.name in pretrain_lrs}


def _pretrain_lr_cells(scale: Scale, arms: list[Arm], data_bin: str, prep_key: str) -> list[Cell]:
    """Seed 1 of each pretrained arm at the grid's other pretraining learning rates: read by held-out pretraining
    loss (pretrain_lr.py), fine-tuned only if the rule chooses its rate."""
    return [
        _pretrain_cell(scale, arm, data_bin, prep_key, 1, lr)
        for arm in arms
        for lr in scale.pretrain_lr_grid
        if lr != scale.pretrain.lr
    ]


def _compute_axis_cells(
    scale: Scale,
    selected: list[Arm],
    chosen: dict[str, float],
    tasks,
    glue_dir: str,
    data_bin: str,
    prep_key: str,
    extra: tuple[str, ...],
) -> list[Cell]:
    """The compute axis' shorter pretrainings of `compute_arms` (at each one's CHOSEN pretraining rate) and their
    fine-tunings on `compute_tasks` (the scale's grid and seeds); the scale's own runs are the axis' last point."""
    cells: list[Cell] = []
    arms = [a for a in selected if a.name in scale.compute_arms and a.name in chosen]
    for updates in scale.compute_updates:
        for arm in arms:
            lr = None if chosen[arm.name] == scale.pretrain.lr else chosen[arm.name]
            pre = _pretrain_cell(scale, arm, data_bin, prep_key, lr=lr, updates=updates)
            cells.append(pre)
            model = (f"{{out}}/models/{arm.name}-{pre.key}", (pre.key,))
            for task in scale.compute_tasks:
                plan = find_task(scale, task)
                if plan is None or (tasks and task not in tasks):
                    continue
                glue_id = fingerprint(glue_dir, f"{task}/*.tsv")
                train_rows = len(read_glue_split(glue_dir, task, "train"))
                for lr in scale.learning_rates:
                    for seed in scale.seeds:
                        cell = _finetune_cell(
                            scale,
                            arm,
                            plan,
                            lr,
                            seed,
                            data_bin,
                            prep_key,
                            model,
                            train_rows,
                            arm.finetune_args,
                            extra,
                            updates=updates,
                        )
                        cells.append(_keyed(cell, glue_id))
    return cells


def _glue_text_cell(name: str, tasks: tuple[str, ...], glue_dir: str, stem: str) -> Cell:
    """`vega-glue text` of TASKS' training splits into {out}/STEM-<key>.txt, keyed by those files."""
    cell = _keyed(
        Cell(
            kind="corpus",
            name=name,
            commands=[["vega-glue", "text", "{glue}", "--tasks", ",".join(tasks), "--out", f"{{out}}/{stem}.txt"]],
            workdir="{out}",
        ),
        [fingerprint(glue_dir, f"{t}/train*.tsv") for t in tasks],
    )
    cell.commands[0][-1] = f"{{out}}/{stem}-{cell.key}.txt"
    cell.outputs = (cell.commands[0][-1],)
    return cell


def pretrain_cell_name(arm: str, seed: int = 1, lr: float | None = None, updates: int | None = None) -> str:
    """`pretrain ARM` for the scale's own run of ARM; other seeds, learning rates and budgets say which."""
    return (
        f"pretrain {arm}"
        + (f"@{updates}" if updates else "")
        + (f" lr{lr:g}" if lr is not None else "")
        + (f" seed{seed}" if seed != 1 else "")
    )


def _pretrain_cell(
    scale: Scale,
    arm: Arm,
    data_bin: str,
    prep_key: str,
    seed: int = 1,
    lr: float | None = None,
    updates: int | None = None,
) -> Cell:
    """One pretraining run (two for an arm with a second phase) and the model folder export. SEED, LR, UPDATES:
    another pretraining seed, learning rate or number of updates than the scale's (None: the scale's)."""
    save_dir = f"{{out}}/pretrain/{arm.name}"
    budget, second = pretrain_budget(scale, arm), None
    if lr is not None:
        budget = replace(budget, lr=lr)
    if updates is not None:
        budget = replace(budget, updates=updates)
    if arm.second_phase_args:
        budget, second = budget.split(arm.second_phase_fraction, arm.second_phase_lr_ratio)

    def train(objective, phase_budget):
        return [
            "vega-train",
            data_bin,
            *objective,
            "--arch",
            scale.arch,
            *scale.model_args,
            *phase_budget.args(),
            "--seed",
            str(seed),
            "--num-workers",
            "0",
            "--no-epoch-checkpoints",
            "--log-format",
            "simple",
            "--log-interval",
            "50",
        ]

    first = train(arm.pretrain_args, budget)
    fields = {
        "arm": arm.name,
        "pretrain_seed": seed,
        "pretrain_lr": budget.lr,
        "pretrain_updates": budget.updates + (second.updates if second else 0),
    }
    cell = _keyed(
        Cell(
            kind="pretrain",
            name=pretrain_cell_name(arm.name, seed, lr, updates),
            commands=[first],
            workdir=save_dir,
            deps=(prep_key,),
            fields=fields,
            threads=scale.pretrain_threads,
        ),
        None,
    )
    if second:  # the second phase's commands are part of the key too
        cell.commands.append(train(arm.second_phase_args, second))
        cell = _keyed(cell, None)
    # folders carry the key: a changed budget starts a new run instead of resuming the old one's checkpoint
    cell.workdir = f"{save_dir}-{cell.key}"
    first += ["--save-dir", cell.workdir, "--tensorboard-logdir", f"{{out}}/tb/pretrain-{arm.name}-{cell.key}"]
    cell.commands = [first]
    last_ckpt = f"{cell.workdir}/checkpoint_last.pt"
    if second:
        # phase 2 loads only phase 1's weights (fresh optimizer, schedule and update counter), and only while its
        # own checkpoint_last.pt is absent, so a killed phase 2 resumes (recipes/pretrain/phase2_contrastive.sh)
        phase2_dir = f"{cell.workdir}/phase2"
        cell.commands.append(
            train(arm.second_phase_args, second)
            + [
                "--finetune-from-model",
                last_ckpt,
                "--save-dir",
                phase2_dir,
                "--tensorboard-logdir",
                f"{{out}}/tb/pretrain-{arm.name}-{cell.key}-phase2",
            ]
        )
        last_ckpt = f"{phase2_dir}/checkpoint_last.pt"
    if not _on_gpu(scale):
        for command in cell.commands:
            command.append("--cpu")
    export = ["vega-convert", "export", last_ckpt, "--data-bin", data_bin, f"{{out}}/models/{arm.name}-{cell.key}"]
    cell.commands.append(export)
    cell.outputs = (f"{{out}}/models/{arm.name}-{cell.key}/model.pt",)
    return cell


def _on_gpu(scale: Scale) -> bool:
    return "--bf16" in scale.pretrain_args or "--fp16" in scale.pretrain_args


def _finetune_cell(
    scale: Scale,
    arm: Arm,
    task: TaskPlan,
    lr: float,
    seed: int,
    data_bin: str,
    prep_key: str,
    pretrained: tuple[str, tuple[str, ...]] | None,
    train_rows: int,
    arm_args: tuple[str, ...],
    extra: tuple[str, ...],
    start: str | None = None,
    pretrain_seed: int = 1,
    updates: int | None = None,
) -> Cell:
    """PRETRAINED: (model folder, deps), None for random init. START: the checkpoint to fine-tune from instead of the
    folder's model.pt (an intermediate-task arm's intermediate model). PRETRAIN_SEED, UPDATES: which pretraining
    run of the arm it starts from (another seed, a compute-axis budget), named in the cell's name."""
    from vega_toolkit.data.glue_tasks import get_glue_task

    glue = get_glue_task(task.name)
    name = (
        f"{arm.name}"
        + (f"@{updates}" if updates else "")
        + f"/{task.name}/lr{_lr_name(lr)}/seed{seed}"
        + (f"/pretrain{pretrain_seed}" if pretrain_seed != 1 else "")
    )
    # the loop of a round arm publishes its own final model as checkpoint_best.pt: it is scored on that
    scored = "best" if "--task" in arm.finetune_args else scale.checkpoint
    workdir = f"{{out}}/finetune/{name}"
    commands = []
    if pretrained is None:  # random init: a model folder of this seed's fresh weights, same tokenizer
        model_dir, deps = f"{workdir}/init", (prep_key,)
        commands.append(
            [
                "vega-convert",
                "export",
                "--random-init",
                "--arch",
                scale.arch,
                "--seed",
                str(seed),
                "--data-bin",
                data_bin,
                model_dir,
            ]
        )
    else:
        model_dir, deps = pretrained
    start = start or f"{model_dir}/model.pt"
    head = task.name.replace("-", "").lower() + "_head"
    train = [
        "vega-train",
        f"{{glue}}/{glue.folder}",
        "--task",
        "glue",
        "--glue-task",
        task.name,
        "--vocab-dir",
        model_dir,
        "--arch",
        scale.arch,
        *scale.model_args,
        "--finetune-from-model",
        start,
        "--classification-head-name",
        head,
        *scale.finetune_args,
        "--batch-size",
        str(scale.batch_size),
        "--lr",
        str(lr),
        "--seed",
        str(seed),
        "--max-epoch",
        str(task.epochs),
        *_update_budget(task, scale.batch_size, train_rows),
        "--best-checkpoint-metric",
        glue.best_metric,
        "--maximize-best-checkpoint-metric",
        "--save-dir",
        f"{workdir}/ckpt",
        "--no-epoch-checkpoints",
        *(("--no-last-checkpoints",) if scored == "best" else ()),
        "--glue-cache-dir",
        "{out}/cache",
        "--num-workers",
        "0",
        "--log-format",
        "simple",
        "--log-interval",
        "50",
        *arm_args,
        *extra,
    ]
    if glue.is_regression:
        train.append("--regression-target")
    if task.validate_interval_updates:
        train += ["--validate-interval-updates", str(task.validate_interval_updates)]
    if not _on_gpu(scale):
        train.append("--cpu")
    commands.append(train)
    # the scored checkpoint's predictions (and dev scores) first; with the last checkpoint scored, the per-epoch best
    # on dev is scored too, into predictions-best/, to compare the two rules on the same cells
    for checkpoint, folder in ((scored, "predictions"), *((("best", "predictions-best"),) if scored == "last" else ())):
        generate = [
            "vega-generate",
            f"{workdir}/ckpt/checkpoint_{checkpoint}.pt",
            "--glue-dir",
            "{glue}",
            "--out-dir",
            f"{workdir}/{folder}",
            "--glue-cache-dir",
            "{out}/cache",
            "--dev",
        ]
        if not _on_gpu(scale):
            generate.append("--cpu")
        if scale.toy_data:  # the toy test files are not the official size; only their dev scores are read
            generate.append("--allow-partial")
        commands.append(generate)
    fields = {
        "arm": arm.name,
        "task": task.name,
        "lr": lr,
        "seed": seed,
        "in_average": task.in_average,
        "checkpoint": scored,
    }
    if pretrain_seed != 1:
        fields["pretrain_seed"] = pretrain_seed
    if updates:
        fields["pretrain_updates"] = updates
    return Cell(kind="finetune", name=name, commands=commands, workdir=workdir, deps=deps, fields=fields)


def _update_budget(task: TaskPlan, batch_size: int, train_rows: int) -> list[str]:
    """Whole epochs (or the task's cap) of updates, decayed linearly to 0 after a 10% linear warmup."""
    updates = -(-train_rows // batch_size) * task.epochs
    if task.max_update:
        updates = min(updates, task.max_update)
    return [
        "--max-update",
        str(updates),
        "--total-num-update",
        str(updates),
        "--warmup-updates",
        str(max(1, updates // 10)),
    ]
