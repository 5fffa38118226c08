"""User errors: bad input whose message says what to do, reported as one line `<tool>: <message>`.

    from vega_toolkit.errors import UserError, console_script

    @console_script("vega-convert")
    def cli_main(argv=None): ...            # raise UserError("--data-bin D: no dict.txt ...") anywhere below it

Every console script's `cli_main` is wrapped by `console_script`. A `UserError` (and the operating system's own
path errors: a missing file, a file where a folder belongs, ...) raised anywhere under it becomes
`SystemExit("<tool>: <message>")`: the interpreter prints that one line on stderr and exits with status 1 (callers
in Python catch SystemExit as from `sys.exit`). A traceback would bury the message, and
the message names the file, line or flag to fix. `--debug` on the command line (removed before the tool parses its
arguments) or `VEGA_DEBUG=1` in the environment shows the traceback instead. Any other exception is a bug and keeps
its traceback. The toolkit's specific errors (CheckpointError, HeadMismatchError, GlueFormatError,
SaveDirLockedError, VocabularyMismatchError, ...) are subclasses of UserError.
"""

import functools
import os
import sys
from collections.abc import Callable, Iterable

DEBUG_FLAG = "--debug"
DEBUG_ENV = "VEGA_DEBUG"
# the operating system's errors about a path the user gave: their message names it ("[Errno 2] ...: 'x'")
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError)


class UserError(ValueError):
    """Bad input (a file, a flag, a value) that the user can fix; the message names it and says how. A ValueError,
    so that callers catching bad values keep catching it."""


class UnsupportedSetupError(UserError, RuntimeError):
    """A flag this machine cannot run (a kernel without its library or device); a RuntimeError, as the failure to
    run it is."""


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def user_message(tool: str, error: BaseException) -> str:
    message = one_line(error)
    return message if message.startswith((tool + ":", tool + " ")) else f"{tool}: {message}"


def debug_requested(argv: list[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def console_script(tool: str):
    """Decorator of a console script's `cli_main(argv=None)`: user errors become `<tool>: <message>` + exit 1."""

    def wrap(main: Callable):
        @functools.wraps(main)
        def cli_main(argv: Iterable[str] | None = None):
            given = list(sys.argv[1:] if argv is None else argv)
            debug = debug_requested(given)
            args = [a for a in given if a != DEBUG_FLAG]
            try:
                return main(args)
            except (UserError, *PATH_ERRORS) as err:
                if debug:
                    raise
                # SystemExit(str): the interpreter prints the line to stderr and exits with status 1
                raise SystemExit(user_message(tool, err)) from None
            except SystemExit as exit_:  # sys.exit("message") of older code paths: one line as well
                if isinstance(exit_.code, str) and not debug:
                    raise SystemExit(user_message(tool, exit_.code)) from None
                raise

        return cli_main

    return wrap


def check_output_dir(path: str, flag: str, inputs: Iterable[str] = ()) -> None:
    """An output folder must not be an existing file nor one of the command's inputs (refused before any work)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path} is an existing file, not a folder: give a folder to write into")
    for given in inputs:
        if given and os.path.exists(given) and os.path.exists(path) and os.path.samefile(path, given):
            raise UserError(f"{flag} {path} is also an input of this command ({given}): give another output folder")


def require_files(folder: str, names: Iterable[str], what: str) -> None:
    """`folder` must be a folder holding every file of `names`; `what` says what kind of folder it should be."""
    if not os.path.exists(folder):
        raise UserError(f"{folder}: no such folder ({what})")
    if not os.path.isdir(folder):
        raise UserError(f"{folder} is a file, not a folder ({what})")
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise UserError(f"{folder}: no {' or '.join(missing)} ({what})")


def check_not_overwriting(folder: str, names: Iterable[str], force: bool) -> None:
    """Files a command would write into `folder` must not exist already, unless `force` (the --force flag)."""
    existing = [n for n in names if os.path.exists(os.path.join(folder, n))]
    if existing and not force:
        raise UserError(
            f"{folder} already holds {', '.join(existing)}: give another output folder, or --force to overwrite"
        )
