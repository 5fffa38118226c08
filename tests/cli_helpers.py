"""Running a console script the way a user does, in a forked child of the test process (the packages are imported
once, so a case costs milliseconds rather than the seconds of a fresh interpreter), and reading its error."""

import importlib
import os
import re
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def console_scripts():
    """{tool: "module:function"} from setup.py's entry points: a console script added there is tested too."""
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"(vega-[\w-]+) = ([\w.]+:\w+)"', text))


def run_tool(tool: str, argv, tmp_path, env=None):
    """(exit status, stdout, stderr) of console script `tool` (e.g. "vega-train") run with `argv` in `tmp_path`."""
    return run_console_script(console_scripts()[tool], [str(a) for a in argv], tmp_path, env, prog=tool)


def run_console_script(entry: str, argv, tmp_path, env=None, prog=None):
    """(exit status, stdout, stderr) of `entry` (module:function) run as its console script would run it."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    module, function = entry.split(":")
    main = getattr(importlib.import_module(module), function)  # imported here, once, not in every child
    pid = os.fork()
    if pid == 0:  # the child: the console script's own `sys.exit(cli_main())`, the interpreter's traceback print
        code = 1
        try:
            os.chdir(tmp_path)
            os.environ.update(env or {})
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            sys.argv = [prog or entry] + list(argv)  # argparse names the program after it
            result = main()
            code = result if isinstance(result, int) else 0
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


def message_lines(stderr: str):
    """stderr without argparse's usage block (its `usage:` line and the indented lines continuing it) and without
    library warnings: what a user reads as the message."""
    lines, in_usage = [], False
    for line in stderr.splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.strip() and "Warning:" not in line and not line.startswith(("  warnings.warn", "  warn(")):
            lines.append(line)
    return lines


def assert_one_line_error(tool, code, stderr, *expected):
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code != 0, stderr
    lines = message_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith(tool), stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
