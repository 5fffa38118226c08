"""The console scripts of setup.py (`vega-train`, `vega-preprocess`, `vega-glue`, ...): flag parsing over the
library."""
