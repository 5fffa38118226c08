#!/usr/bin/env bash
# CoLA: KenLM self-calibrated fine-tuning (Vega v1 Algorithm 2): M0 = PRETRAINED fine-tuned on CoLA train; a 4-gram
# KenLM on CoLA's training text selects the TOP_K most CoLA-like rows of the external pool EXTERNAL; M0 relabels
# them; a labelled pool keeps only the rows where M0 agrees with the given label; M0 is fine-tuned on that calibrated
# data (M0'), then the transductive loop (Algorithm 1) runs from M0'.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny EXTERNAL=pool.tsv bash recipes/glue/cola_selfcal.sh
#   EXTERNAL=sentences.txt EXTERNAL_FORMAT=text ...      # unlabelled, one sentence per line
#
# Runs: vega-train $GLUE_DIR/CoLA --task glue_self_calibrated --glue-task CoLA --finetune-from-model
#   $PRETRAINED/model.pt --train-initial-model --external-data $EXTERNAL --selection-top-k $TOP_K ... (hyperparameters:
# common.sh), then vega-generate on $OUT/CoLA/checkpoint_best.pt --dev. Steps and logs: $OUT/CoLA/self_calibration/,
# $OUT/CoLA/round_K/, $OUT/CoLA/adaptation_state.json; rerunning resumes.
# Env: EXTERNAL (the pool D*; default: CoLA's own train.tsv, a smoke test only), EXTERNAL_FORMAT (labelled = CoLA's
# train layout | unlabelled = its test layout | text), TOP_K (tiny 1000, paper 20000), GENERAL (general-domain text:
# Moore-Lewis selection), MAX_ROUNDS (tiny 1, paper 3), CONVERGE_EPS (0.01), CONFIDENCE (0).
# Last line: `dev mcc=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/cola
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -z "${EXTERNAL:-}" ]]; then
  EXTERNAL=$GLUE_DIR/CoLA/train.tsv
  echo "cola_selfcal.sh: EXTERNAL not set; using $EXTERNAL as the external pool (a smoke test, not the method)" >&2
fi
if [[ "$SCALE" == tiny ]]; then
  TOP_K=${TOP_K:-1000} MAX_ROUNDS=${MAX_ROUNDS:-1}
else
  TOP_K=${TOP_K:-20000} MAX_ROUNDS=${MAX_ROUNDS:-3}
fi
general=()
if [[ -n "${GENERAL:-}" ]]; then general=(--selection-general "$GENERAL"); fi
# the later --task wins over common.sh's `--task glue`; glue_self_calibrated takes every `glue` flag
glue_finetune CoLA "$PRETRAINED/model.pt" "${PLAIN_ARGS[@]}" --task glue_self_calibrated --train-initial-model \
  --external-data "$EXTERNAL" --external-format "${EXTERNAL_FORMAT:-labelled}" --selection-top-k "$TOP_K" \
  "${general[@]}" --max-rounds "$MAX_ROUNDS" --converge-eps "${CONVERGE_EPS:-0.01}" \
  --confidence-threshold "${CONFIDENCE:-0}" "$@"
