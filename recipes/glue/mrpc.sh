#!/usr/bin/env bash
# MRPC: starts from the MNLI-fine-tuned model (run mnli.sh first; encoder loaded, MRPC head fresh), as DeBERTa and RoBERTa.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/mrpc.sh
#
# Runs: vega-train $GLUE_DIR/MRPC --task glue --glue-task MRPC --finetune-from-model $OUT/MNLI/checkpoint_best.pt --criterion glue_prediction ... (see common.sh), then
# vega-generate on $OUT/MRPC/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/mrpc
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune_from_mnli MRPC "${PLAIN_ARGS[@]}" "$@"
