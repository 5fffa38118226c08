#!/usr/bin/env bash
# SST-2: vanilla fine-tuning (no SiFT), as in the Vega v1 plan.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/sst2.sh
#
# Runs: vega-train $GLUE_DIR/SST-2 --task glue --glue-task SST-2 --finetune-from-model $PRETRAINED/model.pt --criterion glue_prediction ... (see common.sh), then
# vega-generate on $OUT/SST-2/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/sst2 (SCALE=tiny: glue/sst2_tiny)
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune SST-2 "$PRETRAINED/model.pt" "${PLAIN_ARGS[@]}" "$@"
