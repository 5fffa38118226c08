"""Make `--help` of fairseq's training CLIs list the chosen --arch/--task/--criterion options.

    vega-train --arch vega_base --help
    fairseq-train --user-dir user_dir --arch vega_base --help

Stock fairseq parses the command line twice: a first `parse_known_args` reads --arch/--task/..., then their options
are added and everything is parsed again. argparse executes `--help` during the first parse, before any model or
task option exists, so fairseq's help never shows them. `install()` (run on `import vega_toolkit`) wraps
`fairseq.options.parse_args_and_arch` so that, when help is requested, `-h/--help` is hidden from the first parse
and restored for the second: the printed help then includes the model's, task's and criterion's options.
"""

import sys

from fairseq import options

_HELP_FLAGS = ("-h", "--help")
_original_parse_args_and_arch = None


def _deferring_help(user_hook):
    calls = []

    def hook(parser):
        if not calls:  # before the first parse: stash the help option so argparse cannot act on it yet
            calls.append(
                {
                    flag: parser._option_string_actions.pop(flag)
                    for flag in _HELP_FLAGS
                    if flag in parser._option_string_actions
                }
            )
        else:  # before the final parse, once the component options are added
            parser._option_string_actions.update(calls[0])
        if user_hook is not None:
            user_hook(parser)

    return hook


def parse_args_and_arch(parser, input_args=None, parse_known=False, suppress_defaults=False, modify_parser=None):
    argv = sys.argv[1:] if input_args is None else input_args
    if any(flag in argv for flag in _HELP_FLAGS) and not suppress_defaults:
        modify_parser = _deferring_help(modify_parser)
    return _original_parse_args_and_arch(
        parser,
        input_args=input_args,
        parse_known=parse_known,
        suppress_defaults=suppress_defaults,
        modify_parser=modify_parser,
    )


def install():
    global _original_parse_args_and_arch
    if _original_parse_args_and_arch is None:
        _original_parse_args_and_arch = options.parse_args_and_arch
        options.parse_args_and_arch = parse_args_and_arch
