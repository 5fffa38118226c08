"""`vega-train`: fairseq-train with the vega plugins loaded. Same flags, same output.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny \
        --optimizer adam --lr 5e-4 --max-update 1000 --batch-size 16 --save-dir ckpt

Differences from stock `fairseq-train`, each a fix rather than a feature:
- the plugins are imported before fairseq builds its parser (so --arch/--task/--criterion choices include ours), and
  `--user-dir <installed vega_toolkit>` is injected so spawned distributed workers register them too;
- checkpoints load under torch>=2.6's `weights_only=True` default (see vega_toolkit/checkpoints.py);
- `--bf16` no longer switches fairseq onto its TPU code path (fairseq's legacy CLI sets `tpu=True` with bf16);
- `vega-train --help` without `--arch` documents the `vega_encoder` options (as `--arch vega_base --help` does).
"""
import os
import sys
from typing import List, Optional

import vega_toolkit

PLUGIN_DIR = os.path.dirname(os.path.abspath(vega_toolkit.__file__))


def with_user_dir(argv: List[str]) -> List[str]:
    """Append `--user-dir` pointing at the installed package unless the caller chose one."""
    if any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv):
        return list(argv)
    return list(argv) + ["--user-dir", PLUGIN_DIR]


def parse_training_args(argv: List[str]):
    """fairseq's training parser over `argv` (plugins loaded), with the bf16/tpu fix applied."""
    from fairseq import options

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    if getattr(args, "bf16", False) and "--tpu" not in argv:
        args.tpu = False
    return args


def run_training(argv: List[str]):
    """Parse `argv` like fairseq-train and train in this process (spawning local DDP workers as fairseq does)."""
    from fairseq import distributed_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.tasks import TASK_REGISTRY
    from fairseq_cli.train import main as train_main

    argv = with_user_dir(argv)
    args = parse_training_args(argv)
    # Adaptation tasks (transductive / self-calibrated) run several fairseq trainings in rounds.
    task_cls = TASK_REGISTRY.get(args.task)
    if task_cls is not None and hasattr(task_cls, "run_rounds"):
        return task_cls.run_rounds(argv, args)
    cfg = convert_namespace_to_omegaconf(args)
    distributed_utils.call_main(cfg, train_main)


def cli_main(argv: Optional[List[str]] = None):
    from vega_toolkit.launch.submitit_launcher import split_launcher_args, submit

    argv = sys.argv[1:] if argv is None else list(argv)
    asks_help = any(a in ("-h", "--help") for a in argv)
    if asks_help and not any(a in ("-a", "--arch") or a.startswith("--arch=") for a in argv):
        # fairseq lists a model's options only once an --arch is chosen; ours are what a vega user looks for.
        argv += ["--arch", "vega_base"]
    launcher, argv = split_launcher_args(argv)  # --launcher/--slurm-* flags (see vega_toolkit/launch)
    if launcher.launcher == "submitit":
        submit(launcher, argv)
        return
    run_training(argv)


if __name__ == "__main__":
    cli_main()
