#!/usr/bin/env bash
# The cpu study under the rules of vega_toolkit/study/selection.py (learning rate chosen apart from the reported
# runs, last checkpoint, dev predictions kept, the edge rule), a second pretraining run of the objectives the claims
# compare, the pretraining learning-rate grid and the compute axis. Resumable: every stage is a `vega-study run` of
# keyed cells, so the same command after a kill goes on where it stopped (results/study-cpu/RESUME.md).
#
#   nohup nice -n 19 bash scripts/study_cpu_rules.sh [STAGE ...] >> results/study-cpu/background.log 2>&1 &
#
# One cell at a time per runner (--jobs 1): the machine is shared. STAGE ... runs those stages in that order (default
# 1 2 3 4). A second runner on the other core with another order (`... 2 1 3 4`) works on the same folder: each cell
# is claimed before it starts (vega_toolkit/study/cell_claims.py), so the two never run one cell twice and the
# second joins the first's stages once its own is done. Stages, the most decisive first:
#   1. the claims' objectives (random init, rtd_ternary, masked_lm, rtd_replace_only) on the averaged tasks: the
#      pretraining learning-rate grid, the second pretraining runs at the rate its rule chooses
#      (vega_toolkit/study/pretrain_lr.py), every fine-tuning under the new rules, then the compute axis; what starts
#      from an objective waits until its grid has chosen, and random init's fine-tunings run meanwhile
#   2. the generator objectives (rtd_electra with GDES and with ES sharing, rtd_ternary with generator
#      replacements) on the same tasks, at their equal-compute update counts (study/generator_flops.py)
#   3. the claims' arms on the tasks reported at their floor (MRPC, RTE, WNLI)
#   4. every other arm of the ablation
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE=${VEGA_GLUE_DIR:-/work/shared/glue}
CORPUS=${VEGA_CORPUS_DIR:-/work/shared/corpus}/gutenberg
study() {
    echo "# $(date -u +%FT%TZ) vega-study run $*"
    python -m vega_toolkit.cli.study run --scale cpu --out results/study-cpu --glue-dir "$GLUE" --corpus "$CORPUS" \
        --jobs 1 --no-report "$@"
}
CLAIMS=random,rtd_ternary,masked_lm,rtd_replace_only
stage() {
    case $1 in
        1) study --arms "$CLAIMS" --tasks CoLA,SST-2,STS-B ;;
        2) study --arms rtd_electra,rtd_electra_es,rtd_ternary_generator --tasks CoLA,SST-2,STS-B ;;
        3) study --arms "$CLAIMS" --tasks MRPC,RTE,WNLI ;;
        4) study --arms all ;;
    esac
}
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(1 2 3 4)
for s in "${stages[@]}"; do [[ $s =~ ^[1-4]$ ]] || { echo "study_cpu_rules.sh: unknown stage '$s' (choose from 1 2 3 4)" >&2; exit 2; }; done
for s in "${stages[@]}"; do stage "$s"; done
echo "# $(date -u +%FT%TZ) done"
