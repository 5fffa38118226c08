#!/usr/bin/env bash
# The objective checks of docs/results.md ("Why a pretrained model fine-tuned below random init") (point 7), on the `cpu`
# study's data-bin and models (about 25 minutes on one core):
#
#   VEGA_GLUE_DIR=../shared/glue bash scripts/diagnose_objective.sh results/study-cpu OUT_DIR
#
# 1. frozen-feature probes on SST-2 of the three starts the study compares at equal compute: random init,
#    rtd_ternary and masked_lm (each layer's mean-pooled probe and mean pairwise cosine);
# 2. what the replaced class teaches at this scale: rtd_ternary's pretraining command as the study runs it, with
#    the replacements drawn by corpus frequency (--replace-weighting frequency) instead of uniformly, so that a
#    replaced token is no longer told apart by its rarity. 1,500 of the 10,000 scheduled updates at the study's lr
#    (3e-3) and at 1e-3; printed: the held-out loss and recalls at each validation. The label prior's entropy
#    (85% / 10% / 5%) is 0.747 bits: a model at 0.745 has learned nothing.
# 3. whether shuffled tokens alone can be learnt: the study's rtd_shuffle_only pretraining command (15% shuffled,
#    nothing replaced), which stays at its label prior (0.606 bits) for all 10,000 updates at the study's lr 3e-3;
#    1,500 updates at 1e-3 and at 3e-4, printed the same way.
set -euo pipefail
STUDY=$(cd "${1:?usage: diagnose_objective.sh STUDY_DIR OUT_DIR}" && pwd)
OUT=${2:?usage: diagnose_objective.sh STUDY_DIR OUT_DIR}
GLUE=${VEGA_GLUE_DIR:?set VEGA_GLUE_DIR}
mkdir -p "$OUT"
cd "$OUT"
export OMP_NUM_THREADS=1

data_bin=$(ls -d "$STUDY"/data-bin-* | head -1)
vega-convert export --random-init --arch vega_tiny --seed 1 --data-bin "$data_bin" models/random > /dev/null
# 1. probes
vega-study probe models/random "$(ls -d "$STUDY"/models/rtd_ternary-* | tail -1)" \
  "$(ls -d "$STUDY"/models/masked_lm-* | tail -1)" --glue-dir "$GLUE" --task SST-2

# 2. frequency-weighted replacements: the study's own command (vega-study plan), later flags overriding
pretrain=$(vega-study plan --scale cpu --out "$STUDY" --glue-dir "$GLUE" --corpus "${VEGA_CORPUS_DIR:-corpus}/gutenberg" \
  | grep -m1 '^vega-train .*--criterion rtd_ternary')
for lr in 3e-3 1e-3; do
  rm -rf "freq-lr$lr"
  eval "$pretrain" --replace-weighting frequency --lr "$lr" --max-update 1500 --validate-interval-updates 500 \
    --save-dir "freq-lr$lr" --tensorboard-logdir "freq-lr$lr/tb" > "freq-lr$lr.log" 2>&1
  echo "rtd_ternary --replace-weighting frequency --lr $lr (held-out):"
  grep "valid on 'valid'" "freq-lr$lr.log" | sed -E 's/.*\| loss ([0-9.]+) .*\| shuf_recall ([0-9.e-]+) \| repl_recall ([0-9.e-]+) .*\| num_updates ([0-9]+).*/update \4: loss \1, shuf_recall \2, repl_recall \3/'
done

# 3. shuffled tokens alone, at lower learning rates
pretrain=$(vega-study plan --scale cpu --arms rtd_shuffle_only --out "$STUDY" --glue-dir "$GLUE" \
  --corpus "${VEGA_CORPUS_DIR:-corpus}/gutenberg" | grep -m1 '^vega-train .*--shuffle-prob 0.15 --replace-prob 0')
for lr in 1e-3 3e-4; do
  rm -rf "shuf-lr$lr"
  eval "$pretrain" --lr "$lr" --max-update 1500 --validate-interval-updates 500 \
    --save-dir "shuf-lr$lr" --tensorboard-logdir "shuf-lr$lr/tb" > "shuf-lr$lr.log" 2>&1
  echo "rtd_shuffle_only --lr $lr (held-out):"
  grep "valid on 'valid'" "shuf-lr$lr.log" | sed -E 's/.*\| loss ([0-9.]+) .*\| shuf_recall ([0-9.e-]+) .*\| num_updates ([0-9]+).*/update \3: loss \1, shuf_recall \2/'
done
