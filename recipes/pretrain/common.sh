# Shared by phase1_rtd.sh and phase2_contrastive.sh (sourced, not run): optimizer flags, paper cluster math, dry run.

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
