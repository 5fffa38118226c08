"""Fix: `--bf16` no longer switches fairseq onto its TPU code path.

fairseq-fixed 0.12.3.1's legacy parser (`fairseq.options.parse_args_and_arch`, "Post-process args") sets
`args.tpu = True` whenever `--bf16` is given, a leftover of the TPU-only days of bf16: on a GPU the trainer then
takes the XLA branches. `install()` (run on `import vega_toolkit`) wraps the parser so that `--bf16` keeps
`tpu=False` unless `--tpu` itself is on the command line. The Hydra path never sets it (tests/test_hydra_configs.py).
"""

import sys

from fairseq import options

_original_parse_args_and_arch = None


def parse_args_and_arch(parser, input_args=None, *args, **kwargs):
    parsed = _original_parse_args_and_arch(parser, input_args, *args, **kwargs)
    argv = sys.argv[1:] if input_args is None else input_args
    namespace = parsed[0] if isinstance(parsed, tuple) else parsed  # parse_known=True returns (args, extra)
    if getattr(namespace, "bf16", False) and "--tpu" not in argv:
        namespace.tpu = False
    return parsed


def install():
    global _original_parse_args_and_arch
    if _original_parse_args_and_arch is None:
        _original_parse_args_and_arch = options.parse_args_and_arch
        options.parse_args_and_arch = parse_args_and_arch
