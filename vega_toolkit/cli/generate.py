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
import logging
import os
import sys
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from vega_toolkit.models.glue_predictor import DEV_PREDICTIONS, GluePredictor, dev_predictions, score_dev

logger = logging.getLogger(__name__)


def write_submission_file(path: str, indices: Sequence[str], predictions: Sequence[str]):
    if len(indices) != len(predictions):
        raise ValueError(f"{path}: {len(predictions)} predictions for {len(indices)} test rows")
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for index, pred in zip(indices, predictions):
            f.write(f"{index}\t{pred}\n")


class PartialTestSetError(ValueError):
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
    message = (f"{path}: {rows} rows, but the official {task_row.name} {split} set has {official} (a truncated or "
               f"edited file?)")
    if not allow_partial:
        raise PartialTestSetError(message + ": the leaderboard rejects such a submission. Download the file again, "
                                            "or pass --allow-partial to write it anyway (e.g. for a subset)")
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
                yield file_name, other, split, path, load_encoded_split(path, other, split, predictor.task.encoder,
                                                                        predictor.task.cfg.glue_cache_dir or None)


def generate(checkpoints: List[str], glue_dir: str, out_dir: str, dev: bool = False, zip_name: str = "submission.zip",
             max_tokens: int = 8192, vocab_dir: Optional[str] = None, device: Optional[str] = None,
             cache_dir: Optional[str] = None, out=sys.stdout, allow_partial: bool = False) -> Dict[str, object]:
    """Write the submission files of all `checkpoints` (one per task) and the zip; returns what was done.
    A test file without the official row count is an error (PartialTestSetError) unless `allow_partial`."""
    from vega_toolkit.data.glue_tasks import GLUE_TASKS
    from vega_toolkit.metrics.glue_metrics import glue_score, task_score

    os.makedirs(out_dir, exist_ok=True)
    written, dev_scores, seen, first_dev = {}, {}, {}, {}
    for path in checkpoints:
        predictor = GluePredictor.from_checkpoint(path, glue_dir, vocab_dir, device, cache_dir)
        if predictor.glue.name in seen:
            raise ValueError(f"two checkpoints for {predictor.glue.name}: {seen[predictor.glue.name]} and {path}")
        seen[predictor.glue.name] = path
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
                write_dev_predictions(os.path.join(out_dir, DEV_PREDICTIONS, f"{predictor.glue.name}.{split}.txt"),
                                      preds)
            per_split = score_dev(predictor, max_tokens, predictions)
            first_dev[predictor.glue.name] = next(iter(per_split.values()))
            for split, metrics in per_split.items():
                shown = " ".join(f"{k}={v:.2f}" for k, v in metrics.items())
                print(f"dev {predictor.glue.name} {split} {shown}", file=out)
            dev_scores[predictor.glue.name] = float(np.mean([task_score(predictor.glue, m)
                                                             for m in per_split.values()]))
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
    parser.add_argument("--allow-partial", action="store_true",
                        help="write submission files for test files without the official row count (subsets); "
                             "without it such a file is an error")
    return parser


def cli_main(argv: Optional[List[str]] = None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:%(name)s:%(message)s")
    args = get_parser().parse_args(argv)
    if args.max_tokens < 1:
        sys.exit("vega-generate: --max-tokens must be positive")
    for path in args.checkpoints:
        if not os.path.isfile(path):
            sys.exit(f"vega-generate: checkpoint {path} not found")
    from vega_toolkit.fairseq_fixes.checkpoint_loading import CheckpointError
    from vega_toolkit.data.glue_readers import GlueFormatError
    from vega_toolkit.models.heads import HeadMismatchError

    try:
        generate(args.checkpoints, args.glue_dir, args.out_dir, args.dev, args.zip_name, args.max_tokens,
                 args.vocab_dir, "cpu" if args.cpu else None, args.glue_cache_dir, allow_partial=args.allow_partial)
    except (PartialTestSetError, HeadMismatchError, CheckpointError, GlueFormatError, FileNotFoundError) as err:
        sys.exit(f"vega-generate: {err}")  # bad input: the message says what to do, a traceback would bury it


if __name__ == "__main__":
    cli_main()
