"""Tasks registered into fairseq's task registry (imported by vega_toolkit/__init__.py)."""
from . import glue  # noqa: F401
from . import denoising_pretrain  # noqa: F401
from . import glue_transductive  # noqa: F401
from . import glue_self_calibrated  # noqa: F401
