"""python -m vega_toolkit.demo --out demo_out [--glue-dir GLUE --corpus CORPUS] [--size demo|smoke]"""

import argparse
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
    args = parser.parse_args()
    Pipeline(args.out, SIZES[args.size], args.glue_dir, args.corpus, args.seed).run_all()


if __name__ == "__main__":
    main()
