"""Where vega-train's training runs: `--launcher local` (local.py, this process, the default) or `--launcher submitit`
(submitit_launcher.py, a SLURM job whose every task runs local.py's `run_local`).

See vega_toolkit/launch/submitit_launcher.py for the SLURM flags, and scripts/slurm_local.sh for a one-node test
cluster. slurm.py reads job states from `scontrol`; vega_toolkit/runtime/preemption.py holds SLURM's preemption signal
back while a checkpoint is written.
"""
