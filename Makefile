# The two commands a newcomer needs (both create and use .venv in the repo root):
#   make demo   # the whole Vega recipe end to end on embedded toy data, with a report
#   make test   # lint, then the whole test suite (sets up .venv, KenLM and a local one-node SLURM first): what CI runs
# While iterating (docs/development.md):
#   make test-fast  # the unit lane on an existing .venv: no SLURM, no KenLM, no study smoke, no GPU, nothing slow
#   make lint       # ruff check + ruff format --check, the pinned ruff of requirements/test.txt
# Real data: make demo GLUE_DIR=/path/to/glue CORPUS=/path/to/corpus
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Two workers, one test file each (session fixtures and SLURM jobs stay within a file); one BLAS thread per worker.
PYTEST_ARGS ?= -n 2 --dist loadfile
# The fast lane leaves out every marked lane (pytest.ini lists the markers; tests/conftest.py marks the users of the
# local_slurm and kenlm_programs fixtures); tests/test_lanes.py checks this expression against the fixtures.
FAST_MARKERS := not slow and not slurm and not kenlm and not study and not gpu
DEMO_OUT ?= demo_out
# Under CI=true a local SLURM that cannot start fails `make test` instead of skipping the launcher and DDP tests.
SLURM_LOCAL ?= scripts/slurm_local.sh
GLUE_DIR ?=
CORPUS ?=

.PHONY: test test-fast lint demo venv venv-test clean

venv:
	bash scripts/setup_env.sh

venv-test:
	bash scripts/setup_env.sh --test

test: venv-test lint
	@bash $(SLURM_LOCAL) start || { \
	  if [ "$(CI)" = true ]; then echo "[make test] CI=true: local SLURM could not start" >&2; exit 1; fi; \
	  echo "[make test] local SLURM could not start: launcher tests will skip"; }
	@status=0; OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests $(PYTEST_ARGS) || status=$$?; \
	  bash $(SLURM_LOCAL) stop || true; exit $$status

# No setup here: the fast lane must not build KenLM or install anything, so it needs the .venv `make test` made.
test-fast:
	@[ -f $(VENV)/.vega-test-installed ] || { \
	  echo "[make test-fast] no test environment in $(VENV): run \`make test\` once first (it creates it)" >&2; exit 1; }
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests $(PYTEST_ARGS) -m "$(FAST_MARKERS)"

lint:
	@[ -x $(VENV)/bin/ruff ] || { \
	  echo "[make lint] no ruff in $(VENV): run \`make test\` once first (it installs requirements/test.txt)" >&2; exit 1; }
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: venv
	$(PY) -m vega_toolkit.demo --out $(DEMO_OUT) $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR)) $(if $(CORPUS),--corpus $(CORPUS))

clean:
	rm -rf $(VENV) build third_party $(DEMO_OUT) .pytest_cache
