#!/usr/bin/env bash
# ELECTRA-style replaced token detection with a generator and DeBERTa-v3's gradient-disentangled embedding sharing.
#
#   DATA_BIN=data-bin/gutenberg SAVE_DIR=ckpt/electra bash recipes/pretrain/rtd_electra.sh             # SCALE=tiny
#   DATA_BIN=... SAVE_DIR=... SCALE=paper DRY_RUN=1 bash recipes/pretrain/rtd_electra.sh               # print only
#   vega-convert export $SAVE_DIR/checkpoint_last.pt --data-bin $DATA_BIN models/electra   # discriminator alone
#
# SCALE=tiny (CPU, minutes) runs exactly:
#   vega-train $DATA_BIN --task denoising_pretrain --criterion rtd_electra --embedding-sharing gdes
#     --rtd-lambda 50 --save-dir $SAVE_DIR --optimizer adam
#     --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 --lr-scheduler polynomial_decay
#     --log-format simple --no-epoch-checkpoints --arch vega_tiny --tokens-per-sample 128 --batch-size 32 --lr 2e-3
#     --warmup-updates 30 --max-update 300 --total-num-update 300 --log-interval 25 --validate-interval-updates 100
#     --cpu --num-workers 0
# Both scales: rtd_electra's defaults (RTDElectraConfig, with ReplacementGeneratorConfig, the one place they are
# written): 15% of the tokens masked, the generator half as deep as the discriminator at its full width, GDES.
# These are DeBERTa-v3's settings (He et al. 2021; microsoft/DeBERTa
# experiments/language_model/rtd.sh and rtd_large.json: 12-layer generator of width 1024 for the 24-layer
# v3-large). The tiny scale steps generator and discriminator jointly with
# ELECTRA's lambda 50 (google-research/electra configure_pretraining.py disc_weight); SCALE=paper sets DeBERTa-v3's
# rtd_lambda 10, lr 1e-4, warmup 10k, 1M updates of 512 tokens (rtd.sh), on the cluster, model (vega_v1_1_3b: a
# 24-layer generator) and global batch of recipes/pretrain/phase1_rtd.sh, so that the two objectives compare at
# the same batch (DeBERTa-v3's rtd.sh uses 256 sequences: GLOBAL_BATCH=256 with NODES/BATCH_PER_GPU to match).
# Env: DATA_BIN, SAVE_DIR (required); SCALE, DRY_RUN, MAX_UPDATE, VEGA_TRAIN, SHARING (gdes|es|none), RTD_LAMBDA;
# NODES, GPUS_PER_NODE, BATCH_PER_GPU, GLOBAL_BATCH, LR (paper). Extra arguments are appended to the command.
# As a Hydra config (vega-hydra-train): vega_toolkit/conf/pretrain/rtd_electra_tiny and pretrain/rtd_electra_paper
# (equal to this recipe field by field: tests/test_hydra_configs.py).
set -euo pipefail
: "${DATA_BIN:?set DATA_BIN to a vega-preprocess data-bin}"
: "${SAVE_DIR:?set SAVE_DIR to the checkpoint directory}"
SCALE=${SCALE:-tiny}
DRY_RUN=${DRY_RUN:-0}
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/common.sh"

set_scale_args rtd_electra.sh 300 2e-3 30 1000000 1e-4 10000
# lambda: ELECTRA's 50 for the joint step of the tiny scale, DeBERTa-v3's 10 at paper scale (header)
if [[ $SCALE == paper ]]; then RTD_LAMBDA=${RTD_LAMBDA:-10}; else RTD_LAMBDA=${RTD_LAMBDA:-50}; fi

cmd=("${VEGA_TRAIN:-vega-train}" "$DATA_BIN" --task denoising_pretrain --criterion rtd_electra
     --embedding-sharing "${SHARING:-gdes}" --rtd-lambda "$RTD_LAMBDA" --save-dir "$SAVE_DIR" "${COMMON_ARGS[@]}" "${scale_args[@]}" "$@")
run_or_print "${cmd[@]}"
