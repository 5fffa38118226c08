#!/usr/bin/env bash
# The transfer diagnosis of README "Results on real data", run by run (about 90 CPU-minutes on 2 cores):
#
#   VEGA_GLUE_DIR=../shared/glue VEGA_CORPUS_DIR=../shared/corpus bash scripts/diagnose_transfer.sh OUT_DIR
#
# Pretrains vega_tiny with rtd_ternary (the issue's setting: 1,500 updates, batch 32 x 128, lr 3e-3, dropout 0) and
# with masked_lm on the Gutenberg books, continues rtd_ternary to 2,500 updates, pretrains rtd_ternary on the books
# plus the GLUE training text, exports model folders (and random-init folders with the same tokenizers), probes
# their frozen features on SST-2, and fine-tunes SST-2 (and CoLA) from each with [CLS] or mean pooling. Every
# fine-tuning prints `TASK MODEL lr=.. seed=.. FLAGS : dev ...`; the README table is these lines.
set -euo pipefail
OUT=${1:?usage: diagnose_transfer.sh OUT_DIR}
GLUE=${VEGA_GLUE_DIR:?set VEGA_GLUE_DIR}
BOOKS=${VEGA_CORPUS_DIR:?set VEGA_CORPUS_DIR}/gutenberg
mkdir -p "$OUT"
cd "$OUT"
export OMP_NUM_THREADS=1

PRETRAIN=(--arch vega_tiny --tokens-per-sample 128 --batch-size 32 --optimizer adam --adam-betas '(0.9,0.98)'
          --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 --lr 3e-3 --lr-scheduler polynomial_decay
          --warmup-updates 100 --dropout 0 --attention-dropout 0 --cpu --num-workers 0 --save-interval-updates 500
          --keep-interval-updates 3 --no-epoch-checkpoints --seed 1 --log-format simple --log-interval 100
          --validate-interval-updates 500)
RTD=(--task denoising_pretrain --criterion rtd_ternary)

# fine_tune MODEL_DIR TASK LR SEED [extra vega-train flags]: the study's fine-tuning (vega_toolkit/study/plan.py)
fine_tune() {
  local model=$1 task=$2 lr=$3 seed=$4 epochs metric cap=0 extra=()
  shift 4
  case $task in
    SST-2) epochs=1 cap=1000 metric=accuracy extra=(--validate-interval-updates 250) ;;
    CoLA) epochs=3 metric=mcc ;;
    *) echo "fine_tune: $task is not part of the diagnosis" >&2; return 2 ;;
  esac
  local rows updates save="ft/$(basename "$model")-$task-lr$lr-s$seed-$(echo "$*" | tr -dc 'a-z0-9')"
  rows=$(vega-glue info "$task" train_rows --glue-dir "$GLUE")
  updates=$(( (rows + 31) / 32 * epochs ))
  (( cap > 0 && updates > cap )) && updates=$cap
  rm -rf "$save"
  vega-train "$GLUE/$task" --task glue --glue-task "$task" --vocab-dir "$model" --arch vega_tiny \
    --finetune-from-model "$model/model.pt" --classification-head-name head --optimizer adam \
    --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 --lr-scheduler polynomial_decay \
    --end-learning-rate 0 --criterion glue_prediction --max-seq-len 128 --batch-size 32 --lr "$lr" --seed "$seed" \
    --max-epoch "$epochs" --max-update "$updates" --total-num-update "$updates" --warmup-updates $((updates / 10)) \
    --best-checkpoint-metric "$metric" --maximize-best-checkpoint-metric --save-dir "$save/ckpt" \
    --no-epoch-checkpoints --no-last-checkpoints --glue-cache-dir cache --num-workers 0 --log-format simple \
    --log-interval 100 --cpu "${extra[@]}" "$@" > "$save.train.log" 2>&1
  vega-generate "$save/ckpt/checkpoint_best.pt" --glue-dir "$GLUE" --out-dir "$save/pred" --glue-cache-dir cache \
    --dev --cpu > "$save.generate.log" 2>&1
  echo "$task $(basename "$model") lr=$lr seed=$seed $* : $(grep '^dev ' "$save.generate.log" | head -1)"
  rm -rf "$save/ckpt"
}

# 1. data: the books alone, and the books + the GLUE training text (task-adaptive; never dev or test text)
vega-preprocess "$BOOKS" --paragraphs --valid-fraction 0.02 --destdir data-bin/books --vocab-size 8000 --workers 2
vega-glue text "$GLUE" --tasks CoLA,SST-2,MRPC,STS-B,RTE,WNLI --out glue_train.txt
vega-preprocess "$BOOKS" glue_train.txt --paragraphs --valid-fraction 0.02 --destdir data-bin/books+glue \
  --vocab-size 8000 --workers 2

# 2. pretraining (two at a time: one thread each)
vega-train data-bin/books "${PRETRAIN[@]}" "${RTD[@]}" --max-update 1500 --total-num-update 1500 \
  --save-dir pt/rtd > pt_rtd.log 2>&1 &
vega-train data-bin/books "${PRETRAIN[@]}" --task masked_lm --criterion masked_lm --max-update 1500 \
  --total-num-update 1500 --save-dir pt/mlm > pt_mlm.log 2>&1 &
wait
vega-train data-bin/books "${PRETRAIN[@]}" "${RTD[@]}" --max-update 1000 --total-num-update 3000 \
  --restore-file pt/rtd/checkpoint_last.pt --reset-optimizer --reset-lr-scheduler --reset-dataloader \
  --reset-meters --save-dir pt/rtd_continued > pt_rtd_continued.log 2>&1 &
vega-train data-bin/books+glue "${PRETRAIN[@]}" "${RTD[@]}" --max-update 1500 --total-num-update 1500 \
  --save-dir pt/rtd_books+glue > pt_rtd_books+glue.log 2>&1 &
wait

# 3. model folders
vega-convert export pt/rtd/checkpoint_last.pt --data-bin data-bin/books models/rtd1500
vega-convert export pt/mlm/checkpoint_last.pt --data-bin data-bin/books models/mlm1500
vega-convert export pt/rtd_continued/checkpoint_last.pt --data-bin data-bin/books models/rtd2500
vega-convert export pt/rtd_books+glue/checkpoint_last.pt --data-bin data-bin/books+glue models/rtd1500_books+glue
vega-convert export --random-init --arch vega_tiny --seed 1 --data-bin data-bin/books models/random
vega-convert export --random-init --arch vega_tiny --seed 1 --data-bin data-bin/books+glue models/random_books+glue

# 4. frozen-feature probes ([CLS] and mean pooling, every layer)
vega-study probe models/random models/rtd1500 models/mlm1500 models/rtd2500 --glue-dir "$GLUE" --task SST-2

# 5. fine-tuning, two at a time
CLS=(--classification-pooling cls)
MEAN=(--classification-pooling mean)
fine_tune models/random SST-2 3e-4 1 "${CLS[@]}" & fine_tune models/rtd1500 SST-2 3e-4 1 "${CLS[@]}" & wait
fine_tune models/random SST-2 3e-4 1 "${MEAN[@]}" & fine_tune models/rtd1500 SST-2 3e-4 1 "${MEAN[@]}" & wait
fine_tune models/mlm1500 SST-2 3e-4 1 "${CLS[@]}" & fine_tune models/mlm1500 SST-2 3e-4 1 "${MEAN[@]}" & wait
fine_tune models/rtd2500 SST-2 3e-4 1 "${MEAN[@]}" & fine_tune models/rtd2500 SST-2 1e-3 1 "${MEAN[@]}" & wait
fine_tune models/rtd2500 SST-2 3e-4 1 "${MEAN[@]}" --dropout 0 --attention-dropout 0 &
fine_tune models/random CoLA 3e-4 1 "${MEAN[@]}" & wait
fine_tune models/rtd1500 CoLA 3e-4 1 "${MEAN[@]}" &
fine_tune models/random_books+glue SST-2 1e-3 1 "${MEAN[@]}" & wait
fine_tune models/rtd1500_books+glue SST-2 1e-3 1 "${MEAN[@]}"
