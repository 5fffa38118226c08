#!/usr/bin/env bash
# QQP: SiFT adversarial fine-tuning (adversarial_ce at its defaults, DeBERTa's values).
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/qqp.sh
#
# Runs: vega-train $GLUE_DIR/QQP --task glue --glue-task QQP --finetune-from-model $PRETRAINED/model.pt --criterion adversarial_ce (SiFT) ... (see common.sh), then
# vega-generate on $OUT/QQP/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/qqp
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune QQP "$PRETRAINED/model.pt" "${SIFT_ARGS[@]}" "$@"
