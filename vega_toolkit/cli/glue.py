"""`vega-glue`: sanity checks for a downloaded GLUE folder, and the small queries the GLUE recipes need.

    vega-glue validate glue_data                  # every task folder present: rows per split vs the official count
    vega-glue validate glue_data --tasks RTE,MNLI # only these tasks
    vega-glue validate my_subset --allow-partial  # report missing files and unofficial row counts without failing
    vega-glue validate-submission submission/submission.zip --glue-dir glue_data   # before uploading a zip
    vega-glue info MNLI best_metric               # one field of the task table
    vega-glue info RTE --glue-dir D --model-dir M # all fields as shell assignments (+ train rows, model flags)
    vega-glue arch vega-small/                    # the vega-train flags that rebuild a model folder's encoder
    vega-glue text glue_data --tasks CoLA,SST-2 --out glue_train.txt   # unlabelled train text (task-adaptive corpus)

Each file is read with the same readers fine-tuning uses, so a malformed row is reported as `FILE:LINE: ...`.
Exit status: 1 when a file is malformed, and (unless --allow-partial) when a task folder or split is missing or a
row count differs from the official release. A file cut inside its last row may still parse (CoLA's "4.750" cut to
"4." is a valid label): its row count, and a missing final newline, are what give it away.
"""

import argparse
import os
import shlex
import sys
import zipfile

from vega_toolkit.data.glue_readers import GlueFormatError, _check_label, glue_split_path, read_glue_file
from vega_toolkit.data.glue_tasks import GLUE_TASKS, get_glue_task
from vega_toolkit.errors import console_script


def _ends_without_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def validate(glue_dir: str, tasks: list[str] | None = None, allow_partial: bool = False, out=sys.stdout) -> int:
    """Print one line per split (task, split, rows, official rows, status); return the number of problems: malformed
    files, and unless `allow_partial` missing task folders and splits and unofficial row counts."""
    if not os.path.isdir(glue_dir):
        raise FileNotFoundError(f"{glue_dir}: not a directory (expected the glue_data/ folder)")
    chosen = [get_glue_task(t) for t in tasks] if tasks else list(GLUE_TASKS.values())
    problems = missing_folders = 0
    print(f"{'task':<6} {'split':<16} {'rows':>8} {'official':>9}  status", file=out)
    for task in chosen:
        if not os.path.isdir(os.path.join(glue_dir, task.folder)):
            print(f"{task.name:<6} {'-':<16} {'-':>8} {'-':>9}  missing folder {task.folder}/", file=out)
            problems += not allow_partial
            missing_folders += 1
            continue
        for split, spec in task.splits.items():
            path = glue_split_path(glue_dir, task, split)
            if not os.path.isfile(path):
                print(f"{task.name:<6} {split:<16} {'-':>8} {spec.rows:>9}  missing {spec.file}", file=out)
                problems += not allow_partial
                continue
            try:
                rows = len(read_glue_file(path, task, split))
            except GlueFormatError as err:
                print(f"{task.name:<6} {split:<16} {'-':>8} {spec.rows:>9}  ERROR {err}", file=out)
                problems += 1
                continue
            ok = rows == spec.rows
            status = (
                "ok" if ok else "differs" + (" (no final newline: cut short?)" if _ends_without_newline(path) else "")
            )
            print(f"{task.name:<6} {split:<16} {rows:>8} {spec.rows:>9}  {status}", file=out)
            problems += not (ok or allow_partial)
    if missing_folders == len(chosen):
        name = os.path.basename(os.path.normpath(glue_dir))
        inside = (
            f" ({glue_dir} looks like the {name} task folder: pass the folder above it)"
            if any(t.folder == name for t in GLUE_TASKS.values())
            else ""
        )
        print(
            f"no task folder found in {glue_dir}: expected the glue_data/ folder holding "
            f"{', '.join(t.folder for t in chosen)}{inside}",
            file=out,
        )
    return problems


def validate_submission(zip_path: str, glue_dir: str, allow_partial: bool = False, out=sys.stdout) -> int:
    """Check a leaderboard zip (vega-generate's) against the test files of `glue_dir`: one line per expected file
    (rows, test rows, status); return the number of problems. A file must be at the zip's top level, start with the
    `index<TAB>prediction` header and hold one row per test row, in the test file's index order, each a label of the
    task (STS-B: a score in [0, 5]). Unless `allow_partial`, every task's file must be there and every test file
    must have the official row count (the leaderboard rejects anything else)."""
    from vega_toolkit.data.glue_tasks import GLUE_TASKS

    if not zipfile.is_zipfile(zip_path):
        raise FileNotFoundError(f"{zip_path}: not a zip file")
    with zipfile.ZipFile(zip_path) as zf:
        contents = {name: zf.read(name).decode("utf-8", errors="replace") for name in zf.namelist()}
    problems = 0
    print(f"{'file':<12} {'rows':>6} {'test rows':>10}  status", file=out)
    expected = {file: (task, split) for task in GLUE_TASKS.values() for split, file in task.submission.items()}
    for name in sorted(set(contents) - set(expected)):
        print(f"{name:<12} {'-':>6} {'-':>10}  not a GLUE submission file", file=out)
        problems += 1
    for file, (task, split) in expected.items():
        test_path = glue_split_path(glue_dir, task, split)
        if file not in contents:
            print(f"{file:<12} {'-':>6} {'-':>10}  missing", file=out)
            problems += not allow_partial
            continue
        test = read_glue_file(test_path, task, split)
        lines = contents[file].splitlines()
        status = "ok"
        if not lines or lines[0] != "index\tprediction":
            status = "no index<TAB>prediction header"
        elif [line.split("\t")[0] for line in lines[1:]] != [ex.index for ex in test]:
            status = f"indices differ from {test_path}"
        elif len(test) != task.splits[split].rows and not allow_partial:
            status = f"{test_path} is not the official test set ({task.splits[split].rows} rows)"
        else:
            try:
                for lineno, line in enumerate(lines[1:], 2):
                    _check_label(task, line.partition("\t")[2], f"{file}:{lineno}")
            except GlueFormatError as err:
                status = str(err)
        print(f"{file:<12} {len(lines) - 1:>6} {len(test):>10}  {status}", file=out)
        problems += status != "ok"
    return problems


# training-time knobs a fine-tuning recipe sets itself; everything else in the model config is structure
_NOT_STRUCTURE = {
    "_name",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "pooler_dropout",
    "attention_impl",
    "classification_pooling",
    "checkpoint_activations",
    "load_checkpoint_heads",
}


def arch_flags(model_dir: str) -> list[str]:
    """`--arch NAME --encoder-layers N ...` reproducing the encoder stored in MODEL_DIR/model.pt.

    `--max-relative-positions` is written out resolved, so a recipe may pass a shorter `--max-seq-len` without
    changing the relative-position bucketing the model was pretrained with.
    """
    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu

    path = os.path.join(model_dir, "model.pt")
    cfg = load_checkpoint_to_cpu(path)["cfg"]
    if cfg is None or cfg.get("model") is None:
        raise ValueError(f"{path}: no model config in the checkpoint")
    model = cfg.model
    flags = ["--arch", str(model["_name"])]
    for key, value in model.items():
        if key in _NOT_STRUCTURE or value is None:
            continue
        if key == "max_relative_positions" and value < 1:
            value = model["max_positions"]
        if isinstance(value, bool):
            if value:
                flags.append("--" + key.replace("_", "-"))
            continue
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def task_info(task_name: str, glue_dir: str | None = None, model_dir: str | None = None) -> dict:
    """The task-table fields a recipe needs; with glue_dir the train row count, with model_dir the arch flags."""
    task = get_glue_task(task_name)
    info = {
        "name": task.name,
        "folder": task.folder,
        "best_metric": task.best_metric,
        "regression": str(int(task.is_regression)),
        "num_classes": str(task.num_classes),
        "metrics": ",".join(task.metrics),
    }
    if glue_dir is not None and "train" in task.splits:
        info["train_rows"] = str(len(read_glue_file(glue_split_path(glue_dir, task, "train"), task, "train")))
    if model_dir is not None:
        info["arch_flags"] = " ".join(arch_flags(model_dir))
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vega-glue", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="read every GLUE file and print rows per split")
    val.add_argument("glue_dir", help="the glue_data/ folder (one sub-folder per task)")
    val.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    val.add_argument(
        "--allow-partial",
        action="store_true",
        help="report missing task folders and splits and unofficial row counts without failing "
        "(for subsets); malformed files still fail",
    )
    val.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default now; old commands work
    sub_val = sub.add_parser(
        "validate-submission",
        help="check a submission zip against the GLUE folder's test "
        "files: every file, one row per test row, valid labels",
    )
    sub_val.add_argument("zip", help="the zip vega-generate wrote (submission.zip)")
    sub_val.add_argument("--glue-dir", required=True, help="the glue_data/ folder whose test sets were predicted")
    sub_val.add_argument(
        "--allow-partial",
        action="store_true",
        help="accept missing task files and test files without the official row count (subsets, "
        "fixtures); rows, order and labels are still checked",
    )
    info = sub.add_parser(
        "info",
        help="print fields of the GLUE task table (all of them as shell assignments glue_<field>=..., or one value)",
    )
    info.add_argument("task", help="GLUE task name")
    info.add_argument(
        "field",
        nargs="?",
        help="name, folder, best_metric, regression, num_classes, metrics, "
        "train_rows (needs --glue-dir), arch_flags (needs --model-dir)",
    )
    info.add_argument("--glue-dir", help="GLUE folder: adds train_rows")
    info.add_argument("--model-dir", help="model folder: adds arch_flags")
    arch = sub.add_parser("arch", help="print the vega-train model flags of a model folder")
    arch.add_argument("model_dir", help="model folder (model.pt, dict.txt, spm.model)")
    text = sub.add_parser(
        "text",
        help="write the unlabelled sentences of training splits, one paragraph each, "
        "for task-adaptive pretraining (dev and test text is never read)",
    )
    text.add_argument("glue_dir", help="the glue_data/ folder")
    text.add_argument("--tasks", required=True, help="comma-separated task names")
    text.add_argument("--out", required=True, help="text file to write")
    return parser


@console_script("vega-glue")
def cli_main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        tasks = [t for t in args.tasks.split(",") if t] or None
        try:
            problems = validate(args.glue_dir, tasks, allow_partial=args.allow_partial)
        except (FileNotFoundError, KeyError) as err:
            sys.exit(f"vega-glue: {err}")
        sys.exit(1 if problems else 0)
    if args.command == "validate-submission":
        try:
            problems = validate_submission(args.zip, args.glue_dir, allow_partial=args.allow_partial)
        except (FileNotFoundError, GlueFormatError) as err:
            sys.exit(f"vega-glue: {err}")
        sys.exit(1 if problems else 0)
    try:
        if args.command == "info":
            info = task_info(args.task, args.glue_dir, args.model_dir)
            if args.field is None:
                print("\n".join(f"glue_{key}={shlex.quote(value)}" for key, value in info.items()))
            elif args.field in info:
                print(info[args.field])
            else:
                raise KeyError(f"unknown or unavailable field {args.field!r}; available: {', '.join(info)}")
        elif args.command == "arch":
            print(" ".join(arch_flags(args.model_dir)))
        elif args.command == "text":
            from vega_toolkit.data.glue_text import write_training_text

            tasks = [t for t in args.tasks.split(",") if t]
            n = write_training_text(args.glue_dir, tasks, args.out)
            print(f"wrote {args.out}: {n} training sentences of {', '.join(tasks)}")
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as err:
        sys.exit(f"vega-glue {args.command}: {err}")


if __name__ == "__main__":
    cli_main()
