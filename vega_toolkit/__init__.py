"""vega-toolkit: the Vega v1 recipe as fairseq plugins.

Importing this package registers every model, task and criterion into fairseq's registries:

    import vega_toolkit                       # then fairseq sees --arch vega_base, --task denoising_pretrain, ...
    from vega_toolkit import VegaModel        # hub interface: VegaModel.from_pretrained(DIR)
"""
from vega_toolkit import checkpoints  # noqa: F401  (allow-lists fairseq checkpoint contents before any load)
from vega_toolkit import models, tasks, criterions  # noqa: F401  (registration side effects)
from vega_toolkit.cli import full_help
from vega_toolkit.data import batching

# Narrow fixes of fairseq-fixed behaviour, each explained in its module:
full_help.install()  # `--help` lists the chosen --arch/--task options
batching.install()  # batch_by_size no longer drops a split's last examples

__version__ = "0.1.0"


def __getattr__(name):
    # The hub interface pulls in sentencepiece and the conversion code; load it on first use only.
    if name == "VegaModel":
        from vega_toolkit.models.hub_interface import VegaModel

        return VegaModel
    raise AttributeError(name)
