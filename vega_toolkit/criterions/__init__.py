"""Criterions registered into fairseq's criterion registry (imported by vega_toolkit/__init__.py)."""

from . import (
    adversarial_ce,  # noqa: F401
    glue_prediction,  # noqa: F401
    rtd_contrastive,  # noqa: F401
    rtd_electra,  # noqa: F401
    rtd_ternary,  # noqa: F401
)
