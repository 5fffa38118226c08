"""Models registered into fairseq's model registry (imported by vega_toolkit/__init__.py)."""

from . import vega_encoder  # noqa: F401
