#!/usr/bin/env bash
# Vega v1 phase 1: ternary replaced-token detection (shuffle 10% / replace 5%, labels original/shuffled/replaced;
# the rates are denoising_pretrain's defaults, DenoisingPretrainConfig in vega_toolkit/tasks/denoising_pretrain.py).
#
#   DATA_BIN=data-bin/gutenberg SAVE_DIR=ckpt/phase1 bash recipes/pretrain/phase1_rtd.sh            # SCALE=tiny
#   DATA_BIN=... SAVE_DIR=... SCALE=paper DRY_RUN=1 bash recipes/pretrain/phase1_rtd.sh              # print only
#
# SCALE=tiny (CPU, minutes) runs exactly:
#   vega-train $DATA_BIN --task denoising_pretrain --criterion rtd_ternary
#     --save-dir $SAVE_DIR --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01
#     --clip-norm 1.0 --lr-scheduler polynomial_decay --log-format simple --no-epoch-checkpoints
#     --arch vega_tiny --tokens-per-sample 128 --batch-size 32 --lr 2e-3 --warmup-updates 30
#     --max-update 300 --total-num-update 300 --log-interval 25 --validate-interval-updates 100 --cpu --num-workers 0
# SCALE=paper: vega_v1_1_3b (48 x 1536), 1M updates, AdamW (fairseq adam = decoupled weight decay), bf16, global
# batch GLOBAL_BATCH sequences of 512 tokens reached with --update-freq = GLOBAL_BATCH / (NODES*GPUS_PER_NODE*
# BATCH_PER_GPU). The cluster is the paper's: Vega v1 pretrained on 40 DGX nodes x 8 A100 GPUs, about 20 days
# for 1M steps (Zhong et al. 2022, arXiv 2302.09268, pretraining setup), so NODES=40 GPUS_PER_NODE=8 by default. The paper does not give the batch or
# the learning rate: global batch 2560 x 512 tokens (320 GPUs x 8, update_freq 1), lr 1e-4 and warmup 10k (as
# DeBERTa-v3's rtd.sh) are assumptions to override. On a machine without GPUs SCALE=paper only prints the command.
# Env: DATA_BIN, SAVE_DIR (required); SCALE, DRY_RUN, MAX_UPDATE, VEGA_TRAIN; NODES, GPUS_PER_NODE, BATCH_PER_GPU,
# GLOBAL_BATCH, LR (paper). Extra arguments are appended to the command (e.g. --launcher submitit --slurm-nodes 40).
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/pretrain/phase1_tiny and pretrain/phase1_paper
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
: "${DATA_BIN:?set DATA_BIN to a vega-preprocess data-bin}"
: "${SAVE_DIR:?set SAVE_DIR to the checkpoint directory}"
SCALE=${SCALE:-tiny}
DRY_RUN=${DRY_RUN:-0}
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/common.sh"

set_scale_args phase1_rtd.sh 300 2e-3 30 1000000 1e-4 10000

cmd=("${VEGA_TRAIN:-vega-train}" "$DATA_BIN" --task denoising_pretrain --criterion rtd_ternary
     --save-dir "$SAVE_DIR" "${COMMON_ARGS[@]}" "${scale_args[@]}" "$@")
run_or_print "${cmd[@]}"
