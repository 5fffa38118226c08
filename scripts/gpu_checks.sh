#!/usr/bin/env bash
# The CUDA checks CI (no GPU) cannot run, staged for a short GPU window: the most valuable results come first, every
# stage has its own timeout and log, and output is unbuffered, so whatever ran before the window closes is on disk.
#
#   bash scripts/gpu_checks.sh --dry-run                 # the plan: each stage's timeout and command (runs nothing)
#   bash scripts/gpu_checks.sh --budget 540              # on the GPU machine: skip any stage that could end after 540 s
#   OUT=logs/gpu bash scripts/gpu_checks.sh
#
# Stages (timeouts sum to 8 minutes):
#   1 probe        versions against the pins, device and capability, imports, one fused call compiled and checked
#   2 fused_tests  tests/test_cuda.py -k fused: the compiled kernel against the reference (fp32, bf16, fp16, dropout,
#                  head dim 64 at L = 128 and 1100)
#   3 base         12 x 768, bf16, L = 512 and 128: vega fused vs sdpa vs the plain flash encoder (kernels' registers
#                  and spills in the log)
#   4 layer        one layer: fused vs sdpa, relative terms off/on, dropout 0/0.1 (benchmarks/fused_attention_layer.py)
#   5 long         12 x 768 at L = 2048 and 4096: fused and plain first, sdpa last (its [B, H, L, L] bias may not fit)
#   6 other_tests  the rest of tests/test_cuda.py (sdpa path, autocast, vega-train --bf16/--fp16)
#   7 small        4 x 384 at L = 128 and 512 with HF and the reference beside sdpa, fused and plain
#   8 calibration  step time and peak memory of a few configurations: $OUT/calibration/<gpu>.json, the file vega-plan
#                  reads once copied into benchmarks/calibration/ (written under $OUT so a lent machine sends it back)
#
# --budget SECONDS: before each stage, skip it if the elapsed time plus its timeout exceeds SECONDS (later, shorter
# stages still run); in a dry run every stage is assumed to use its whole timeout.
# Logs: $OUT (default benchmarks/results/gpu_checks_<UTC time>): NN_<stage>.log per stage, summary.tsv (stage,
# timeout, status: 0, an exit code, 124 = timed out, or skipped; seconds). Env: PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash scripts/gpu_checks.sh [--dry-run] [--budget SECONDS]"
dry_run=0
budget=
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --budget)
      budget=${2-}
      if ! [[ $budget =~ ^[0-9]+$ ]] || ((budget <= 0)); then
        echo "gpu_checks.sh: --budget needs a positive whole number of seconds, got '${budget}'" >&2
        exit 2
      fi
      shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_checks.sh: unknown argument '$1' ($usage)" >&2; exit 2 ;;
  esac
  shift
done
PY="${PYTHON:-python3} -u"
OUT=${OUT:-benchmarks/results/gpu_checks_$(date -u +%Y%m%dT%H%M%SZ)}
if ((!dry_run)) && [[ -d $OUT ]] && [[ -n $(ls -A "$OUT") ]]; then
  echo "gpu_checks.sh: OUT=$OUT exists and is not empty; choose another folder (nothing is overwritten)" >&2
  exit 2
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BENCH="$PY benchmarks/encoder_speed.py --device cuda --dtype bf16 --tokens 65536"
BASE="--layers 12 --dim 768 --heads 12"

# name | timeout in seconds | command
STAGES=(
  "probe|30|$PY scripts/gpu_probe.py"
  "fused_tests|150|$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py -k fused"
  "base|60|$BENCH $BASE --reps 5 --lengths 512,128 --models vega,plain --vega-impls fused,sdpa"
  "layer|30|$PY benchmarks/fused_attention_layer.py --device cuda --dtype bf16 --lengths 512,2048 --reps 5"
  "long|70|$BENCH $BASE --reps 3 --lengths 2048,4096 --max-positions 4096 --models vega:fused,plain,vega:sdpa"
  "other_tests|60|$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py -k 'not fused'"
  "small|30|$BENCH --layers 4 --dim 384 --heads 6 --reps 5 --models vega,hf,plain --vega-impls sdpa,fused,reference"
  "calibration|50|$PY benchmarks/planner_calibration.py --out $OUT/calibration"
)

total=0
for stage in "${STAGES[@]}"; do total=$((total + $(cut -d'|' -f2 <<<"$stage"))); done
if ((dry_run)); then
  echo "gpu_checks plan (dry run: nothing runs; OUT=$OUT; budget ${budget:-none}):"
else
  mkdir -p "$OUT"
  printf 'stage\ttimeout_s\tstatus\tseconds\n' >"$OUT/summary.tsv"
  echo "gpu_checks: logs in $OUT; budget ${budget:-none}"
fi
start=$SECONDS
planned=0  # dry run: the elapsed time if every stage used its whole timeout
failed=0
n=0
for stage in "${STAGES[@]}"; do
  IFS='|' read -r name limit command <<<"$stage"
  n=$((n + 1))
  label=$(printf '%02d_%s' "$n" "$name")
  elapsed=$((dry_run ? planned : SECONDS - start))
  if [[ -n $budget ]] && ((elapsed + limit > budget)); then
    echo "[$label] skipped: ${elapsed} s elapsed + ${limit} s timeout > budget ${budget} s"
    ((dry_run)) || printf '%s\t%s\tskipped\t0\n' "$name" "$limit" >>"$OUT/summary.tsv"
    continue
  fi
  if ((dry_run)); then
    printf '[%s] timeout %3d s: %s\n' "$label" "$limit" "$command"
    planned=$((planned + limit))
    continue
  fi
  echo "[$label] timeout ${limit} s: $command"
  began=$SECONDS
  timeout --kill-after=5 "$limit" bash -c "$command" 2>&1 | tee "$OUT/$label.log"
  status=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\t%s\n' "$name" "$limit" "$status" "$((SECONDS - began))" >>"$OUT/summary.tsv"
  echo "[$label] exit $status after $((SECONDS - began)) s"
  ((status == 0)) || failed=1
done
if ((dry_run)); then
  echo "total of the timeouts: ${total} s ($((total / 60)) min $((total % 60)) s); planned to run: ${planned} s"
  exit 0
fi
echo "gpu_checks: done in $((SECONDS - start)) s; summary in $OUT/summary.tsv"
cat "$OUT/summary.tsv"
exit $failed
