"""Metrics: the GLUE task metrics and the TensorBoard event reader."""
