"""A study's cells: one real command sequence each, keyed by its fully resolved configuration.

Commands are templates over `{out}` (the study folder), `{glue}` and `{corpus}` (the data folders), so a key does
not depend on where the study or the data live, only on what runs and on the data itself (file names and sizes).
A cell's key covers its commands and, through their paths, the keys of the cells it reads from: changing the
pretraining budget re-runs pretraining and every fine-tuning cell of that arm; changing one task's grid re-runs
only that task's cells.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.study.plan import Arm, Scale, TaskPlan, find_task, get_arm, pretrain_budget, resolve_arms

KEY_CHARS = 12


@dataclass
class Cell:
    kind: str  # preprocess | pretrain | finetune
    name: str  # human-readable, unique within a study
    commands: List[List[str]]  # each a program + args, templated over {out} {glue} {corpus}
    workdir: str  # templated folder the cell writes into (wiped before a fine-tuning cell starts)
    deps: Tuple[str, ...] = ()  # keys of the cells whose outputs the commands read
    fields: Dict = field(default_factory=dict)  # what the report groups by (arm, task, lr, seed, ...)
    threads: int = 1
    outputs: Tuple[str, ...] = ()  # templated files later cells read: a finished cell without them runs again
    key: str = ""

    def resolve(self, paths: Dict[str, str]) -> List[List[str]]:
        return [[arg.format(**paths) for arg in cmd] for cmd in self.commands]


def fingerprint(folder: Optional[str], pattern: str = "**/*") -> List[Tuple[str, int]]:
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


def _lr_name(lr: float) -> str:
    return f"{lr:g}"


def build_cells(scale: Scale, glue_dir: str, corpus_dir: str, extra_finetune_args: Tuple[str, ...] = (),
                arms: Optional[Tuple[str, ...]] = None, tasks: Optional[Tuple[str, ...]] = None) -> List[Cell]:
    """Every cell of SCALE in run order: the task-adaptive text (if any), preprocess, the external pool of the
    self-calibrated arms (if any), each pretraining, then fine-tuning task by task. ARMS: names, ("all",) for the
    scale's ablation arms, None for its default arms."""
    unknown = [t for t in tasks or () if t not in {plan.name for plan in scale.tasks}]
    if unknown:  # an unknown name would otherwise run the pretrainings and then no fine-tuning at all
        raise ValueError(f"--tasks {','.join(unknown)}: not a task of the {scale.name} scale (its tasks: "
                         f"{', '.join(plan.name for plan in scale.tasks)})")
    corpus_id = fingerprint(corpus_dir)
    cells: List[Cell] = []
    inputs, prep_deps = ["{corpus}"], ()
    if scale.task_adaptive_text:
        text = _glue_text_cell("glue training text", scale.task_adaptive_text, glue_dir, "glue-train-text")
        cells.append(text)
        inputs, prep_deps = ["{corpus}", text.outputs[0]], (text.key,)
    prep = _keyed(Cell(
        kind="preprocess", name="preprocess",
        commands=[["vega-preprocess", *inputs, "--destdir", "{out}/data-bin", *scale.preprocess_args,
                   "--workers", "1", "--seed", "1"]],
        workdir="{out}/data-bin", deps=prep_deps, fields={}), corpus_id)
    # the data-bin folder is named after its key, so a changed tokenizer never overwrites the old one
    prep.commands[0][prep.commands[0].index("{out}/data-bin")] = f"{{out}}/data-bin-{prep.key}"
    prep.workdir = f"{{out}}/data-bin-{prep.key}"
    prep.outputs = (f"{prep.workdir}/dict.txt", f"{prep.workdir}/spm.model")
    cells.append(prep)
    data_bin = prep.workdir

    selected = [get_arm(a) for a in resolve_arms(scale, arms)]
    pool = None
    pooled = [a for a in selected if a.external_pool]
    if pooled:  # the other tasks' training text: never the adapted task's own text, never dev/test
        own = {t for a in pooled for t in a.only_tasks}
        pool = _glue_text_cell("external pool", tuple(t.name for t in scale.tasks if t.name not in own), glue_dir,
                               "external-pool")
        cells.append(pool)

    model_dirs: Dict[str, Tuple[str, Tuple[str, ...]]] = {}  # pretrained arm -> (model folder template, deps)
    pretrained = [a.name for a in selected if a.pretrained] + [a.starts_from for a in selected if a.starts_from]
    for arm in map(get_arm, dict.fromkeys(pretrained)):  # unique, in order
        pre = _pretrain_cell(scale, arm, data_bin, prep.key)
        cells.append(pre)
        model_dirs[arm.name] = (f"{{out}}/models/{arm.name}-{pre.key}", (pre.key,))

    intermediates: Dict[Tuple[str, int], Cell] = {}  # (arm, seed) -> its intermediate fine-tuning
    for arm in (a for a in selected if a.intermediate):
        if not any(arm.runs_on(t.name) and (not tasks or t.name in tasks) for t in scale.tasks):
            continue  # none of its tasks is run: no intermediate model is needed
        task = find_task(scale, scale.intermediate_task)
        if task is None:
            raise ValueError(f"arm {arm.name}: the {scale.name} scale's intermediate task {scale.intermediate_task} "
                             f"is not one of its tasks")
        glue_id = fingerprint(glue_dir, f"{task.name}/*.tsv")
        train_rows = len(read_glue_split(glue_dir, task.name, "train"))
        lr = scale.learning_rates[len(scale.learning_rates) // 2]
        for seed in scale.seeds:
            cell = _finetune_cell(scale, arm, task, lr, seed, data_bin, prep.key, model_dirs[arm.starts_from],
                                  train_rows, (), extra_finetune_args)
            cell.kind = "intermediate"
            cell.outputs = (f"{cell.workdir}/ckpt/checkpoint_best.pt",)
            intermediates[(arm.name, seed)] = _keyed(cell, glue_id)
            cells.append(cell)

    for task in scale.tasks:
        if tasks and task.name not in tasks:
            continue
        glue_id = fingerprint(glue_dir, f"{task.name}/*.tsv")
        train_rows = len(read_glue_split(glue_dir, task.name, "train"))
        for arm in selected:
            if not arm.runs_on(task.name):
                continue
            model = model_dirs.get(arm.starts_from or arm.name)
            arm_args = tuple(a.replace("{pool}", pool.outputs[0]) if pool else a
                             for a in arm.finetune_args + scale.extra_arm_args(arm.name))
            if arm.external_pool:
                model = (model[0], model[1] + (pool.key,))
            for lr in scale.learning_rates:
                for seed in scale.seeds:
                    start, deps = None, model
                    if arm.intermediate:  # that seed's intermediate model: its weights, the same tokenizer
                        first = intermediates[(arm.name, seed)]
                        start, deps = first.outputs[0], (model[0], model[1] + (first.key,))
                    cells.append(_keyed(_finetune_cell(scale, arm, task, lr, seed, data_bin, prep.key, deps,
                                                       train_rows, arm_args, extra_finetune_args, start),
                                        glue_id))
    return cells


def _glue_text_cell(name: str, tasks: Tuple[str, ...], glue_dir: str, stem: str) -> Cell:
    """`vega-glue text` of TASKS' training splits into {out}/STEM-<key>.txt, keyed by those files."""
    cell = _keyed(Cell(kind="corpus", name=name,
                       commands=[["vega-glue", "text", "{glue}", "--tasks", ",".join(tasks),
                                  "--out", f"{{out}}/{stem}.txt"]],
                       workdir="{out}"), [fingerprint(glue_dir, f"{t}/train*.tsv") for t in tasks])
    cell.commands[0][-1] = f"{{out}}/{stem}-{cell.key}.txt"
    cell.outputs = (cell.commands[0][-1],)
    return cell


def _pretrain_cell(scale: Scale, arm: Arm, data_bin: str, prep_key: str) -> Cell:
    """One pretraining run (two for an arm with a second phase) and the model folder export."""
    save_dir = f"{{out}}/pretrain/{arm.name}"
    budget, second = pretrain_budget(scale, arm), None
    if arm.second_phase_args:
        budget, second = budget.split(arm.second_phase_fraction, arm.second_phase_lr_ratio)

    def train(objective, phase_budget):
        return ["vega-train", data_bin, *objective, "--arch", scale.arch, *scale.model_args, *phase_budget.args(),
                "--seed", "1", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple",
                "--log-interval", "50"]

    first = train(arm.pretrain_args, budget)
    cell = _keyed(Cell(kind="pretrain", name=f"pretrain {arm.name}", commands=[first], workdir=save_dir,
                       deps=(prep_key,), fields={"arm": arm.name}, threads=scale.pretrain_threads), None)
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
        cell.commands.append(train(arm.second_phase_args, second) + [
            "--finetune-from-model", last_ckpt, "--save-dir", phase2_dir,
            "--tensorboard-logdir", f"{{out}}/tb/pretrain-{arm.name}-{cell.key}-phase2"])
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


def _finetune_cell(scale: Scale, arm: Arm, task: TaskPlan, lr: float, seed: int, data_bin: str, prep_key: str,
                   pretrained: Optional[Tuple[str, Tuple[str, ...]]], train_rows: int, arm_args: Tuple[str, ...],
                   extra: Tuple[str, ...], start: Optional[str] = None) -> Cell:
    """PRETRAINED: (model folder, deps), None for random init. START: the checkpoint to fine-tune from instead of the
    folder's model.pt (an intermediate-task arm's intermediate model)."""
    from vega_toolkit.data.glue_tasks import get_glue_task

    glue = get_glue_task(task.name)
    name = f"{arm.name}/{task.name}/lr{_lr_name(lr)}/seed{seed}"
    workdir = f"{{out}}/finetune/{name}"
    commands = []
    if pretrained is None:  # random init: a model folder of this seed's fresh weights, same tokenizer
        model_dir, deps = f"{workdir}/init", (prep_key,)
        commands.append(["vega-convert", "export", "--random-init", "--arch", scale.arch, "--seed", str(seed),
                         "--data-bin", data_bin, model_dir])
    else:
        model_dir, deps = pretrained
    start = start or f"{model_dir}/model.pt"
    head = task.name.replace("-", "").lower() + "_head"
    train = ["vega-train", f"{{glue}}/{glue.folder}", "--task", "glue", "--glue-task", task.name,
             "--vocab-dir", model_dir, "--arch", scale.arch, *scale.model_args,
             "--finetune-from-model", start, "--classification-head-name", head,
             *scale.finetune_args, "--batch-size", str(scale.batch_size), "--lr", str(lr), "--seed", str(seed),
             "--max-epoch", str(task.epochs), *_update_budget(task, scale.batch_size, train_rows),
             "--best-checkpoint-metric", glue.best_metric, "--maximize-best-checkpoint-metric",
             "--save-dir", f"{workdir}/ckpt", "--no-epoch-checkpoints", "--no-last-checkpoints",
             "--glue-cache-dir", "{out}/cache", "--num-workers", "0", "--log-format", "simple",
             "--log-interval", "50", *arm_args, *extra]
    if glue.is_regression:
        train.append("--regression-target")
    if task.validate_interval_updates:
        train += ["--validate-interval-updates", str(task.validate_interval_updates)]
    if not _on_gpu(scale):
        train.append("--cpu")
    commands.append(train)
    generate = ["vega-generate", f"{workdir}/ckpt/checkpoint_best.pt", "--glue-dir", "{glue}",
                "--out-dir", f"{workdir}/predictions", "--glue-cache-dir", "{out}/cache", "--dev"]
    if not _on_gpu(scale):
        generate.append("--cpu")
    if scale.toy_data:  # the toy test files are not the official size; only their dev scores are read
        generate.append("--allow-partial")
    commands.append(generate)
    fields = {"arm": arm.name, "task": task.name, "lr": lr, "seed": seed, "in_average": task.in_average}
    return Cell(kind="finetune", name=name, commands=commands, workdir=workdir, deps=deps, fields=fields)


def _update_budget(task: TaskPlan, batch_size: int, train_rows: int) -> List[str]:
    """Whole epochs (or the task's cap) of updates, decayed linearly to 0 after a 10% linear warmup."""
    updates = -(-train_rows // batch_size) * task.epochs
    if task.max_update:
        updates = min(updates, task.max_update)
    return ["--max-update", str(updates), "--total-num-update", str(updates),
            "--warmup-updates", str(max(1, updates // 10))]
