# Shared by recipes/glue/*.sh (sourced, not run): the environment contract, per-task hyperparameters, one run.
#
# Contract of every GLUE recipe (also wnli_transductive.sh and cola_selfcal.sh):
#   env   GLUE_DIR (glue_data/), PRETRAINED (model folder: model.pt dict.txt spm.model), OUT, SCALE=tiny|paper
#   out   $OUT/<TASK>/checkpoint_best.pt (TASK spelled as GLUE: SST-2, STS-B, ...), $OUT/<TASK>/predictions/
#   last  line printed: `dev <metric>=<value>` (the task's checkpoint-selection metric on its dev set)
# Optional env: LAUNCHER=local|submitit (submitit: each training is a SLURM job named vega-glue-<TASK>, printed as
#   `Submitted job <id>`; AFTER_JOB=<id> makes it wait for that job with afterok; SLURM_ARGS adds --slurm-* flags),
#   DRY_RUN=1 (print the commands only; also automatic for SCALE=paper without nvidia-smi),
#   MAX_UPDATE (tiny: cap on updates per task, default 300), VEGA_TRAIN / VEGA_GENERATE / VEGA_GLUE (executables),
#   GLUE_DEV_EVAL=0 (skip the per-task vega-generate; all.sh scores every task once at the end instead),
#   GENERATE_ARGS (extra vega-generate flags, e.g. --allow-partial for test files that are not the official ones).
set -euo pipefail
: "${GLUE_DIR:?set GLUE_DIR to the glue_data folder}"
: "${PRETRAINED:?set PRETRAINED to a model folder (model.pt, dict.txt, spm.model)}"
: "${OUT:?set OUT to the output folder}"
SCALE=${SCALE:-tiny}
DRY_RUN=${DRY_RUN:-0}
VEGA_TRAIN=${VEGA_TRAIN:-vega-train}
VEGA_GENERATE=${VEGA_GENERATE:-vega-generate}
VEGA_GLUE=${VEGA_GLUE:-vega-glue}
LAUNCHER=${LAUNCHER:-local}
AFTER_JOB=${AFTER_JOB:-}
read -r -a SLURM_EXTRA <<< "${SLURM_ARGS:-}"
read -r -a GENERATE_EXTRA <<< "${GENERATE_ARGS:-}"
case "$LAUNCHER" in
  local|submitit) ;;
  *) echo "glue recipes: LAUNCHER must be local or submitit, not '$LAUNCHER'" >&2; exit 2 ;;
esac
case "$SCALE" in
  tiny|paper) ;;
  *) echo "glue recipes: SCALE must be tiny or paper (lower case), not '$SCALE'" >&2; exit 2 ;;
esac
# fairseq reads --max-update 0 as "no limit": a cap of 0 updates is refused rather than trained without end
if [[ -n "${MAX_UPDATE:-}" ]] && ! [[ "$MAX_UPDATE" =~ ^[1-9][0-9]*$ ]]; then
  echo "glue recipes: MAX_UPDATE must be a positive whole number, not '$MAX_UPDATE'" >&2; exit 2
fi
if [[ "$SCALE" == paper && "$LAUNCHER" == local ]] && ! command -v nvidia-smi >/dev/null 2>&1; then DRY_RUN=1; fi

# glue_hparams TASK: EPOCHS LR BSZ WARMUP CLS_DROP MAX_LEN.
# paper = DeBERTa-V2-XXLarge (1.5B, the size class of Vega v1's 1.3B), MS@experiments/glue/<task>.sh, as tabulated in
# microsoft/DeBERTa experiments/glue/<task>.sh; MNLI with SiFT trains 6 epochs instead of 3 (mnli.sh xxlarge-v2-sift).
glue_hparams() {
  if [[ "$SCALE" == tiny ]]; then
    # seconds on fixtures, a few CPU minutes on real data: one epoch capped at MAX_UPDATE updates
    EPOCHS=1 LR=${LR:-5e-4} BSZ=16 WARMUP=10 CLS_DROP=0.1 MAX_LEN=128
    return
  fi
  case "$1" in
    MNLI)  EPOCHS=6  LR=3e-6   BSZ=64 WARMUP=1000 CLS_DROP=0.3 MAX_LEN=256 ;;
    QQP)   EPOCHS=10 LR=3e-6   BSZ=64 WARMUP=1000 CLS_DROP=0.2 MAX_LEN=320 ;;
    QNLI)  EPOCHS=4  LR=3e-6   BSZ=64 WARMUP=500  CLS_DROP=0.2 MAX_LEN=512 ;;
    SST-2) EPOCHS=4  LR=3e-6   BSZ=32 WARMUP=500  CLS_DROP=0.2 MAX_LEN=128 ;;
    CoLA)  EPOCHS=10 LR=2.5e-6 BSZ=32 WARMUP=100  CLS_DROP=0.2 MAX_LEN=64 ;;
    MRPC)  EPOCHS=6  LR=2e-6   BSZ=32 WARMUP=50   CLS_DROP=0.2 MAX_LEN=128 ;;
    RTE)   EPOCHS=6  LR=3e-6   BSZ=48 WARMUP=50   CLS_DROP=0.2 MAX_LEN=320 ;;
    STS-B) EPOCHS=4  LR=3e-6   BSZ=32 WARMUP=100  CLS_DROP=0.2 MAX_LEN=128 ;;
    # DeBERTa publishes no WNLI setting; RTE's (the same sentence-pair format) is the assumption here
    WNLI)  EPOCHS=6  LR=3e-6   BSZ=32 WARMUP=50   CLS_DROP=0.2 MAX_LEN=128 ;;
    *) echo "glue recipes: no hyperparameters for task '$1'" >&2; exit 2 ;;
  esac
}

# DeBERTa's optimiser (microsoft/DeBERTa DeBERTa/optims/args.py, xadam.py): Adam b=(0.9,0.999) eps 1e-6, decoupled weight decay 0.01, clip 1.0,
# linear warmup then linear decay to 0 (polynomial_decay, power 1). fairseq's Adam bias-corrects, XAdam does not.
GLUE_OPT_ARGS=(--optimizer adam --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0
               --lr-scheduler polynomial_decay --end-learning-rate 0)
# SiFT at adversarial_ce's defaults, DeBERTa's *-sift values (AdversarialCEConfig in
# vega_toolkit/criterions/adversarial_ce.py, the one place they are written; `vega-train --criterion adversarial_ce
# --help` lists them); an --adv-* flag given to a recipe overrides one
SIFT_ARGS=(--criterion adversarial_ce)
PLAIN_ARGS=(--criterion glue_prediction)

run_cmd() {
  if [[ "$DRY_RUN" == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

# glue_finetune TASK INIT_CHECKPOINT [extra vega-train args...]
# Fine-tunes PRETRAINED's encoder (or INIT_CHECKPOINT's, e.g. the MNLI model) on TASK into $OUT/TASK, then scores
# the best checkpoint on dev and writes its test predictions; the last line printed is `dev <metric>=<value>`.
glue_finetune() {
  local task=$1 init=$2
  shift 2
  glue_hparams "$task"
  local glue_name glue_folder glue_best_metric glue_regression glue_num_classes glue_metrics glue_train_rows
  local glue_arch_flags updates warmup head save info
  # one call for the task table row, the train row count and the pretrained model's arch flags (shell-quoted
  # glue_<field>=... lines); a failure (missing file, malformed row) stops the recipe here with its message
  info=$("$VEGA_GLUE" info "$task" --glue-dir "$GLUE_DIR" --model-dir "$PRETRAINED")
  eval "$(grep -E '^glue_[a-z_]+=' <<< "$info")"
  updates=$(( (glue_train_rows + BSZ - 1) / BSZ * EPOCHS ))
  local scale_args=()
  if [[ "$SCALE" == tiny ]]; then
    updates=$(( updates < ${MAX_UPDATE:-300} ? updates : ${MAX_UPDATE:-300} ))
    scale_args=(--cpu --num-workers 0 --log-interval 50)
  else
    scale_args=(--fp16 --num-workers 2 --log-interval 100)
  fi
  warmup=$(( WARMUP < updates / 2 ? WARMUP : updates / 10 ))
  head=$(echo "$task" | tr -d '-' | tr '[:upper:]' '[:lower:]')_head
  save=$OUT/$task
  local task_args=(--glue-task "$task" --vocab-dir "$PRETRAINED" --classification-head-name "$head")
  if [[ "$glue_regression" == 1 ]]; then task_args+=(--regression-target); fi
  if [[ "$task" == MNLI ]]; then task_args+=(--valid-subset valid,valid1); fi
  local arch
  read -r -a arch <<< "$glue_arch_flags"
  local launch_args=()
  if [[ "$LAUNCHER" == submitit ]]; then
    launch_args=(--launcher submitit --slurm-job-name "vega-glue-$task" "${SLURM_EXTRA[@]}")
    if [[ -n "$AFTER_JOB" ]]; then launch_args+=(--slurm-dependency "afterok:$AFTER_JOB"); fi
  fi
  run_cmd "$VEGA_TRAIN" "$GLUE_DIR/$glue_folder" --task glue "${task_args[@]}" "${arch[@]}" \
    --finetune-from-model "$init" --save-dir "$save" --max-seq-len "$MAX_LEN" --pooler-dropout "$CLS_DROP" \
    --batch-size "$BSZ" --lr "$LR" --warmup-updates "$warmup" --total-num-update "$updates" --max-update "$updates" \
    "${GLUE_OPT_ARGS[@]}" --best-checkpoint-metric "$glue_best_metric" --maximize-best-checkpoint-metric \
    --no-epoch-checkpoints --log-format simple --seed 1 "${scale_args[@]}" "$@" "${launch_args[@]}"
  # under submitit the training has only been queued: score it once the job is done (all.sh prints the command)
  if [[ "${GLUE_DEV_EVAL:-1}" != 0 && "$LAUNCHER" == local ]]; then
    run_cmd "$VEGA_GENERATE" "$save/checkpoint_best.pt" --glue-dir "$GLUE_DIR" --out-dir "$save/predictions" --dev \
      ${GENERATE_EXTRA[@]+"${GENERATE_EXTRA[@]}"}
  fi
}

# glue_finetune_from_mnli TASK [extra vega-train args...]
# RTE, STS-B and MRPC start from the MNLI-fine-tuned model (encoder loaded, their own head fresh), as DeBERTa and
# RoBERTa do. Under LAUNCHER=submitit the MNLI job may still be queued: AFTER_JOB holds this one until it succeeded.
glue_finetune_from_mnli() {
  local task=$1
  shift
  local mnli=${MNLI_CHECKPOINT:-$OUT/MNLI/checkpoint_best.pt}
  if [[ ! -f "$mnli" && "$DRY_RUN" != 1 && "$LAUNCHER" == local ]]; then
    echo "$task: $mnli not found: run recipes/glue/mnli.sh first (or set MNLI_CHECKPOINT)" >&2
    exit 2
  fi
  glue_finetune "$task" "$mnli" "$@"
}
