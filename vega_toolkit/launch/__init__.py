"""Running vega-train elsewhere than in this process: `--launcher submitit` (SLURM through submitit).

See vega_toolkit/launch/submitit_launcher.py for the flags, and scripts/slurm_local.sh for a one-node test cluster.
"""
