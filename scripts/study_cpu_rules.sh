#!/usr/bin/env bash
# The cpu study under the rules of vega_toolkit/study/selection.py (learning rate chosen apart from the reported
# runs, last checkpoint, dev predictions kept, the edge rule), a second pretraining run of the objectives the claims
# compare, the pretraining learning-rate grid and the compute axis. Resumable: every stage is a `vega-study run` of
# keyed cells, so the same command after a kill goes on where it stopped (results/study-cpu/RESUME.md).
#
#   nohup nice -n 19 bash scripts/study_cpu_rules.sh >> results/study-cpu/background.log 2>&1 &
#
# One cell at a time (--jobs 1): the machine is shared. Stages, the most decisive first:
#   1. the claims' objectives (random init, rtd_ternary, masked_lm, rtd_replace_only) on the averaged tasks: the
#      second pretraining runs, then every fine-tuning under the new rules, then the pretraining learning-rate grid
#      and the compute axis (they are planned after the fine-tunings of the same run)
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
study --arms "$CLAIMS" --tasks CoLA,SST-2,STS-B
study --arms rtd_electra,rtd_electra_es,rtd_ternary_generator --tasks CoLA,SST-2,STS-B
study --arms "$CLAIMS" --tasks MRPC,RTE,WNLI
study --arms all
echo "# $(date -u +%FT%TZ) done"
