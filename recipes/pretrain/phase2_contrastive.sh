#!/usr/bin/env bash
# Vega v1 phase 2: ternary RTD + SimCSE-style contrastive loss ([CLS] of original vs corrupted, tau 0.05),
# starting from phase-1 weights with a fresh optimizer, lr schedule and update counter.
#
#   DATA_BIN=data-bin/gutenberg SAVE_DIR=ckpt/phase2 PHASE1_CKPT=ckpt/phase1/checkpoint_last.pt \
#     bash recipes/pretrain/phase2_contrastive.sh                                                      # SCALE=tiny
#   ... SCALE=paper DRY_RUN=1 bash recipes/pretrain/phase2_contrastive.sh                                # print only
#
# SCALE=tiny (CPU, minutes) runs exactly:
#   vega-train $DATA_BIN --task denoising_pretrain --criterion rtd_contrastive --temperature 0.05
#     --contrastive-weight 1.0 --contrastive-pooling cls --finetune-from-model $PHASE1_CKPT --save-dir $SAVE_DIR
#     --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0
#     --lr-scheduler polynomial_decay --log-format simple --no-epoch-checkpoints
#     --arch vega_tiny --tokens-per-sample 128 --batch-size 32 --lr 5e-4 --warmup-updates 20
#     --max-update 200 --total-num-update 200 --log-interval 25 --validate-interval-updates 100 --cpu --num-workers 0
# --finetune-from-model (not --restore-file + --reset-*) loads only the weights, and only while SAVE_DIR has no
# checkpoint_last.pt, so a requeued SLURM job resumes phase 2 instead of restarting it (fairseq/checkpoint_utils.py `load_checkpoint`).
# SCALE=paper: vega_v1_1_3b, 100K updates, bf16, same cluster math as phase 1 (see phase1_rtd.sh; assumptions).
# Env: DATA_BIN, SAVE_DIR, PHASE1_CKPT (required); SCALE, DRY_RUN, MAX_UPDATE, VEGA_TRAIN, NODES, GPUS_PER_NODE,
# BATCH_PER_GPU, GLOBAL_BATCH, LR, CONTRASTIVE_WEIGHT. Extra arguments are appended to the command.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/pretrain/phase2_tiny and pretrain/phase2_paper
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
: "${DATA_BIN:?set DATA_BIN to a vega-preprocess data-bin}"
: "${SAVE_DIR:?set SAVE_DIR to the checkpoint directory}"
: "${PHASE1_CKPT:?set PHASE1_CKPT to the phase-1 checkpoint (e.g. ckpt/phase1/checkpoint_last.pt)}"
SCALE=${SCALE:-tiny}
DRY_RUN=${DRY_RUN:-0}
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/common.sh"

set_scale_args phase2_contrastive.sh 200 5e-4 20 100000 5e-5 5000

cmd=("${VEGA_TRAIN:-vega-train}" "$DATA_BIN" --task denoising_pretrain --criterion rtd_contrastive
     --temperature 0.05 --contrastive-weight "${CONTRASTIVE_WEIGHT:-1.0}" --contrastive-pooling cls
     --finetune-from-model "$PHASE1_CKPT" --save-dir "$SAVE_DIR" "${COMMON_ARGS[@]}" "${scale_args[@]}" "$@")
run_or_print "${cmd[@]}"
