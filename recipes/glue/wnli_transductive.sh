#!/usr/bin/env bash
# WNLI: transductive fine-tuning (Vega v1 Algorithm 1): round 0 fine-tunes PRETRAINED on train (M0), then each round
# pseudo-labels the unlabelled test set with the current model and fine-tunes it on train + pseudo-labelled test,
# until fewer than CONVERGE_EPS of the pseudo-labels change or MAX_ROUNDS rounds ran.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/wnli_transductive.sh
#
# Runs: vega-train $GLUE_DIR/WNLI --task glue_transductive --glue-task WNLI --finetune-from-model $PRETRAINED/model.pt
#   --train-initial-model --max-rounds $MAX_ROUNDS --converge-eps $CONVERGE_EPS ... (hyperparameters: common.sh), then
# vega-generate on $OUT/WNLI/checkpoint_best.pt (the last round's model) --dev. Rounds, per-round predictions and
# pseudo-labels: $OUT/WNLI/round_K/, log: $OUT/WNLI/adaptation_state.json; rerunning resumes an interrupted loop.
# Optional env: MAX_ROUNDS (tiny 2, paper 3), CONVERGE_EPS (0.01), CONFIDENCE (softmax floor for pseudo-labels, 0).
# Last line: `dev accuracy=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/wnli
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ "$SCALE" == tiny ]]; then MAX_ROUNDS=${MAX_ROUNDS:-2}; else MAX_ROUNDS=${MAX_ROUNDS:-3}; fi
# the later --task wins over common.sh's `--task glue`; glue_transductive takes every `glue` flag
glue_finetune WNLI "$PRETRAINED/model.pt" "${PLAIN_ARGS[@]}" --task glue_transductive --train-initial-model \
  --max-rounds "$MAX_ROUNDS" --converge-eps "${CONVERGE_EPS:-0.01}" --confidence-threshold "${CONFIDENCE:-0}" "$@"
