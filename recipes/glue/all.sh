#!/usr/bin/env bash
# The whole Vega v1 GLUE plan in dependency order, then one leaderboard submission.
#
#   GLUE_DIR=glue_data PRETRAINED=vega-model OUT=runs/glue SCALE=tiny bash recipes/glue/all.sh
#
# Order: MNLI (SiFT) -> RTE, STS-B, MRPC (from the MNLI model); SST-2 (vanilla); QNLI, QQP (SiFT);
# CoLA (KenLM self-calibrated, cola_selfcal.sh); WNLI (transductive, wnli_transductive.sh). Each recipe leaves
# $OUT/<TASK>/checkpoint_best.pt; vega-generate then writes the TSVs (AX from the MNLI model) and
# $OUT/submission/submission.zip, printing `dev <TASK> <split> <metric>=<value>` per dev set. Last line:
# `dev glue_score=<value>` (GLUE score over the tasks run: per-task mean of its metrics, MNLI m/mm averaged).
# PLAN="mnli rte" runs a subset (recipe names, in the order given). LAUNCHER=submitit submits every training to
# SLURM (RTE/STS-B/MRPC with afterok on the MNLI job) and prints the vega-generate command to run afterwards.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
source "$here/common.sh"
PLAN=${PLAN:-mnli rte stsb mrpc sst2 qnli qqp cola_selfcal wnli_transductive}
declare -A TASK_OF=([mnli]=MNLI [rte]=RTE [stsb]=STS-B [mrpc]=MRPC [sst2]=SST-2 [qnli]=QNLI [qqp]=QQP
                    [cola_selfcal]=CoLA [wnli_transductive]=WNLI)
checkpoints=()
for recipe in $PLAN; do
  if [[ ! -f "$here/$recipe.sh" || -z "${TASK_OF[$recipe]:-}" ]]; then
    echo "all.sh: unknown or missing recipe recipes/glue/$recipe.sh" >&2
    exit 2
  fi
  echo "== $recipe"
  if [[ "$LAUNCHER" == submitit ]]; then
    # RTE, STS-B and MRPC start from the MNLI model: their jobs wait for MNLI's (afterok)
    case "$recipe" in rte|stsb|mrpc) after=${MNLI_JOB:-} ;; *) after="" ;; esac
    submitted=$(AFTER_JOB=$after GLUE_DEV_EVAL=0 bash "$here/$recipe.sh" | tee /dev/stderr)
    echo "$submitted" | grep -E '^Submitted job [0-9]+$' || true
    if [[ "$recipe" == mnli ]]; then MNLI_JOB=$(sed -n 's/^Submitted job //p' <<< "$submitted" | tail -1); fi
  else
    GLUE_DEV_EVAL=0 bash "$here/$recipe.sh"  # scored once below, with the submission
  fi
  checkpoints+=("$OUT/${TASK_OF[$recipe]}/checkpoint_best.pt")
done
generate=("$VEGA_GENERATE" "${checkpoints[@]}" --glue-dir "$GLUE_DIR" --out-dir "$OUT/submission" --dev
          ${GENERATE_EXTRA[@]+"${GENERATE_EXTRA[@]}"})
if [[ "$LAUNCHER" == submitit ]]; then
  echo "all.sh: jobs submitted; once they have finished, pack the submission with:"
  printf '%q ' "${generate[@]}"; echo
else
  run_cmd "${generate[@]}"
fi
