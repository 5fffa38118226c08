"""`vega-select`: keep the sentences of an external pool that look like a task's training text (KenLM).

    vega-select --train cola_train.txt --pool pool.txt --top-k 5000 --out selected.txt --discount-fallback
    vega-select --train cola_train.txt --pool pool.txt --general wiki_sample.txt --top-k 5000 --out sel.txt
    vega-select --glue-task CoLA --train CoLA/train.tsv --pool external.tsv --max-ppl 300 --out sel.tsv

Trains a `--order`-gram LM on --train with KenLM's lmplz (estimation) + build_binary, scores every pool row with
the `kenlm` module, and writes the kept rows unchanged, in pool order. Ranking: in-domain perplexity, or
Moore-Lewis (in-domain minus general cross-entropy) when `--general` is given or `--moore-lewis` asks for it
(the general LM is then trained on a `--general-sample`-line random sample of the pool). Text is lower-cased and
split into words/punctuation for both training and scoring (vega_toolkit/selection/lm.py). TSV files: `--columns`
(zero-based, comma-separated; two columns = a sentence pair) or `--glue-task` (the task's own train-file layout
for --train and --pool). Prints the selection summary and throughput (sentences/min) on stdout.
"""

import argparse
import logging
import os
import sys
import tempfile

from vega_toolkit.data.text_files import require_utf8
from vega_toolkit.errors import UserError, console_script
from vega_toolkit.selection.lm import KenLMNotFoundError
from vega_toolkit.selection.select import DomainScorer, PoolFormat, read_rows, reservoir_sample, select_file

logger = logging.getLogger(__name__)


def _columns(text: str) -> tuple:
    try:
        cols = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--columns expects zero-based integers like 3 or 1,2; got {text!r}") from None
    if not cols or min(cols) < 0:
        raise argparse.ArgumentTypeError(f"--columns expects zero-based integers like 3 or 1,2; got {text!r}")
    return cols


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vega-select", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", required=True, help="in-domain text D_s (one sentence per line, or a TSV)")
    p.add_argument("--pool", required=True, help="external pool D* to select from (plain text or TSV)")
    p.add_argument("--out", required=True, help="selected rows, written unchanged in pool order")
    crit = p.add_mutually_exclusive_group(required=True)
    crit.add_argument("--top-k", type=int, help="keep the K best-scoring rows")
    crit.add_argument("--max-ppl", type=float, help="keep rows whose in-domain perplexity is <= X")
    crit.add_argument(
        "--max-score",
        type=float,
        help="keep rows whose ranking score (log10 cross-entropy, or the Moore-Lewis difference) is <= X",
    )
    p.add_argument("--general", help="general-domain text for Moore-Lewis (implies --moore-lewis)")
    p.add_argument(
        "--moore-lewis",
        action="store_true",
        help="rank by H_in - H_general; without --general the general LM is trained on a pool sample",
    )
    p.add_argument(
        "--general-sample",
        type=int,
        default=20000,
        help="pool lines sampled for the general LM when --general is not given (default 20000)",
    )
    p.add_argument("--order", type=int, default=4, help="n-gram order (default 4)")
    p.add_argument(
        "--discount-fallback",
        action="store_true",
        help="lmplz --discount_fallback: needed for small or deduplicated corpora (GLUE train sets)",
    )
    p.add_argument("--lm-memory", default="10%", help="lmplz -S sorting memory (default 10%% of RAM)")
    p.add_argument("--columns", type=_columns, help="zero-based TSV text columns of the pool, e.g. 3 or 1,2")
    p.add_argument("--train-columns", type=_columns, help="zero-based TSV text columns of --train")
    p.add_argument("--header", action="store_true", help="the pool's first line is a header (copied to --out)")
    p.add_argument("--glue-task", help="read --train and --pool in this GLUE task's train-file layout")
    p.add_argument("--work-dir", help="where the LMs are written (default: a temporary folder, deleted after)")
    p.add_argument("--scores", help="also write score<TAB>perplexity<TAB>row for each kept row")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out / --scores file")
    p.add_argument("--seed", type=int, default=1, help="seed of the pool sample for the general LM")
    return p


def formats(args) -> tuple:
    """(train format, pool format) from --glue-task or --columns/--train-columns/--header."""
    if args.glue_task:
        from vega_toolkit.data.glue_tasks import get_glue_task

        if args.columns or args.train_columns:
            raise SystemExit("vega-select: --glue-task sets the columns; drop --columns/--train-columns")
        spec = get_glue_task(args.glue_task).splits["train"]
        fmt = PoolFormat(spec.text_columns, spec.header is not None)
        return fmt, fmt
    return PoolFormat(args.train_columns), PoolFormat(args.columns, args.header)


def _text_lines(path: str, fmt: PoolFormat):
    """The text of each row, pair segments joined as separate LM training sentences."""
    for _, _, segments in read_rows(path, fmt):
        yield from segments


def run(args) -> int:
    train_fmt, pool_fmt = formats(args)
    if args.top_k is not None and args.top_k < 1:
        raise SystemExit(f"vega-select: --top-k must be >= 1, got {args.top_k}")
    for flag, path in (("--train", args.train), ("--pool", args.pool), ("--general", args.general)):
        if path is not None and not os.path.isfile(path):
            raise SystemExit(f"vega-select: {flag} {path}: file not found")
        if path is not None and os.path.exists(args.out) and os.path.samefile(path, args.out):
            raise UserError(f"--out {args.out} is also the {flag} input: give another output file")
        if path is not None:
            require_utf8(path)  # now, not after the language models were trained
    for flag, path in (("--out", args.out), ("--scores", args.scores)):
        if path is not None and os.path.exists(path) and not args.force:
            raise UserError(f"{flag} {path} already exists: give another file, or --force to overwrite it")
    with tempfile.TemporaryDirectory(prefix="vega-select-") as tmp:
        work = args.work_dir or tmp
        if args.general:
            general = _text_lines(args.general, PoolFormat())
        elif args.moore_lewis:
            n_rows = 0

            def pool_rows():
                nonlocal n_rows
                for _, _, segments in read_rows(args.pool, pool_fmt):
                    n_rows += 1
                    yield segments

            sample = reservoir_sample(pool_rows(), args.general_sample, args.seed)
            general = (s for segments in sample for s in segments)
            print(f"[vega-select] general LM: {len(sample)} of {n_rows} pool rows sampled from {args.pool}")
            if len(sample) > 0.1 * n_rows:
                # the general LM then memorises most candidates, which pushes their H_in - H_gen up
                # exactly when they are in-domain-looking; a small pool wants a separate --general text
                logger.warning(
                    f"the general-LM sample covers {len(sample) / n_rows:.0%} of the pool: Moore-Lewis "
                    f"is unreliable when the general LM has seen the candidates; pass --general"
                )
        else:
            general = None
        scorer = DomainScorer.train(
            work, _text_lines(args.train, train_fmt), general, args.order, args.discount_fallback, args.lm_memory
        )
        stats = select_file(
            args.pool, args.out, scorer, pool_fmt, args.top_k, args.max_ppl, args.max_score, args.scores
        )
    print(f"[vega-select] {stats.summary()} -> {args.out}")
    return 0


@console_script("vega-select")
def cli_main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stderr
    )
    args = get_parser().parse_args(argv)
    try:
        return run(args)
    except (KenLMNotFoundError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"vega-select: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli_main())
