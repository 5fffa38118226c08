"""Criterions registered into fairseq's criterion registry (imported by vega_toolkit/__init__.py)."""
from . import glue_prediction  # noqa: F401
from . import adversarial_ce  # noqa: F401
from . import rtd_ternary  # noqa: F401
from . import rtd_contrastive  # noqa: F401
from . import rtd_electra  # noqa: F401
