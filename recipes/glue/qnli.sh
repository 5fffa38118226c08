#!/usr/bin/env bash
# QNLI: SiFT adversarial fine-tuning (adversarial_ce at its defaults, DeBERTa's values).
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/qnli.sh
#
# Runs: vega-train $GLUE_DIR/QNLI --task glue --glue-task QNLI --finetune-from-model $PRETRAINED/model.pt --criterion adversarial_ce (SiFT) ... (see common.sh), then
# vega-generate on $OUT/QNLI/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/qnli
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune QNLI "$PRETRAINED/model.pt" "${SIFT_ARGS[@]}" "$@"
