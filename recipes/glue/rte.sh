#!/usr/bin/env bash
# RTE: starts from the MNLI-fine-tuned model (run mnli.sh first; encoder loaded, RTE head fresh), as DeBERTa and RoBERTa.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/rte.sh
#
# Runs: vega-train $GLUE_DIR/RTE --task glue --glue-task RTE --finetune-from-model $OUT/MNLI/checkpoint_best.pt --criterion glue_prediction ... (see common.sh), then
# vega-generate on $OUT/RTE/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/glue/rte
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
glue_finetune_from_mnli RTE "${PLAIN_ARGS[@]}" "$@"
