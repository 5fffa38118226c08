"""`make demo`: the Vega v1 recipe end to end on embedded toy data (see vega_toolkit/demo/pipeline.py)."""
