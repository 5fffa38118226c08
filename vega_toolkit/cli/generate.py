"""`vega-generate`: GLUE leaderboard submission files (and dev scores) from fine-tuned `glue` checkpoints.

    vega-generate out/*/checkpoint_best.pt --glue-dir glue_data --out-dir submission --dev
    # -> submission/{CoLA,SST-2,MRPC,STS-B,QQP,MNLI-m,MNLI-mm,QNLI,RTE,WNLI,AX}.tsv + submission/submission.zip

Each checkpoint knows its task (`--glue-task` is stored in its config); MNLI's also predicts AX (the diagnostic
set, GLUE's rule). Files are `index<TAB>prediction` with the label strings of the task table (entailment /
not_entailment / neutral / contradiction, 0/1, STS-B scores clipped to [0, 5] with 3 decimals), one row per test
example in file order. A test file whose row count is not the official one (a cut download: the leaderboard rejects
the submission) is an error unless `--allow-partial` is given. `--dev` scores every dev split with the
GLUE metrics, prints the GLUE score over the tasks given, and writes each dev example's prediction to
OUT_DIR/dev/<task>.<split>.txt. Prediction is batched by padded tokens
(`--max-tokens`) over length-sorted examples, under `torch.inference_mode()`.

In Python, a fine-tuned checkpoint as a classifier: vega_toolkit/models/glue_predictor.py `GluePredictor`.
"""

import argparse
import json
import logging
import os
import sys
import zipfile
from collections.abc import Sequence

import numpy as np

from vega_toolkit.errors import UserError, check_output_dir, console_script
from vega_toolkit.models.glue_predictor import DEV_PREDICTIONS, GluePredictor, dev_predictions, score_dev

logger = logging.getLogger(__name__)


def write_submission_file(path: str, indices: Sequence[str], predictions: Sequence[str]):
    if len(indices) != len(predictions):
        raise ValueError(f"{path}: {len(predictions)} predictions for {len(indices)} test rows")
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for index, pred in zip(indices, predictions, strict=True):
            f.write(f"{index}\t{pred}\n")


class PartialTestSetError(UserError):
    """A test file without the official number of rows: its submission file would be rejected."""


def write_dev_predictions(path: str, predictions: Sequence) -> None:
    """One prediction per dev example, in the dev file's order (a label, or STS-B's unclipped score): what a
    re-analysis (e.g. a paired bootstrap over dev examples) needs."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{p:.6g}\n" if isinstance(p, (float, np.floating)) else f"{p}\n" for p in predictions)


def check_test_rows(path: str, task_row, split: str, rows: int, allow_partial: bool):
    """The leaderboard only accepts the official row count; a cut test file would otherwise give a shorter, silently
    wrong submission."""
    official = task_row.splits[split].rows
    if rows == official:
        return
    message = (
        f"{path}: {rows} rows, but the official {task_row.name} {split} set has {official} (a truncated or "
        f"edited file?)"
    )
    if not allow_partial:
        raise PartialTestSetError(
            message + ": the leaderboard rejects such a submission. Download the file again, "
            "or pass --allow-partial to write it anyway (e.g. for a subset)"
        )
    logger.warning(message + "; written anyway (--allow-partial)")


def _test_outputs(predictor: GluePredictor, glue_dir: str):
    """(submission file, task row, split, test file, encoded split) for every test set this checkpoint predicts."""
    from vega_toolkit.data.glue_binarize import load_encoded_split
    from vega_toolkit.data.glue_readers import glue_split_path
    from vega_toolkit.data.glue_tasks import GLUE_TASKS

    glue = predictor.glue
    for split, file_name in glue.submission.items():
        path = glue_split_path(predictor.task.cfg.data, glue, split)
        yield file_name, glue, split, path, predictor.task.encoded_split(glue.splits[split].fairseq_split)
    for other in GLUE_TASKS.values():  # AX: no training data, predicted by the MNLI model
        if other.predicted_by == glue.name:
            for split, file_name in other.submission.items():
                path = glue_split_path(glue_dir, other, split)
                if not os.path.isfile(path):
                    logger.warning(f"{other.name}: {path} not found, {file_name} not written")
                    continue
                yield (
                    file_name,
                    other,
                    split,
                    path,
                    load_encoded_split(
                        path, other, split, predictor.task.encoder, predictor.task.cfg.glue_cache_dir or None
                    ),
                )


def check_checkpoint_tasks(checkpoints: list[str]) -> None:
    """Every checkpoint is a fine-tuned `glue` one, one per task: checked before any file is written."""
    from vega_toolkit.data.glue_tasks import get_glue_task
    from vega_toolkit.io.checkpoints import peek_checkpoint

    seen = {}
    for path in checkpoints:
        task = (peek_checkpoint(path).get("cfg") or {}).get("task") or {}
        if not task.get("glue_task"):
            raise UserError(
                f"{path}: not a fine-tuned GLUE checkpoint (its task is {task.get('_name')!r}); "
                f"vega-generate predicts with checkpoints of `vega-train --task glue`"
            )
        name = get_glue_task(task["glue_task"]).name
        if name in seen:
            raise UserError(f"two checkpoints for {name}: {seen[name]} and {path}; give one per task")
        seen[name] = path


# which checkpoints wrote the files of an --out-dir: a re-run of the same command may rewrite them, nothing else may
OUTPUT_RECORD = ".vega-generate.json"


def check_previous_output(out_dir: str, checkpoints: list[str], zip_name: str, force: bool) -> None:
    """Submission files already in `out_dir` are rewritten only by the command that wrote them (the same checkpoint
    paths: a recipe re-run after retraining) or with `force`; a submission of other models is never replaced."""
    from vega_toolkit.data.glue_tasks import GLUE_TASKS

    names = [f for t in GLUE_TASKS.values() for f in t.submission.values()] + [zip_name, DEV_PREDICTIONS]
    existing = [f for f in names if os.path.exists(os.path.join(out_dir, f))]
    if not existing or force:
        return
    try:
        with open(os.path.join(out_dir, OUTPUT_RECORD), encoding="utf-8") as f:
            previous = json.load(f).get("checkpoints")
    except (OSError, ValueError):
        previous = None
    if previous != [os.path.abspath(c) for c in checkpoints]:
        raise UserError(
            f"--out-dir {out_dir} already holds {', '.join(existing)} written from other checkpoints "
            f"({previous or 'unknown'}): give another folder, or --force to overwrite them"
        )


def generate(
    checkpoints: list[str],
    glue_dir: str,
    out_dir: str,
    dev: bool = False,
    zip_name: str = "submission.zip",
    max_tokens: int = 8192,
    vocab_dir: str | None = None,
    device: str | None = None,
    cache_dir: str | None = None,
    out=sys.stdout,
    allow_partial: bool = False,
    force: bool = False,
) -> dict[str, object]:
    """Write the submission files of all `checkpoints` (one per task) and the zip; returns what was done.
    A test file without the official row count is an error (PartialTestSetError) unless `allow_partial`; files of
    other checkpoints already in `out_dir` are an error unless `force`."""
    from vega_toolkit.data.glue_tasks import GLUE_TASKS
    from vega_toolkit.io.atomic import atomic_write
    from vega_toolkit.metrics.glue_metrics import glue_score, task_score

    check_checkpoint_tasks(checkpoints)
    check_output_dir(out_dir, "--out-dir", [glue_dir] + ([vocab_dir] if vocab_dir else []))
    check_previous_output(out_dir, checkpoints, zip_name, force)
    os.makedirs(out_dir, exist_ok=True)
    record = json.dumps({"checkpoints": [os.path.abspath(c) for c in checkpoints]}).encode()
    atomic_write(os.path.join(out_dir, OUTPUT_RECORD), lambda f: f.write(record))
    written, dev_scores, first_dev = {}, {}, {}
    for path in checkpoints:
        predictor = GluePredictor.from_checkpoint(path, glue_dir, vocab_dir, device, cache_dir)
        for file_name, task_row, split, test_path, encoded in _test_outputs(predictor, glue_dir):
            check_test_rows(test_path, task_row, split, len(encoded), allow_partial)
            preds = predictor.labels_from_logits(predictor.logits_for(encoded, max_tokens))
            target = os.path.join(out_dir, file_name)
            write_submission_file(target, encoded.indices, preds)
            written[file_name] = len(preds)
            print(f"wrote {target}: {len(preds)} rows ({task_row.name} test, {path})", file=out)
        if dev:
            predictions = dev_predictions(predictor, max_tokens)
            for split, (preds, _) in predictions.items():
                write_dev_predictions(
                    os.path.join(out_dir, DEV_PREDICTIONS, f"{predictor.glue.name}.{split}.txt"), preds
                )
            per_split = score_dev(predictor, max_tokens, predictions)
            first_dev[predictor.glue.name] = next(iter(per_split.values()))
            for split, metrics in per_split.items():
                shown = " ".join(f"{k}={v:.2f}" for k, v in metrics.items())
                print(f"dev {predictor.glue.name} {split} {shown}", file=out)
            dev_scores[predictor.glue.name] = float(
                np.mean([task_score(predictor.glue, m) for m in per_split.values()])
            )
    expected = [f for t in GLUE_TASKS.values() for f in t.submission.values()]
    missing = [f for f in expected if f not in written]
    if missing and len(checkpoints) > 1:
        print(f"missing for a complete submission: {', '.join(missing)}", file=out)
    zip_path = os.path.join(out_dir, zip_name)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file_name in written:  # flat, no sub-directory (the leaderboard's layout)
            zf.write(os.path.join(out_dir, file_name), arcname=file_name)
    print(f"wrote {zip_path} ({len(written)} files)", file=out)
    result = {"written": written, "missing": missing, "zip": zip_path, "dev": dev_scores}
    if dev_scores:
        result["glue_score"] = glue_score(dev_scores)
        # the recipes' contract: the last line is `dev <metric>=<value>` (one task: its checkpoint-selection metric
        # on its first dev split, MNLI: matched; several tasks: the GLUE score over them)
        if len(dev_scores) == 1:
            name = next(iter(dev_scores))
            metric = GLUE_TASKS[name].best_metric
            print(f"dev {metric}={first_dev[name][metric]:.2f}", file=out)
        else:
            print(f"dev glue_score={result['glue_score']:.2f}", file=out)
    return result


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vega-generate", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="fine-tuned `glue` checkpoints, one per task")
    parser.add_argument("--glue-dir", required=True, help="the glue_data/ folder holding the test files")
    parser.add_argument("--out-dir", required=True, help="where the TSV files and the zip are written")
    parser.add_argument("--dev", action="store_true", help="also score the dev splits and print the GLUE score")
    parser.add_argument("--zip-name", default="submission.zip", help="name of the zip inside --out-dir")
    parser.add_argument("--max-tokens", type=int, default=8192, help="padded tokens per prediction batch")
    parser.add_argument("--vocab-dir", help="override the model folder (spm.model, dict.txt) stored in checkpoints")
    parser.add_argument("--glue-cache-dir", help="override where encoded splits are cached")
    parser.add_argument("--cpu", action="store_true", help="predict on CPU even when a GPU is present")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="write submission files for test files without the official row count (subsets); "
        "without it such a file is an error",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite submission files in --out-dir written from other checkpoints"
    )
    return parser


@console_script("vega-generate")
def cli_main(argv: list[str] | None = None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:%(name)s:%(message)s")
    args = get_parser().parse_args(argv)
    if args.max_tokens < 1:
        sys.exit("vega-generate: --max-tokens must be positive")
    for path in args.checkpoints:
        if not os.path.isfile(path):
            sys.exit(f"vega-generate: checkpoint {path} not found")
    if not os.path.isdir(args.glue_dir):
        raise UserError(f"--glue-dir {args.glue_dir}: no such folder (the glue_data/ folder holding the test files)")
    generate(
        args.checkpoints,
        args.glue_dir,
        args.out_dir,
        args.dev,
        args.zip_name,
        args.max_tokens,
        args.vocab_dir,
        "cpu" if args.cpu else None,
        args.glue_cache_dir,
        allow_partial=args.allow_partial,
        force=args.force,
    )


if __name__ == "__main__":
    cli_main()
