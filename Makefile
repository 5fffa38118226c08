# The two commands a newcomer needs (both create and use .venv in the repo root):
#   make demo   # the whole Vega recipe end to end on embedded toy data, with a report
#   make test   # the test suite (sets up .venv, KenLM and a local one-node SLURM first)
# Real data: make demo GLUE_DIR=/path/to/glue CORPUS=/path/to/corpus
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Two workers, one test file each (session fixtures and SLURM jobs stay within a file); one BLAS thread per worker.
PYTEST_ARGS ?= -n 2 --dist loadfile
DEMO_OUT ?= demo_out
# Under CI=true a local SLURM that cannot start fails `make test` instead of skipping the launcher and DDP tests.
SLURM_LOCAL ?= scripts/slurm_local.sh
GLUE_DIR ?=
CORPUS ?=

.PHONY: test demo venv venv-test clean

venv:
	bash scripts/setup_env.sh

venv-test:
	bash scripts/setup_env.sh --test

test: venv-test
	@bash $(SLURM_LOCAL) start || { \
	  if [ "$(CI)" = true ]; then echo "[make test] CI=true: local SLURM could not start" >&2; exit 1; fi; \
	  echo "[make test] local SLURM could not start: launcher tests will skip"; }
	@status=0; OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests $(PYTEST_ARGS) || status=$$?; \
	  bash $(SLURM_LOCAL) stop || true; exit $$status

demo: venv
	$(PY) -m vega_toolkit.demo --out $(DEMO_OUT) $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR)) $(if $(CORPUS),--corpus $(CORPUS))

clean:
	rm -rf $(VENV) build third_party $(DEMO_OUT) .pytest_cache
