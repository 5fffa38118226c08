#!/usr/bin/env bash
# The paper plan rehearsed: its whole job graph submitted to SLURM at tiny sizes, with the paper recipes' structure
# and flags (vega_toolkit/study/rehearsal.py says which job runs what).
#
#   bash scripts/slurm_local.sh start && export SLURM_CONF=/tmp/vega-slurm/slurm.conf    # a one-node SLURM
#   bash recipes/paper/rehearsal.sh /tmp/rehearsal
#
# Runs exactly:
#   vega-study rehearse --out $OUT --glue-dir tests/fixtures/glue
# preprocess -> phase 1 (2 ranks, gloo) -> phase 2 (requeued mid-training, resumes) -> model folder -> MNLI ->
# RTE, STS-B, MRPC; SST-2, QNLI, QQP, CoLA (self-calibrated), WNLI (transductive) -> vega-generate (submission.zip).
# Last line: `rehearsal: <N> jobs, <R> requeued and resumed, submission.zip with <F> files`.
# Env: GLUE_DIR (default: the repository's fixtures, every task), VEGA_STUDY (executable). Extra args go to vega-study.
set -euo pipefail
OUT=${1:?usage: recipes/paper/rehearsal.sh OUT_DIR [vega-study rehearse flags]}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${VEGA_STUDY:-vega-study}" rehearse --out "$OUT" --glue-dir "${GLUE_DIR:-$repo/tests/fixtures/glue}" "${@:2}"
