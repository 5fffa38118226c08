# Shared by the pretraining recipes (sourced, not run): optimizer flags, paper cluster math, scales, dry run.

# AdamW: fairseq's adam applies weight decay decoupled from the gradient (Loshchilov & Hutter); betas/eps as
# RoBERTa/DeBERTa pretraining.
COMMON_ARGS=(--optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0
             --lr-scheduler polynomial_decay --log-format simple --no-epoch-checkpoints)

# Global batch = NODES * GPUS_PER_NODE * BATCH_PER_GPU * UPDATE_FREQ sequences of 512 tokens.
paper_update_freq() {
  NODES=${NODES:-40}            # the paper's cluster: 40 DGX nodes x 8 A100 (phase1_rtd.sh header)
  GPUS_PER_NODE=${GPUS_PER_NODE:-8}
  BATCH_PER_GPU=${BATCH_PER_GPU:-8}
  GLOBAL_BATCH=${GLOBAL_BATCH:-2560}  # an assumption (not in the paper): 320 GPUs x 8 sequences, update_freq 1
  WORLD=$((NODES * GPUS_PER_NODE))
  local per_step=$((WORLD * BATCH_PER_GPU))
  if (( GLOBAL_BATCH % per_step != 0 )); then
    echo "GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of NODES*GPUS_PER_NODE*BATCH_PER_GPU=$per_step" >&2
    exit 2
  fi
  UPDATE_FREQ=$((GLOBAL_BATCH / per_step))
}

# scale_args and MAX_UPDATE of $SCALE from one recipe's schedule (tiny: a CPU run of minutes; paper: the cluster of
# paper_update_freq, bf16 with activation checkpointing):
#   set_scale_args RECIPE TINY_UPDATES TINY_LR TINY_WARMUP PAPER_UPDATES PAPER_LR PAPER_WARMUP
set_scale_args() {
  case "$SCALE" in
    tiny)
      MAX_UPDATE=${MAX_UPDATE:-$2}
      scale_args=(--arch vega_tiny --tokens-per-sample 128 --batch-size 32 --lr "${LR:-$3}" --warmup-updates "$4"
                  --max-update "$MAX_UPDATE" --total-num-update "$MAX_UPDATE" --log-interval 25
                  --validate-interval-updates 100 --cpu --num-workers 0) ;;
    paper)
      MAX_UPDATE=${MAX_UPDATE:-$5}
      paper_update_freq
      scale_args=(--arch vega_v1_1_3b --tokens-per-sample 512 --batch-size "$BATCH_PER_GPU" --update-freq "$UPDATE_FREQ"
                  --distributed-world-size "$WORLD" --lr "${LR:-$6}" --warmup-updates "$7"
                  --max-update "$MAX_UPDATE" --total-num-update "$MAX_UPDATE" --bf16 --checkpoint-activations
                  --find-unused-parameters --log-interval 100 --save-interval-updates 5000 --keep-interval-updates 5
                  --validate-interval-updates 5000 --num-workers 4) ;;
    *) echo "$1: SCALE must be tiny or paper, got '$SCALE'" >&2; exit 2 ;;
  esac
}

# Print the command (DRY_RUN=1, or SCALE=paper on a machine without GPUs) or run it.
run_or_print() {
  if [[ "$DRY_RUN" == 1 ]] || { [[ "$SCALE" == paper ]] && ! command -v nvidia-smi >/dev/null 2>&1; }; then
    printf '%q ' "$@"
    echo
    return 0
  fi
  exec "$@"
}

# fairseq reads --max-update 0 as "no limit": a cap of 0 updates is refused rather than trained without end
if [[ -n "${MAX_UPDATE:-}" ]] && ! [[ "$MAX_UPDATE" =~ ^[1-9][0-9]*$ ]]; then
  echo "pretrain recipes: MAX_UPDATE must be a positive whole number, not '$MAX_UPDATE'" >&2
  exit 2
fi
