#!/usr/bin/env bash
# Create (or complete) the repo-local virtual environment `.venv`.
#
#   bash scripts/setup_env.sh            # runtime packages (what `make demo` needs)
#   bash scripts/setup_env.sh --test     # plus the test extras (what `make test` needs)
#
# Order matters (see README "The two commands"): the pinned CPU torch goes in first, so that neither
# fairseq's build nor any later requirement drags a multi-GB CUDA torch in; fairseq-fixed is
# then compiled against that torch with --no-build-isolation and --no-deps, because its
# declared torchaudio requirement has no release for torch 2.13 and text code never imports it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.vega-installed
want_test=0; [[ "${1:-}" == "--test" ]] && want_test=1

if [[ ! -x $VENV/bin/python ]]; then
  echo "[setup] creating $VENV with $($PY --version)"
  $PY -m venv $VENV
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

if [[ ! -f $STAMP ]] || [[ requirements/base.txt -nt $STAMP ]] || [[ setup.py -nt $STAMP ]]; then
  t0=$SECONDS
  echo "[setup] installing torch, numpy, cython"
  pip install -r requirements/torch.txt
  echo "[setup] installing runtime dependencies"
  pip install -r requirements/base.txt
  if ! "$VENV/bin/python" -c "import fairseq" 2>/dev/null; then
    echo "[setup] compiling fairseq-fixed (about 2-3 minutes on 2 cores)"
    pip install --no-build-isolation --no-deps -r requirements/fairseq.txt
  fi
  echo "[setup] installing vega-toolkit (editable)"
  pip install --no-build-isolation --no-deps -e .
  touch $STAMP
  echo "[setup] runtime environment ready in $((SECONDS - t0)) s"
fi
if (( want_test )) && { [[ ! -f $VENV/.vega-test-installed ]] || [[ requirements/test.txt -nt $VENV/.vega-test-installed ]]; }; then
  echo "[setup] installing test extras"
  pip install -r requirements/test.txt
  touch $VENV/.vega-test-installed
fi
# KenLM's lmplz/build_binary: compiled from the kenlm sdist into .venv/bin when missing.
if [[ ! -x $VENV/bin/lmplz || ! -x $VENV/bin/build_binary ]]; then
  bash scripts/build_kenlm.sh "$VENV"
fi
