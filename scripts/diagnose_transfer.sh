#!/usr/bin/env bash
# The transfer diagnosis of docs/results.md, run by run (about 90 CPU-minutes on 2 cores):
#
#   VEGA_GLUE_DIR=../shared/glue VEGA_CORPUS_DIR=../shared/corpus bash scripts/diagnose_transfer.sh OUT_DIR
#
# Pretrains vega_tiny with rtd_ternary (the first cpu study grid's setting: 1,500 updates, batch 32 x 128, lr 3e-3,
# dropout 0) and with masked_lm on the Gutenberg books, continues rtd_ternary to 2,500 updates, pretrains rtd_ternary
# on the books plus the GLUE training text, exports model folders (and random-init folders with the same tokenizers),
# probes their frozen features on SST-2, and fine-tunes SST-2 (and CoLA) from each with [CLS] or mean pooling. Every
# fine-tuning prints `TASK MODEL lr=.. seed=.. FLAGS : dev ...`; the results page's table is these lines.
set -euo pipefail
OUT=${1:?usage: diagnose_transfer.sh OUT_DIR}
GLUE=${VEGA_GLUE_DIR:?set VEGA_GLUE_DIR}
BOOKS=${VEGA_CORPUS_DIR:?set VEGA_CORPUS_DIR}/gutenberg
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
cd "$OUT"
export OMP_NUM_THREADS=1

PRETRAIN=(--arch vega_tiny --tokens-per-sample 128 --batch-size 32 --optimizer adam --adam-betas '(0.9,0.98)'
          --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 --lr 3e-3 --lr-scheduler polynomial_decay
          --warmup-updates 100 --dropout 0 --attention-dropout 0 --cpu --num-workers 0 --save-interval-updates 500
          --keep-interval-updates 3 --no-epoch-checkpoints --seed 1 --log-format simple --log-interval 100
          --validate-interval-updates 500)
RTD=(--task denoising_pretrain --criterion rtd_ternary)

source "$HERE/lib/diagnosis.sh"  # fine_tune

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
