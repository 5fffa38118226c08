#!/usr/bin/env bash
# CUDA checks that CI (no GPU) cannot run: the CUDA test module and the bf16 encoder benchmark at vega_base size.
#
#   bash scripts/gpu_checks.sh [LOG_DIR]        # on a machine where torch sees a GPU; logs go to LOG_DIR (default .)
#
# tests/test_cuda.py: fast path == reference on CUDA (values, gradients), CPU == CUDA, bf16/fp16 autocast finite
# and close to fp32, the fused Triton kernel == reference (fp32, bf16, fp16, dropout), `vega-train --bf16/--fp16`
# trains and its checkpoint reloads.
# benchmarks/encoder_speed.py: vega_encoder (each of VEGA_IMPLS) vs HF DebertaV2Model vs plain SDPA (flash), fwd+bwd,
# bf16 autocast, at L = 128 and 512; then 12 x 768 at LONG_LENGTHS with the maximum length raised (same log buckets).
# Env: PYTHON, TEST_TIMEOUT, SHAPES ("layers,hidden,heads ..."), BIAS_BLOCKS (vega bias block sizes, 0 = default),
# TOKENS (per batch), REPS, VEGA_IMPLS (default sdpa,fused,reference), LONG_LENGTHS (default 2048,4096; "" = skip).
set -uo pipefail
LOG_DIR=${1:-.}
PYTHON=${PYTHON:-python3}
mkdir -p "$LOG_DIR"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout "${TEST_TIMEOUT:-900}" "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$LOG_DIR/cuda_tests.log" || status=1
for block in ${BIAS_BLOCKS:-0}; do
  for shape in ${SHAPES:-12,768,12 4,384,6}; do  # layers,hidden,heads
    IFS=, read -r layers dim heads <<<"$shape"
    "$PYTHON" benchmarks/encoder_speed.py --device cuda --dtype bf16 --layers "$layers" --dim "$dim" --heads "$heads" \
      --tokens "${TOKENS:-65536}" --reps "${REPS:-10}" --bias-block "$block" \
      --vega-impls "${VEGA_IMPLS:-sdpa,fused,reference}" 2>&1 \
      | tee -a "$LOG_DIR/encoder_speed_cuda.log" || status=1
  done
done
if [[ -n "${LONG_LENGTHS-2048,4096}" ]]; then  # long sequences: HF and the reference may run out of memory (OOM rows)
  "$PYTHON" benchmarks/encoder_speed.py --device cuda --dtype bf16 --layers 12 --dim 768 --heads 12 \
    --tokens "${TOKENS:-65536}" --reps "${REPS:-10}" --lengths "${LONG_LENGTHS-2048,4096}" --max-positions 4096 \
    --vega-impls "${VEGA_IMPLS:-sdpa,fused,reference}" 2>&1 | tee -a "$LOG_DIR/encoder_speed_cuda_long.log" || status=1
fi
exit $status
