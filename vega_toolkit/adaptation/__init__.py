"""Adaptation algorithms that chain several fine-tunings: transductive (Algorithm 1) and self-calibrated
(Algorithm 2) fine-tuning. The fairseq tasks are vega_toolkit/tasks/glue_transductive.py and
glue_self_calibrated.py; the loops live in rounds.py."""
