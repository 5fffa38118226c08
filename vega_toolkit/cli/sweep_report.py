"""`vega-sweep-report SWEEP_DIR`: a Hydra learning-rate x seed sweep's dev scores, as GLUE papers report them.

    vega-hydra-train -m --config-name sst2 task.data=... 'optimization.lr=[1e-5],[2e-5],[3e-5]' \
        common.seed=1,2,3,4,5 hydra.sweep.dir=sweeps/sst2          # add hydra/launcher=submitit_slurm for SLURM
    vega-sweep-report sweeps/sst2

Each run folder (SWEEP_DIR/<job number>/) holds Hydra's `.hydra/config.yaml` (its learning rate, seed, checkpoint
metric and save dir) and the job's log (`*.log`), whose `valid on 'valid' subset` lines carry the dev metric. A run's
score is its best dev value (what selected its checkpoint_best.pt). Printed: per learning rate the median over seeds
with min, max and n; then the best learning rate (highest median, ties to the smaller one: vega-study's rule) and
the checkpoint_best.pt of its best seed. Runs without a dev score yet (queued, failed) are listed by folder.
"""

import argparse
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from vega_toolkit.errors import console_script
from vega_toolkit.study.selection import best_point


@dataclass
class SweepRun:
    folder: Path
    lr: float
    seed: int
    metric: str
    score: float | None  # None: no validation logged (yet)
    checkpoint: Path  # the run's checkpoint_best.pt


def read_run(folder: Path) -> SweepRun:
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    config = folder / ".hydra" / "config.yaml"
    try:
        cfg = OmegaConf.load(config)
        lr, seed = cfg.optimization.lr, int(cfg.common.seed)
        metric, maximize = cfg.checkpoint.best_checkpoint_metric, cfg.checkpoint.maximize_best_checkpoint_metric
        save_dir = Path(cfg.checkpoint.save_dir)
        lr = float(lr[0] if OmegaConf.is_list(lr) else lr)
    except (OmegaConfBaseException, yaml.YAMLError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{config}: not the config of a fairseq Hydra training run ({type(e).__name__}: {e})") from e
    value = re.compile(rf"valid on 'valid' subset .*?\| {re.escape(metric)} (-?[0-9.]+)")
    scores = [
        float(m.group(1))
        for log in sorted(folder.glob("*.log"))
        for m in value.finditer(log.read_text(errors="replace"))
    ]
    pick = max if maximize else min
    return SweepRun(
        folder,
        lr,
        seed,
        metric,
        pick(scores) if scores else None,
        (save_dir if save_dir.is_absolute() else folder / save_dir) / "checkpoint_best.pt",
    )


def read_sweep(sweep_dir: Path) -> list[SweepRun]:
    runs = [read_run(p.parent.parent) for p in sorted(Path(sweep_dir).glob("*/.hydra/config.yaml"))]
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no Hydra run folders (<job>/.hydra/config.yaml)")
    return runs


def sweep_table(runs: list[SweepRun]) -> str:
    """The report's text: the per-learning-rate table, the best learning rate and its best run."""
    scored = [r for r in runs if r.score is not None]
    metric = runs[0].metric
    by_lr: dict[float, dict[int, float]] = defaultdict(dict)
    for r in scored:
        by_lr[r.lr][r.seed] = r.score
    lines = [f"{'lr':>10}  {'n':>3}  {'median ' + metric:>16}  {'min':>8}  {'max':>8}"]
    for lr in sorted(by_lr):
        values = list(by_lr[lr].values())
        lines.append(
            f"{lr:>10.3g}  {len(values):>3}  {statistics.median(values):>16.4f}  {min(values):>8.4f}  "
            f"{max(values):>8.4f}"
        )
    if by_lr:
        lr = best_point(by_lr)
        seeds = by_lr[lr]
        best = max((r for r in scored if r.lr == lr), key=lambda r: r.score)
        lines.append(
            f"best lr {lr:.3g}: median {metric} {statistics.median(seeds.values()):.4f} over "
            f"{len(seeds)} seed(s); best run seed {best.seed} ({best.score:.4f}): {best.checkpoint}"
        )
    missing = [str(r.folder) for r in runs if r.score is None]
    if missing:
        lines.append(f"no dev score yet in {len(missing)} run(s): " + " ".join(missing))
    return "\n".join(lines)


@console_script("vega-sweep-report")
def cli_main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(prog="vega-sweep-report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", help="a Hydra multirun folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    try:
        print(sweep_table(read_sweep(Path(args.sweep_dir))))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"vega-sweep-report: {e}")


if __name__ == "__main__":
    cli_main()
