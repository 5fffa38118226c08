#!/usr/bin/env bash
# MNLI: SiFT adversarial fine-tuning; validates on dev_matched (selection) and dev_mismatched.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/mnli.sh
#
# Runs: vega-train $GLUE_DIR/MNLI --task glue --glue-task MNLI --finetune-from-model $PRETRAINED/model.pt --criterion adversarial_ce (SiFT) ... (see common.sh), then
# vega-generate on $OUT/MNLI/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/mnli
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune MNLI "$PRETRAINED/model.pt" "${SIFT_ARGS[@]}" "$@"
