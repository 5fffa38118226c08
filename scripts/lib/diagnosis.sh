# Shared by the transfer diagnosis scripts (sourced, not run). Needs GLUE (the glue_data folder) and runs in the
# script's output folder.
#
# fine_tune MODEL_DIR TASK LR SEED [extra vega-train flags]: one fine-tuning as the `cpu` study runs it
# (vega_toolkit/study/plan.py: batch 32, 10% warmup, linear decay, best dev checkpoint), printing
# `TASK MODEL lr=.. seed=.. epochs=.. FLAGS : dev ...`. The task's epochs (and SST-2's update cap) are the study's
# unless EPOCHS / CAP are set; ARCH (default vega_tiny) must match the model folder.
fine_tune() {
  local model=$1 task=$2 lr=$3 seed=$4 epochs cap=0 metric extra=()
  shift 4
  case $task in
    SST-2) epochs=1 cap=1000 extra=(--validate-interval-updates 250) ;;
    CoLA) epochs=3 ;;
    MRPC) epochs=5 ;;
    STS-B) epochs=4 ;;
    RTE) epochs=6 ;;
    WNLI) epochs=5 ;;
    *) echo "fine_tune: no study budget for task $task" >&2; return 2 ;;
  esac
  epochs=${EPOCHS:-$epochs} cap=${CAP:-$cap}
  metric=$(vega-glue info "$task" best_metric)
  [[ $(vega-glue info "$task" regression) == 1 ]] && extra+=(--regression-target)
  local rows updates save="ft/$(basename "$model")-$task-lr$lr-s$seed-e$epochs-$(echo "$*" | tr -dc 'a-z0-9')"
  rows=$(vega-glue info "$task" train_rows --glue-dir "$GLUE")
  updates=$(( (rows + 31) / 32 * epochs ))
  (( cap > 0 && updates > cap )) && updates=$cap
  rm -rf "$save"
  mkdir -p ft
  vega-train "$GLUE/$task" --task glue --glue-task "$task" --vocab-dir "$model" --arch "${ARCH:-vega_tiny}" \
    --finetune-from-model "$model/model.pt" --classification-head-name head --optimizer adam \
    --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 --lr-scheduler polynomial_decay \
    --end-learning-rate 0 --criterion glue_prediction --max-seq-len 128 --batch-size 32 --lr "$lr" --seed "$seed" \
    --max-epoch "$epochs" --max-update "$updates" --total-num-update "$updates" --warmup-updates $((updates / 10)) \
    --best-checkpoint-metric "$metric" --maximize-best-checkpoint-metric --save-dir "$save/ckpt" \
    --no-epoch-checkpoints --no-last-checkpoints --glue-cache-dir cache --num-workers 0 --log-format simple \
    --log-interval 100 --cpu "${extra[@]}" "$@" > "$save.train.log" 2>&1
  vega-generate "$save/ckpt/checkpoint_best.pt" --glue-dir "$GLUE" --out-dir "$save/pred" --glue-cache-dir cache \
    --dev --cpu > "$save.generate.log" 2>&1
  echo "$task $(basename "$model") lr=$lr seed=$seed epochs=$epochs updates=$updates $* : $(grep '^dev ' "$save.generate.log" | head -1)"
  rm -rf "$save/ckpt"
}
