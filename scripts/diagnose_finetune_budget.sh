#!/usr/bin/env bash
# The fine-tuning budget check of README "Why a pretrained model fine-tuned below random init" (about 45 minutes on
# 2 cores): do MRPC, RTE and SST-2, where the finished `cpu` grid's two arms tie near the tasks' floors, separate
# when fine-tuning runs 3-4x longer? Uses the cpu study's models (no pretraining):
#
#   VEGA_GLUE_DIR=../shared/glue bash scripts/diagnose_finetune_budget.sh results/study-cpu OUT_DIR
#
# Each arm at lr 1e-3, seed 1: MRPC 15 epochs (the grid: 5), RTE 20 epochs (the grid: 6), SST-2 2 epochs = 4,210
# updates (the grid: 1,000). Prints `TASK MODEL lr=.. seed=.. epochs=.. : dev ...` per run.
set -euo pipefail
STUDY=$(cd "${1:?usage: diagnose_finetune_budget.sh STUDY_DIR OUT_DIR}" && pwd)
OUT=${2:?usage: diagnose_finetune_budget.sh STUDY_DIR OUT_DIR}
GLUE=${VEGA_GLUE_DIR:?set VEGA_GLUE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
cd "$OUT"
export OMP_NUM_THREADS=1
source "$HERE/lib/diagnosis.sh"  # fine_tune

pretrained=$(ls -d "$STUDY"/models/rtd_ternary-* | tail -1)
data_bin=$(ls -d "$STUDY"/data-bin-* | head -1)
vega-convert export --random-init --arch vega_tiny --seed 1 --data-bin "$data_bin" models/random > /dev/null
MEAN=(--classification-pooling mean)
for model in models/random "$pretrained"; do
  ( EPOCHS=15 fine_tune "$model" MRPC 1e-3 1 "${MEAN[@]}"
    EPOCHS=20 fine_tune "$model" RTE 1e-3 1 "${MEAN[@]}"
    EPOCHS=2 CAP=0 fine_tune "$model" SST-2 1e-3 1 "${MEAN[@]}" --validate-interval-updates 500 ) &
done
wait
