"""`vega-study`: run a declared grid of pretraining arms x GLUE tasks x learning rates x seeds, and report it.

    vega-study run --scale smoke --out /tmp/study-smoke --jobs 2                  # toy data, about 2 minutes
    vega-study run --scale cpu --out results/study-cpu --glue-dir glue_data --corpus corpus/gutenberg --jobs 2
    vega-study run --scale cpu --arms all ...                                     # the whole ablation study
    vega-study plan --scale paper --arms all --glue-dir glue_data --corpus corpus --out STUDY > study.sh  # SLURM
    vega-study report results/study-cpu                                         # report.md + study.png
    vega-study probe MODEL_DIR [MODEL_DIR ...] --glue-dir glue_data --task SST-2  # frozen-feature probes per layer
    vega-study overlap results/study-cpu --glue-dir glue_data                   # STS-B predictions vs word overlap
    vega-study mechanisms results/study-cpu                                     # what SiFT and the rounds did
    vega-study rehearse --out /tmp/rehearsal --glue-dir tests/fixtures/glue     # the paper's job graph on SLURM
    vega-study compute results/study-cpu    # transfer vs FLOPs; `carry`: unfinished pretrainings' checkpoints

Finished cells are JSON lines in OUT/results.jsonl (the same command after a kill resumes); arms and scales are
declared in vega_toolkit/study/plan.py; the report's lines: docs/design.md#vega-study.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from vega_toolkit.errors import check_output_dir, console_script

# the page whose generated study block `vega-study report --readme` rewrites when no page is given (the README links
# it; run from the repository root)
RESULTS_PAGE = "docs/results.md"


def _split(value: str | None):
    return tuple(v for v in (value or "").split(",") if v) or None


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:  # 0 jobs would wait forever for a free slot
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vega-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a study")
    plan = sub.add_parser(
        "plan",
        help="print a study's commands as a script (for the paper scale: SLURM jobs "
        "through vega-train --launcher submitit); runs nothing",
    )
    for p in (run, plan):
        _add_study_args(p)
    run.add_argument("--jobs", type=_at_least_one, default=1, help="cells run side by side")
    run.add_argument(
        "--threads",
        type=_at_least_one,
        default=None,
        help="BLAS threads per cell (default: 1 for fine-tuning, the scale's pretrain_threads for "
        "pretraining); benchmarks/study_parallel.py compares --jobs 2 --threads 1 with --jobs 1 "
        "--threads 2",
    )
    run.add_argument(
        "--extra-finetune-args",
        default="",
        help="flags appended to every fine-tuning command (their cells get new keys and run again)",
    )
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument(
        "--no-preload",
        action="store_true",
        help="start every command in a fresh interpreter instead of forking the toolkit's commands from one that "
        "has imported fairseq once (about 4 CPU s more per command; vega_toolkit/launch/preloaded.py)",
    )
    overlap = sub.add_parser(
        "overlap",
        help="how much of each STS-B cell's test predictions is the pair's word "
        "overlap (and the overlap's own dev score)",
    )
    overlap.add_argument("out", help="study folder")
    overlap.add_argument(
        "--glue-dir", default=os.environ.get("VEGA_GLUE_DIR"), help="glue_data/ (default $VEGA_GLUE_DIR)"
    )
    mechanisms = sub.add_parser(
        "mechanisms",
        help="what the adaptation tricks did in the study's cells, from their "
        "logs: SiFT's share of the loss, dev and changed pseudo-labels by "
        "round, what self-calibration selected and kept",
    )
    mechanisms.add_argument("out", help="study folder")
    report = sub.add_parser("report", help="report.md, study.png and the transfer line of a study folder")
    report.add_argument("out", help="study folder")
    report.add_argument(
        "--baseline", default=None, help="compare every arm with this one (default: each arm's declared compare_with)"
    )
    report.add_argument(
        "--selection",
        choices=("held-out", "dev"),
        default="held-out",
        help="held-out: each run at the learning rate its arm's other runs choose, last checkpoint "
        "(default); dev: the first cpu study's rule (best median over the reported seeds, "
        "per-epoch best checkpoint on dev), to compare",
    )
    report.add_argument(
        "--glue-dir",
        default=os.environ.get("VEGA_GLUE_DIR"),
        help="GLUE files of the floors and dev labels (default $VEGA_GLUE_DIR, else study.json's; "
        "kept in OUT/anchors.json)",
    )
    compute = sub.add_parser(
        "compute",
        help="the compute axis: transfer over random init against pretraining FLOPs (compute.md, compute.png)",
    )
    compute.add_argument("out", help="study folder")
    carry = sub.add_parser(
        "carry",
        help="copy every unfinished pretraining's checkpoint_last.pt to OUT/carried/ (to be committed), so that the "
        "next machine resumes it; stop the runners first (SIGTERM saves the update they reached)",
    )
    carry.add_argument("out", help="study folder")
    report.add_argument(
        "--readme",
        nargs="?",
        const=RESULTS_PAGE,
        metavar="PAGE",
        help="also rewrite this page's block <!-- vega-study:<folder name> --> ... "
        f"<!-- /vega-study:<folder name> --> from the report (without PAGE: {RESULTS_PAGE}, "
        "the results page the README links)",
    )
    probe = sub.add_parser(
        "probe",
        help="logistic probes of each layer's [CLS] and mean-pooled states (no "
        "fine-tuning): does a model folder's [CLS] carry anything?",
    )
    probe.add_argument("model_dirs", nargs="+", help="model folders (vega-convert export)")
    probe.add_argument(
        "--glue-dir", default=os.environ.get("VEGA_GLUE_DIR"), help="glue_data/ (default $VEGA_GLUE_DIR)"
    )
    probe.add_argument("--task", default="SST-2", help="a single-sentence task (SST-2 or CoLA)")
    probe.add_argument("--train-examples", type=int, default=4000, help="training sentences the probe sees")
    rehearse = sub.add_parser(
        "rehearse",
        help="submit the paper's whole job graph (preprocessing, two pretraining "
        "phases, the GLUE plan, the submission) to SLURM at tiny sizes, "
        "requeue one training mid-way, and check the submission zip",
    )
    rehearse.add_argument("--out", required=True, help="a new folder for the data, checkpoints, logs and the zip")
    rehearse.add_argument("--glue-dir", required=True, help="GLUE folder with every task (tests/fixtures/glue)")
    rehearse.add_argument("--corpus", help="pretraining text (default: the demo's toy corpus, generated)")
    rehearse.add_argument(
        "--time-limit",
        type=_at_least_one,
        default=3600,
        help="seconds before the rehearsal gives up and cancels its jobs",
    )
    return parser


def _add_study_args(p: argparse.ArgumentParser):
    from vega_toolkit.study.plan import SCALES  # dataclass declarations only: cheap at parser time

    p.add_argument("--scale", required=True, help=" | ".join(SCALES) + " (vega_toolkit/study/plan.py)")
    p.add_argument("--out", required=True, help="study folder: results.jsonl, logs/, models/, report.md")
    p.add_argument(
        "--glue-dir",
        default=os.environ.get("VEGA_GLUE_DIR"),
        help="glue_data/ folder (default $VEGA_GLUE_DIR; the smoke scale generates toy data)",
    )
    p.add_argument(
        "--corpus",
        default=None,
        help="pretraining text: a folder of *.txt or a file (default $VEGA_CORPUS_DIR/gutenberg)",
    )
    p.add_argument("--arms", help="comma-separated arms (default: the scale's `arms`); `all`: its `ablation_arms`")
    p.add_argument("--tasks", help="comma-separated subset of the scale's GLUE tasks")


def _default_corpus() -> str | None:
    base = os.environ.get("VEGA_CORPUS_DIR")
    if not base:
        return None
    return os.path.join(base, "gutenberg") if os.path.isdir(os.path.join(base, "gutenberg")) else base


@console_script("vega-study")
def cli_main(argv: list[str] | None = None) -> int:
    import shlex

    args = build_parser().parse_args(argv)
    if getattr(args, "out", None) is not None:  # a study folder, written (run, plan) or read (report, ...)
        check_output_dir(args.out, "--out" if args.command in ("run", "plan") else "STUDY_DIR")
    from vega_toolkit.study.report import write_report

    if args.command == "probe":
        from vega_toolkit.study.probe import probe_model

        if not args.glue_dir:
            sys.exit("vega-study probe: --glue-dir (or $VEGA_GLUE_DIR) is required")
        for model_dir in args.model_dirs:
            try:
                rows = probe_model(model_dir, args.glue_dir, args.task, args.train_examples)
            except (FileNotFoundError, ValueError) as e:
                sys.exit(f"vega-study probe: {e}")
            print(f"{model_dir}: {args.task} dev, majority class {rows[0]['majority']:.3f}")
            print("  layer  cls_probe  mean_probe  mean_cos")
            for r in rows:
                print(f"  {r['layer']:5d}  {r['cls_probe']:9.3f}  {r['mean_probe']:10.3f}  {r['mean_cos']:8.3f}")
        return 0
    if args.command == "overlap":
        from vega_toolkit.study.overlap import overlap_report

        if not args.glue_dir:
            sys.exit("vega-study overlap: --glue-dir (or $VEGA_GLUE_DIR) is required")
        try:
            print(overlap_report(Path(args.out), args.glue_dir))
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"vega-study overlap: {e}")
        return 0
    if args.command == "mechanisms":
        from vega_toolkit.study.mechanisms import mechanisms_report

        try:
            print(mechanisms_report(Path(args.out)), end="")
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"vega-study mechanisms: {e}")
        return 0
    if args.command == "rehearse":
        from vega_toolkit.study.rehearsal import Rehearsal, RehearsalError

        rehearsal = Rehearsal(
            Path(args.out),
            Path(args.glue_dir),
            Path(args.corpus) if args.corpus else None,
            log=lambda s: print(s, flush=True),
        )
        try:
            print(rehearsal.run_all(args.time_limit), flush=True)
        except (RehearsalError, RuntimeError, TimeoutError) as e:  # a job or a SLURM command failed: its message
            sys.exit(f"vega-study rehearse: {e}")
        return 0
    if args.command == "compute":
        from vega_toolkit.study.compute import write_compute

        try:
            print(write_compute(Path(args.out)))
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"vega-study compute: {e}")
        return 0
    if args.command == "carry":
        from vega_toolkit.study.carried import carry
        from vega_toolkit.study.runner import read_results

        if not (Path(args.out) / "results.jsonl").is_file():
            sys.exit(f"vega-study carry: {args.out} is not a study folder (it has no results.jsonl)")
        copied = carry(Path(args.out), {r["key"] for r in read_results(Path(args.out))})
        for path, update in copied:
            print(f"carried {path} (update {update})")
        count = f"{len(copied)} checkpoint{'' if len(copied) == 1 else 's'}"
        print(f"vega-study carry: {count} under {Path(args.out) / 'carried'}; commit that folder")
        return 0
    if args.command == "report":
        if args.readme and not Path(args.readme).is_file():
            sys.exit(
                f"vega-study report: --readme {args.readme}: no such file (run from the repository root, or "
                "give the results page's path)"
            )
        from vega_toolkit.study.report import update_readme

        try:
            summary = write_report(Path(args.out), baseline=args.baseline, rule=args.selection, glue_dir=args.glue_dir)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"vega-study report: {e}")
        if args.readme and not update_readme(Path(args.readme), Path(args.out)):
            sys.exit(f"vega-study report: {args.readme} has no <!-- vega-study:{Path(args.out).name} --> block")
        print(summary)
        return 0

    from vega_toolkit.study.plan import get_scale
    from vega_toolkit.study.runner import StudyRunner

    try:
        scale = get_scale(args.scale)
    except ValueError as e:
        sys.exit(f"vega-study: {e}")
    out = Path(args.out)
    glue_dir, corpus = args.glue_dir, args.corpus or _default_corpus()
    if args.command == "plan":
        from vega_toolkit.study.cells import build_cells
        from vega_toolkit.study.cluster import cluster_script

        if not glue_dir or not os.path.isdir(glue_dir):
            sys.exit(f"vega-study plan: --glue-dir {glue_dir or '(unset)'} does not exist (cells are keyed by it)")
        paths = {
            "out": str(out.resolve()),
            "glue": str(Path(glue_dir).resolve()),
            "corpus": str(Path(corpus or "corpus").resolve()),
        }
        try:
            cells = build_cells(scale, paths["glue"], paths["corpus"], arms=_split(args.arms), tasks=_split(args.tasks))
        except (ValueError, FileNotFoundError) as e:
            sys.exit(f"vega-study plan: {e}")
        print(cluster_script(scale, cells, paths), end="")
        return 0
    if not scale.local:
        sys.exit(
            f"vega-study: the {scale.name} scale never runs here (it needs a GPU cluster): "
            f"`vega-study plan --scale {scale.name} ...` prints its SLURM commands"
        )
    if scale.toy_data and not (args.glue_dir and args.corpus):
        from vega_toolkit.demo.toy_data import write_toy_data

        toy = write_toy_data(out / "toy_data", seed=1, corpus_paragraphs=300, task_sizes=(64, 32, 32))
        glue_dir, corpus = str(toy / "glue"), str(toy / "corpus")
    for flag, path in (("--glue-dir", glue_dir), ("--corpus", corpus)):
        if not path or not os.path.exists(path):
            sys.exit(f"vega-study: {flag} {path or '(unset)'} does not exist")
    try:
        runner = StudyRunner(
            scale,
            out,
            glue_dir,
            corpus,
            jobs=args.jobs,
            extra_finetune_args=tuple(shlex.split(args.extra_finetune_args)),
            arms=_split(args.arms),
            tasks=_split(args.tasks),
            threads=args.threads,
            log=lambda s: print(s, flush=True),
            preload=not args.no_preload,
        )
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"vega-study: {e}")
    signal.signal(signal.SIGTERM, runner.terminate_children)
    status = runner.run()
    if not args.no_report:
        print(write_report(out))
    return status


if __name__ == "__main__":
    sys.exit(cli_main())
