"""`vega-train`: fairseq-train with the vega plugins loaded. Same flags, same output.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny \
        --optimizer adam --lr 5e-4 --max-update 1000 --batch-size 16 --save-dir ckpt
    vega-train ... --launcher submitit --slurm-nodes 2 --slurm-gpus-per-node 8    # the same training on SLURM

The plugins are registered before fairseq builds its parser (and `--user-dir` is injected for spawned workers),
the fairseq fixes apply, and the training guards run (docs/design.md#training-guards). The launchers live in
vega_toolkit/launch, the training core in vega_toolkit/runtime/training.py.
"""

import sys

from vega_toolkit.errors import console_script
from vega_toolkit.launch.local import run_local
from vega_toolkit.launch.submitit_launcher import split_launcher_args, submit


@console_script("vega-train")
def cli_main(argv: list[str] | None = None):
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
