"""`vega-preprocess`: raw text files -> sentencepiece model -> fairseq `data-bin/` for `denoising_pretrain`.

    vega-preprocess $VEGA_CORPUS_DIR/gutenberg --paragraphs --destdir data-bin/gutenberg --vocab-size 8000
    vega-preprocess corpus/*.txt --destdir data-bin/x --spm-model deberta-v3/spm.model --srcdict deberta-v3/dict.txt
    vega-preprocess big/ --destdir bin --vocab-size 128000 --shards 64 --workers 8 \
        --launcher submitit --slurm-partition cpu --slurm-cpus-per-task 8 --slurm-time 240   # one array task a shard

Inputs are text files (directories contribute their `*.txt` files), one paragraph or sentence per line; blank
lines are dropped. Hard-wrapped text (Project Gutenberg) takes `--paragraphs`: each blank-line separated paragraph
becomes one line. sentencepiece is trained once, on a seeded sample (`--spm-sample-lines`), then every unit is
encoded straight to ids into fairseq's mmap datasets; `--shards N` writes DIR/shard0..shard{N-1} (valid only in
shard0), which vega-train reads one per epoch. How, and why it runs in bounded memory:
vega_toolkit/data/corpus_pipeline.py. A re-run of the same command skips the finished shards; a destination that
holds another data-bin (or model folder) is refused unless `--force`.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from vega_toolkit.data.corpus_pipeline import PreprocessConfig, run
from vega_toolkit.errors import console_script
from vega_toolkit.launch.submitit_launcher import split_launcher_args


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vega-preprocess",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("inputs", nargs="+", help="text files or directories of *.txt files")
    parser.add_argument("--destdir", required=True, help="output data-bin directory (with --shards N: their folder)")
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab-size", type=int, help="train a sentencepiece model with this many pieces")
    vocab.add_argument("--spm-model", help="use this existing sentencepiece model (e.g. from vega-convert)")
    parser.add_argument(
        "--srcdict",
        help="with --spm-model: keep this fairseq dict.txt (a converted model's; it "
        "must have been built from that model)",
    )
    parser.add_argument(
        "--model-type",
        default="unigram",
        choices=["unigram", "bpe"],
        help="sentencepiece model type (DeBERTa-v3 uses unigram)",
    )
    parser.add_argument("--character-coverage", type=float, default=0.9999, help="sentencepiece coverage")
    parser.add_argument(
        "--spm-sample-lines",
        type=int,
        default=2_000_000,
        help="sentencepiece trains on this many units (lines or paragraphs) read at seeded random "
        "places of the corpus (all of it when smaller)",
    )
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.01,
        help="fraction of the units (paragraphs with --paragraphs) of shard 0 held out as valid, "
        "chosen by a seeded hash of their text (copies of a text stay together)",
    )
    parser.add_argument(
        "--max-valid-lines",
        type=int,
        default=100_000,
        help="at most this many valid units (bounds the valid split whatever the corpus size)",
    )
    parser.add_argument(
        "--paragraphs",
        action="store_true",
        help="hard-wrapped text (Project Gutenberg): join each blank-line separated paragraph into "
        "one line before splitting and encoding, so held-out text is whole paragraphs and "
        "</s> marks paragraph ends rather than line wraps",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the sentencepiece sample and the valid split")
    parser.add_argument(
        "--encoding",
        default="auto",
        help="input encoding; 'auto' reads UTF-8 and falls back to Windows-1252 (a superset of "
        "Latin-1's text) line by line",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="number of data-bins (DIR/shard0..): vega-train reads one per epoch; the unit of work "
        "of --launcher submitit (one SLURM array task each)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="encoding processes per shard (the output is the same whatever their number)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace what --destdir holds (a data-bin, a model folder, another preprocessing)",
    )
    return parser


def parse(argv: list[str]):
    """(launcher flags, PreprocessConfig)."""
    launcher, rest = split_launcher_args(argv, prog="vega-preprocess")
    args = get_parser().parse_args(rest)
    config = PreprocessConfig(**{k: v for k, v in vars(args).items()})
    return launcher, config


def main(argv: list[str] | None = None) -> Path:
    launcher, config = parse(sys.argv[1:] if argv is None else argv)
    if launcher.launcher == "submitit":
        from vega_toolkit.launch.preprocess_array import submit_shards

        submit_shards(launcher, config)
        return Path(config.destdir)
    return run(config)


@console_script("vega-preprocess")
def cli_main(argv: list[str] | None = None):
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO, stream=sys.stdout
    )
    main(argv)


if __name__ == "__main__":
    cli_main()
