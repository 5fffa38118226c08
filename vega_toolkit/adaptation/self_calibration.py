"""Algorithm 2 (self-calibrated fine-tuning): KenLM selection from an external pool, relabelling by M0, the
agreement filter, fine-tuning M0 on the calibrated data, then Algorithm 1. `drive_self_calibrated` is the round
driver of `--task glue_self_calibrated` (vega_toolkit/tasks/glue_self_calibrated.py, whose docstring gives the
command line and whose config holds the flags)."""

import logging
import os

from vega_toolkit.adaptation.rounds import (
    AdaptationState,
    RoundPredictions,
    atomic_write_text,
    check_round_args,
    run_transductive,
    train_round,
    write_train_layout,
)
from vega_toolkit.tasks.glue_self_calibrated import EXTERNAL_FORMATS

logger = logging.getLogger(__name__)


def read_external(path: str, glue, fmt: str) -> list[tuple]:
    """(text_a, text_b, given label or None) rows of the external pool, read by the GLUE readers for the task's
    layouts (so a malformed row is an error naming file and line)."""
    from vega_toolkit.data.glue_readers import read_glue_file

    if fmt == "text":
        if glue.is_pair:
            raise ValueError(
                f"--external-format text is one sentence per line; {glue.name} is a sentence-pair task "
                f"(use its train or test layout)"
            )
        with open(path, encoding="utf-8") as f:
            return [(line.strip(), None, None) for line in f if line.strip()]
    split = "train" if fmt == "labelled" else next(s for s in glue.splits if s.startswith("test"))
    return [(ex.text_a, ex.text_b, ex.label) for ex in read_glue_file(path, glue, split)]


def agrees(glue, pseudo: str, given: str, tolerance: float) -> bool:
    if glue.is_regression:
        return abs(float(pseudo) - float(given)) <= tolerance
    return pseudo == given


def select_in_domain(args, glue, pool: list[tuple], work_dir: str) -> list[tuple]:
    """Step 1: KenLM on the task's training text, top-k / perplexity threshold over the pool."""
    from vega_toolkit.data.glue_readers import read_glue_split
    from vega_toolkit.selection.select import DomainScorer, select_stream

    train = read_glue_split(args.data, glue, "train")
    in_domain = (t for ex in train for t in (ex.text_a, ex.text_b) if t)
    general = None
    if args.selection_general:
        with open(args.selection_general, encoding="utf-8") as f:
            general = [line for line in f if line.strip()]
    # GLUE training sets are small and deduplicated: lmplz's closed-form discounts fail without the fallback
    scorer = DomainScorer.train(os.path.join(work_dir, "lm"), in_domain, general, args.lm_order, discount_fallback=True)
    rows = ((row, [t for t in row[:2] if t]) for row in pool)
    if args.selection_max_ppl:
        kept, stats = select_stream(rows, scorer, max_ppl=args.selection_max_ppl)
    else:
        kept, stats = select_stream(rows, scorer, top_k=args.selection_top_k or len(pool))
    logger.info(f"self-calibration selection: {stats.summary()}")
    return [payload for _, _, payload in kept]


def calibrate(args, m0: str, out_dir: str) -> dict:
    """Steps 1-3: returns the record {pool, selected, agreed, agreement_rate, calibrated, calibrated_path}."""
    from vega_toolkit.models.glue_predictor import GluePredictor

    predictor = GluePredictor.from_checkpoint(m0)
    glue = predictor.glue
    pool = read_external(args.external_data, glue, args.external_format)
    selected = select_in_domain(args, glue, pool, out_dir)
    labelled = args.external_format == "labelled"
    # D*_s for inspection: sentence(s) and the pool's label ("-" for an unlabelled pool)
    atomic_write_text(
        os.path.join(out_dir, "selected.tsv"),
        "".join("\t".join([a] + ([b] if glue.is_pair else []) + [label or "-"]) + "\n" for a, b, label in selected),
    )
    encoded = predictor.encode([(a, b) if glue.is_pair else a for a, b, _ in selected])
    preds = RoundPredictions.from_logits(glue, predictor.logits_for(encoded))
    confident = preds.used(args.confidence_threshold)
    calibrated, agreed = [], 0
    for (a, b, given), pseudo, ok in zip(selected, preds.labels, confident, strict=True):
        if labelled:
            if not agrees(glue, pseudo, given, args.regression_tolerance):
                continue
            agreed += 1
        if ok:
            # a labelled row that agreed keeps its given label (for STS-B the human score, not the prediction)
            calibrated.append((a, b, given if labelled else pseudo))
    path = os.path.join(out_dir, "calibrated.tsv")
    if not calibrated:
        raise RuntimeError(
            f"self-calibration kept no example of the {len(selected)} selected (agreement "
            f"{agreed}); widen the selection or lower --confidence-threshold"
        )
    write_train_layout(path, glue, calibrated)
    record = {
        "pool": len(pool),
        "selected": len(selected),
        "agreed": agreed if labelled else None,
        "agreement_rate": agreed / max(len(selected), 1) if labelled else None,
        "calibrated": len(calibrated),
        "calibrated_path": path,
    }
    logger.info(
        "self-calibration: pool {pool}, selected {selected}, agreement {rate}, calibrated {calibrated}".format(
            rate="n/a (unlabelled pool)"
            if not labelled
            else f"{agreed}/{len(selected)} = {record['agreement_rate']:.1%}",
            **record,
        )
    )
    return record


def drive_self_calibrated(args) -> dict:
    """The round driver of `--task glue_self_calibrated` (vega_toolkit/adaptation/__init__.py `ROUND_DRIVERS`):
    the flags checked, then self-calibration and the transductive loop."""
    check_round_args(args)
    if not args.external_data:
        raise ValueError("--task glue_self_calibrated needs --external-data (the external pool D*)")
    if not os.path.isfile(args.external_data):
        raise FileNotFoundError(f"--external-data {args.external_data}: file not found")
    if args.external_format not in EXTERNAL_FORMATS:
        raise ValueError(f"--external-format {args.external_format!r}: choose one of {', '.join(EXTERNAL_FORMATS)}")
    if args.selection_top_k < 0 or args.selection_max_ppl < 0:
        raise ValueError("--selection-top-k and --selection-max-ppl must be >= 0")
    return run_self_calibrated(args)


def run_self_calibrated(args, state: AdaptationState | None = None) -> dict:
    state = state or AdaptationState(args.save_dir)
    sc = state.data.setdefault("self_calibration", {})
    out_dir = os.path.join(args.save_dir, "self_calibration")
    if "m0" not in sc:
        sc["m0"] = (
            train_round(args, args.finetune_from_model, os.path.join(args.save_dir, "initial"))
            if args.train_initial_model
            else args.finetune_from_model
        )
        state.save()
    if "calibrated_path" not in sc:
        sc.update(calibrate(args, sc["m0"], out_dir))
        state.save()
    if "model" not in sc:
        sc["model"] = train_round(
            args,
            sc["m0"],
            os.path.join(out_dir, "train"),
            [sc["calibrated_path"]],
            extra_only=not args.calibrate_with_train,
        )
        state.save()
    print(
        f"self-calibration: pool {sc['pool']}, selected {sc['selected']}, agreement "
        + ("n/a" if sc["agreement_rate"] is None else f"{sc['agreed']}/{sc['selected']} = {sc['agreement_rate']:.1%}")
        + f", calibrated {sc['calibrated']} -> M0' = {sc['model']}"
    )
    return run_transductive(args, state, m0=sc["model"])
