"""Data: the corpus pipeline, RTD corruption, GLUE readers and binarization, and vocabulary identity."""
