"""`vega-train`: fairseq-train with the vega plugins loaded. Same flags, same output.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny \
        --optimizer adam --lr 5e-4 --max-update 1000 --batch-size 16 --save-dir ckpt
    vega-train ... --launcher submitit --slurm-nodes 2 --slurm-gpus-per-node 8    # the same training on SLURM

Differences from stock `fairseq-train`, each a fix rather than a feature:
- the plugins are imported before fairseq builds its parser (so --arch/--task/--criterion choices include ours), and
  `--user-dir <installed vega_toolkit>` is injected so spawned distributed workers register them too;
- the fixes of vega_toolkit/fairseq_fixes apply (checkpoints load under torch>=2.6's `weights_only=True` default and
  are written atomically, `--bf16` no longer selects fairseq's TPU code path, batches keep every example);
- `vega-train --help` without `--arch` documents the `vega_encoder` options (as `--arch vega_base --help` does);
- the run-time guards of vega_toolkit/runtime (listed in its __init__.py: save-dir lock, checkpoint_last.pt repair,
  finished-run no-op, head and vocabulary checks, stop on SIGTERM with a checkpoint);
- tasks that chain several trainings (glue_transductive, glue_self_calibrated) run their whole loop
  (vega_toolkit/adaptation, chosen by its `ROUND_DRIVERS` table).

This module is the entry point only: launchers in vega_toolkit/launch (local.py, submitit_launcher.py), the training
core in vega_toolkit/runtime/training.py.
"""
import sys
from typing import List, Optional

from vega_toolkit.launch.local import run_local
from vega_toolkit.launch.submitit_launcher import split_launcher_args, submit
from vega_toolkit.errors import console_script


@console_script("vega-train")
def cli_main(argv: Optional[List[str]] = None):
    argv = sys.argv[1:] if argv is None else list(argv)
    asks_help = any(a in ("-h", "--help") for a in argv)
    if asks_help and not any(a in ("-a", "--arch") or a.startswith("--arch=") for a in argv):
        # fairseq lists a model's options only once an --arch is chosen; ours are what a vega user looks for.
        argv += ["--arch", "vega_base"]
    launcher, argv = split_launcher_args(argv)  # --launcher/--slurm-* flags (see vega_toolkit/launch)
    if launcher.launcher == "submitit":
        submit(launcher, argv)
        return
    run_local(argv)


if __name__ == "__main__":
    cli_main()
