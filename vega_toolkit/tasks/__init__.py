"""Tasks registered into fairseq's task registry (imported by vega_toolkit/__init__.py)."""

from . import (
    denoising_pretrain,  # noqa: F401
    glue,  # noqa: F401
    glue_self_calibrated,  # noqa: F401
    glue_transductive,  # noqa: F401
)
