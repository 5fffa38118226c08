"""`vega-plan`: will a vega-train configuration fit the card, how large may its batch be, and how long will it take.

    vega-plan --task denoising_pretrain --criterion rtd_ternary --arch vega_v1_1_3b --tokens-per-sample 512 \
        --batch-size 8 --bf16 --checkpoint-activations --optimizer adam --max-update 1000000 \
        --gpu a100-40gb --gpus 320                       # report; its last line:
    # plan vega_v1_1_3b a100-40gb x320: peak <X> GiB/GPU (fits), <D> days for 1000000 updates at MFU <m>
    vega-plan ... --json                                 # one JSON object
    vega-plan --validate                                 # predicted vs measured peaks of benchmarks/calibration/*.json
    vega-plan DATA_BIN ... --device cpu                  # trace the CPU step (checked against a real one)

Takes vega-train's flags (DATA optional: without it the vocabulary is --vocab-size rows) plus --gpu, --gpus,
--gpu-memory, --gpu-flops, --gpus-per-node, --interconnect-gbps. Nothing is allocated: the real model, criterion and
fairseq optimizer run one update under fake tensors (vega_toolkit/planning/).
"""

import argparse
import json
import logging
import sys
import warnings


def cli_main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")  # Hydra's deprecation notes on every fairseq config conversion
    logging.disable(logging.INFO)

    from vega_toolkit.planning.calibration import CalibrationError, calibration_files
    from vega_toolkit.planning.plan import TOLERANCE, make_plan, plan_json, render_text, render_validation, validate
    from vega_toolkit.planning.step import PlanInputError

    try:
        if "--validate" in argv:
            parser = argparse.ArgumentParser(prog="vega-plan --validate")
            parser.add_argument("--validate", action="store_true")
            parser.add_argument(
                "--calibration", default="", help="one calibration file (default: all of benchmarks/calibration)"
            )
            args = parser.parse_args(argv)
            paths = [args.calibration] if args.calibration else calibration_files()
            if not paths:
                raise CalibrationError("no calibration files in benchmarks/calibration (give --calibration FILE)")
            rows = validate(paths)
            print(render_validation(rows))
            worst = max(abs(r.ratio - 1) for r in rows)
            print(
                f"validate: {len(rows)} rows, worst |predicted / measured - 1| = {worst:.3f} "
                f"({'within' if worst <= TOLERANCE else 'NOT within'} {TOLERANCE:.0%})"
            )
            return 0 if worst <= TOLERANCE else 1
        plan = make_plan(argv)
    except (PlanInputError, CalibrationError, ValueError, FileNotFoundError) as error:
        print(f"vega-plan: {error}", file=sys.stderr)
        return 2
    print(json.dumps(plan_json(plan)) if "--json" in argv else render_text(plan))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
