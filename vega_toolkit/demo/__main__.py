"""python -m vega_toolkit.demo --out demo_out [--glue-dir GLUE --corpus CORPUS] [--size demo|smoke]"""

import argparse
import os
from pathlib import Path

from vega_toolkit.demo.pipeline import SIZES, Pipeline


def main():
    parser = argparse.ArgumentParser(prog="python -m vega_toolkit.demo", description="Vega v1 recipe end to end")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (created)")
    parser.add_argument("--glue-dir", type=Path, help="real GLUE folder (needs SST-2, RTE, CoLA); default: toy tasks")
    parser.add_argument("--corpus", type=Path, help="real text folder for pretraining; default: toy corpus")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo", help="demo (README) or smoke (CI test)")
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the data and pretraining, and the first fine-tuning seed (then seed+1, ...)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2 if (os.cpu_count() or 1) >= 2 else 1,
        help="2: fine-tune the pretrained and the random-init rows at once (default on 2 or more cores); 1: in turn",
    )
    args = parser.parse_args()
    if args.jobs not in (1, 2):
        parser.error(f"--jobs must be 1 or 2, got {args.jobs}")
    Pipeline(args.out, SIZES[args.size], args.glue_dir, args.corpus, args.seed, args.jobs).run_all()


if __name__ == "__main__":
    main()
