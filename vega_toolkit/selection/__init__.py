"""KenLM data selection (Vega v1 self-calibrated fine-tuning, step 1): `lm.py` trains n-gram LMs with the real
lmplz/build_binary (scripts/build_kenlm.sh) and scores with the `kenlm` module; `select.py` ranks a streamed pool
by perplexity or Moore-Lewis cross-entropy difference. Command line: `vega-select` (vega_toolkit/cli/select.py)."""
