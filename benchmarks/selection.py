"""KenLM data selection on real data: precision of the top-K and `vega-select` throughput.

    VEGA_GLUE_DIR=../shared/glue VEGA_CORPUS_DIR=../shared/corpus python benchmarks/selection.py
    ... --pool-size 100000      # size of the throughput pool (default 100k rows)

Precision: a 4-gram LM on real CoLA train text must rank the held-out CoLA dev sentences above out-of-domain
sentences (SST-2 dev reviews and Gutenberg prose lines) mixed into one pool; precision@K with K = number of CoLA
sentences, for perplexity alone and for Moore-Lewis (general LM from a pool sample, and from disjoint general
text: SST-2 train sentences + other Gutenberg lines). Throughput: the full `vega-select` path (read, normalise,
score under two LMs, heap top-k, write) on a pool of SST-2 train sentences and Gutenberg lines.
"""

import argparse
import glob
import os
import random
import sys
import tempfile
import time

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.selection.select import DomainScorer, PoolFormat, read_rows, reservoir_sample, select_file


def gutenberg_lines(corpus_dir):
    lines = []
    for path in sorted(glob.glob(os.path.join(corpus_dir, "gutenberg", "*.txt"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                line = " ".join(line.split())
                # prose lines only: skip titles, chapter headings and fragments
                if i > 0 and 40 <= len(line) <= 300 and not line.isupper():
                    lines.append(line)
    return lines


def write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def precision_at_k(selected_path, in_domain):
    with open(selected_path, encoding="utf-8") as f:
        kept = [line.rstrip("\n") for line in f]
    return sum(line in in_domain for line in kept) / len(in_domain)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glue-dir", default=os.environ.get("VEGA_GLUE_DIR"))
    p.add_argument("--corpus-dir", default=os.environ.get("VEGA_CORPUS_DIR"))
    p.add_argument("--pool-size", type=int, default=100_000)
    p.add_argument("--order", type=int, default=4)
    args = p.parse_args(argv)
    if not (args.glue_dir and args.corpus_dir):
        sys.exit("set VEGA_GLUE_DIR and VEGA_CORPUS_DIR (or --glue-dir/--corpus-dir)")
    rng = random.Random(0)
    cola_train = [ex.text_a for ex in read_glue_split(args.glue_dir, "CoLA", "train")]
    cola_dev = list(dict.fromkeys(ex.text_a for ex in read_glue_split(args.glue_dir, "CoLA", "dev")))
    sst_dev = [ex.text_a for ex in read_glue_split(args.glue_dir, "SST-2", "dev")]
    sst_train = [ex.text_a for ex in read_glue_split(args.glue_dir, "SST-2", "train")]
    guten = gutenberg_lines(args.corpus_dir)
    rng.shuffle(guten)
    n_in = len(cola_dev)
    ood = sst_dev + guten[:n_in]
    in_domain = set(cola_dev) - set(ood)
    pool = cola_dev + ood
    rng.shuffle(pool)
    general_disjoint = sst_train[:20000] + guten[n_in : n_in + 20000]

    with tempfile.TemporaryDirectory() as tmp:
        train_txt, pool_txt, gen_txt = (os.path.join(tmp, n) for n in ("train.txt", "pool.txt", "general.txt"))
        write(train_txt, cola_train)
        write(pool_txt, pool)
        write(gen_txt, general_disjoint)
        print(
            f"pool: {len(pool)} rows = {n_in} CoLA dev + {len(sst_dev)} SST-2 dev + {n_in} Gutenberg lines; "
            f"LM: {args.order}-gram on {len(cola_train)} CoLA train sentences; K = {n_in}"
        )
        pool_sample = [
            s[0] for s in reservoir_sample((seg for _, _, seg in read_rows(pool_txt, PoolFormat())), 20000, seed=1)
        ]
        settings = [
            ("perplexity", None),
            ("moore-lewis, general = pool sample", pool_sample),
            ("moore-lewis, general = SST-2 train + Gutenberg (disjoint)", general_disjoint),
        ]
        print(f"| ranking | precision@{n_in} |\n|---|---|")
        for name, general in settings:
            work = tempfile.mkdtemp(dir=tmp)
            scorer = DomainScorer.train(
                work, iter(cola_train), None if general is None else iter(general), args.order, discount_fallback=True
            )
            out = os.path.join(work, "selected.txt")
            select_file(pool_txt, out, scorer, top_k=n_in)
            print(f"| {name} | {precision_at_k(out, in_domain):.3f} |")

        big = [rng.choice(sst_train) if i % 2 else rng.choice(guten) for i in range(args.pool_size)]
        big_txt = os.path.join(tmp, "big.txt")
        write(big_txt, big)
        from vega_toolkit.cli.select import cli_main

        t0 = time.perf_counter()
        cli_main(
            [
                "--train",
                train_txt,
                "--pool",
                big_txt,
                "--general",
                gen_txt,
                "--top-k",
                "5000",
                "--discount-fallback",
                "--out",
                os.path.join(tmp, "big_selected.txt"),
            ]
        )
        print(
            f"vega-select end to end (2 LMs trained + {args.pool_size} rows scored): {time.perf_counter() - t0:.1f} s"
        )


if __name__ == "__main__":
    main()
