#!/usr/bin/env bash
# The fine-tuning checks of docs/results.md ("Why a pretrained model fine-tuned below random init") on the finished `cpu`
# study's models (no pretraining; about an hour on 2 cores):
#
#   VEGA_GLUE_DIR=../shared/glue bash scripts/diagnose_finetune.sh results/study-cpu OUT_DIR
#
# 1. frozen-feature probes of both starts on SST-2, layer by layer (where the rtd_ternary features collapse);
# 2. the fine-tuning budget: where the grid's two arms tie near the tasks' floors (MRPC, RTE, SST-2), do they
#    separate when fine-tuning runs 3-4x longer? Each arm at lr 1e-3, seed 1: MRPC 15 epochs (the grid: 5), RTE 20
#    epochs (the grid: 6), SST-2 2 epochs = 4,210 updates (the grid: 1,000);
# 3. the collapsed top layer: the rtd_ternary model with its top layer re-initialised (Zhang et al. 2021,
#    "Revisiting few-sample BERT fine-tuning"), fine-tuned on SST-2, STS-B and CoLA at lr 1e-3, seed 1.
# Each fine-tuning prints `TASK MODEL lr=.. seed=.. epochs=.. : dev ...`.
set -euo pipefail
STUDY=$(cd "${1:?usage: diagnose_finetune.sh STUDY_DIR OUT_DIR}" && pwd)
OUT=${2:?usage: diagnose_finetune.sh STUDY_DIR OUT_DIR}
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

# 1. probes
vega-study probe models/random "$pretrained" --glue-dir "$GLUE" --task SST-2

# 2. the fine-tuning budget, one process per start
for model in models/random "$pretrained"; do
  ( EPOCHS=15 fine_tune "$model" MRPC 1e-3 1 "${MEAN[@]}"
    EPOCHS=20 fine_tune "$model" RTE 1e-3 1 "${MEAN[@]}"
    EPOCHS=2 CAP=0 fine_tune "$model" SST-2 1e-3 1 "${MEAN[@]}" --validate-interval-updates 500 ) &
done
wait

# 3. the top layer re-initialised: its weights replaced by those of the seed-1 random init
mkdir -p models/rtd_top_reinit
cp "$pretrained"/dict.txt "$pretrained"/spm.model models/rtd_top_reinit/
python - "$pretrained/model.pt" models/random/model.pt models/rtd_top_reinit/model.pt <<'PY'
import sys
import torch
pretrained, fresh = (torch.load(p, weights_only=False) for p in sys.argv[1:3])
top = max(int(k.split(".")[2]) for k in pretrained["model"] if k.startswith("encoder.layers."))
for k in pretrained["model"]:
    if k.startswith(f"encoder.layers.{top}."):
        pretrained["model"][k] = fresh["model"][k].clone()
torch.save(pretrained, sys.argv[3])
PY
fine_tune models/rtd_top_reinit SST-2 1e-3 1 "${MEAN[@]}" & fine_tune models/rtd_top_reinit STS-B 1e-3 1 "${MEAN[@]}" &
wait
fine_tune models/rtd_top_reinit CoLA 1e-3 1 "${MEAN[@]}"
