"""Attention building blocks: log-bucket relative positions and disentangled attention (reference, sdpa, fused)."""
