#!/usr/bin/env bash
# STS-B: starts from the MNLI-fine-tuned model (run mnli.sh first; encoder loaded, STS-B head fresh), as DeBERTa and RoBERTa.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/stsb.sh
#
# Runs: vega-train $GLUE_DIR/STS-B --task glue --glue-task STS-B --finetune-from-model $OUT/MNLI/checkpoint_best.pt --criterion glue_prediction ... (see common.sh), then
# vega-generate on $OUT/STS-B/checkpoint_best.pt --dev. Last line: `dev <metric>=<value>`. Extra args go to vega-train.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MNLI_CHECKPOINT=${MNLI_CHECKPOINT:-$OUT/MNLI/checkpoint_best.pt}
if [[ ! -f "$MNLI_CHECKPOINT" && "$DRY_RUN" != 1 ]]; then
  echo "stsb.sh: $MNLI_CHECKPOINT not found: run recipes/glue/mnli.sh first (or set MNLI_CHECKPOINT)" >&2
  exit 2
fi
glue_finetune STS-B "$MNLI_CHECKPOINT" "${PLAIN_ARGS[@]}" "$@"
