"""vega-toolkit: the Vega v1 recipe as fairseq plugins.

Importing this package installs the fairseq fixes (vega_toolkit/fairseq_fixes) and registers every model, task and
criterion into fairseq's registries:

    import vega_toolkit                       # then fairseq sees --arch vega_base, --task denoising_pretrain, ...
    from vega_toolkit import VegaModel        # hub interface: VegaModel.from_pretrained(DIR)
"""

from vega_toolkit import fairseq_fixes

fairseq_fixes.install()  # before any checkpoint is read or any parser built

from vega_toolkit import criterions, models, tasks  # noqa: E402,F401  (registration side effects)

__version__ = "0.1.0"


def __getattr__(name):
    # The hub interface pulls in sentencepiece and the conversion code; load it on first use only.
    if name == "VegaModel":
        from vega_toolkit.models.hub_interface import VegaModel

        return VegaModel
    raise AttributeError(name)
