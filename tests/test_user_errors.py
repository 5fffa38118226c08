"""Every console script of setup.py answers common user errors (a missing file, a file where a folder belongs, the
output being an input, a bad number) with one line `<tool>: <message>` on stderr, a non-zero exit and no
traceback; `--debug` (or VEGA_DEBUG=1) shows the traceback instead, and a bug keeps its traceback.

Each command runs in a forked child of this process (the packages are imported once, so a case costs
milliseconds, not the seconds of a fresh interpreter), with its stderr written to a file as a terminal would show it.
"""

import pytest
from cli_helpers import assert_one_line_error, console_scripts, run_console_script


@pytest.fixture
def places(tmp_path):
    """{missing}: a path that does not exist; {file}: an existing file; {dir}: an existing empty folder."""
    (tmp_path / "file.txt").write_text("some text\n")
    (tmp_path / "dir").mkdir()
    return {
        "missing": str(tmp_path / "missing"),
        "file": str(tmp_path / "file.txt"),
        "dir": str(tmp_path / "dir"),
        "tmp": str(tmp_path),
    }


TRAIN = ["--task", "denoising_pretrain", "--arch", "vega_tiny", "--cpu", "--optimizer", "adam", "--batch-size", "8"]

# tool -> (argv, text the message must contain); {missing}, {file}, {dir}, {tmp} are filled in by `places`
CASES = {
    "vega-train": [
        (["{missing}", *TRAIN, "--lr", "1e-3", "--save-dir", "{tmp}/save"], "{missing}/dict.txt not found"),
        (["{dir}", *TRAIN, "--lr", "1e-3", "--save-dir", "{file}"], "--save-dir {file} is an existing file"),
        (["{dir}", *TRAIN, "--lr", "1e-3", "--max-update", "0", "--save-dir", "{tmp}/s"], "--max-update 0"),
        (["{dir}", *TRAIN, "--lr=-1e-3", "--save-dir", "{tmp}/s"], "a learning rate must be positive"),
    ],
    "vega-convert": [
        (["to-hf", "{missing}", "{tmp}/out"], "{missing}/model.pt not found"),
        (["to-hf", "{dir}", "{dir}"], "is also an input"),
        (["from-hf", "{dir}", "{file}"], "is an existing file, not a folder"),
        (["export", "{missing}", "--data-bin", "{dir}", "{tmp}/out"], "checkpoint not found: {missing}"),
        (["export", "{missing}", "--data-bin", "{dir}", "{dir}"], "is also an input"),
    ],
    "vega-generate": [
        (["{missing}", "--glue-dir", "{dir}", "--out-dir", "{tmp}/out"], "checkpoint {missing} not found"),
        (["{file}", "--glue-dir", "{missing}", "--out-dir", "{tmp}/out"], "--glue-dir {missing}: no such folder"),
        (["{file}", "--glue-dir", "{dir}", "--out-dir", "{tmp}/out"], "{file} is corrupt or truncated"),
    ],
    "vega-glue": [
        (["validate", "{missing}"], "{missing}"),
        (["arch", "{file}"], "{file}"),
        (["info", "NOT-A-TASK"], "unknown GLUE task 'NOT-A-TASK'"),
    ],
    "vega-select": [
        (["--train", "{missing}", "--pool", "{file}", "--out", "{tmp}/o", "--top-k", "1"], "--train {missing}"),
        (["--train", "{file}", "--pool", "{file}", "--out", "{file}", "--top-k", "1"], "is also the --train input"),
    ],
    "vega-preprocess": [
        (["{missing}", "--destdir", "{tmp}/d", "--vocab-size", "50"], "{missing}"),
    ],
    "vega-study": [
        (["report", "{missing}"], "{missing}"),
        (["run", "--scale", "smoke", "--out", "{file}"], "--out {file} is an existing file"),
    ],
    "vega-hydra-train": [
        (["--config-name", "no_such_config"], "--config-name no_such_config: no such config"),
        (["--config-dir", "{dir}", "--config-name", "sst2"], "--config-dir {dir} has no sst2.yaml"),
    ],
    "vega-config-dir": [
        (["{missing}"], "unrecognized arguments"),
    ],
    "vega-sweep-report": [
        (["{missing}"], "{missing}"),
        (["{dir}"], "no Hydra run folders"),
    ],
}


def cases():
    scripts = console_scripts()
    for tool, entry in sorted(scripts.items()):
        # every console script, also one added later without a row above: a missing path as its only argument,
        # and a file where it may expect a folder
        for generic in (["{missing}"], ["{file}"]):
            yield pytest.param(tool, entry, generic, None, id=f"{tool}-generic-{generic[0][1:-1]}")
        for i, (argv, expected) in enumerate(CASES.get(tool, [])):
            yield pytest.param(tool, entry, argv, expected, id=f"{tool}-{i}")


def test_every_console_script_of_setup_py_is_covered():
    assert set(CASES) <= set(console_scripts())
    assert "vega-train" in console_scripts() and len(console_scripts()) >= 10


@pytest.mark.parametrize("tool,entry,argv,expected", list(cases()))
def test_user_error_is_one_line_naming_the_tool_without_a_traceback(tool, entry, argv, expected, places, tmp_path):
    argv = [a.format(**places) for a in argv]
    code, _, stderr = run_console_script(entry, argv, tmp_path, prog=tool)
    if expected is None:  # generic case: some tools accept the argument (vega-study report of a folder, ...)
        assert "Traceback" not in stderr, stderr[-3000:]
        if code != 0:
            assert_one_line_error(tool, code, stderr)
        return
    assert_one_line_error(tool, code, stderr, expected.format(**places))


def test_debug_flag_and_environment_variable_show_the_traceback(places, tmp_path):
    entry = console_scripts()["vega-convert"]
    argv = ["to-hf", places["dir"], places["dir"]]
    for extra, env in ((["--debug"], None), ([], {"VEGA_DEBUG": "1"})):
        code, _, stderr = run_console_script(entry, argv + extra, tmp_path, env)
        assert code != 0 and "Traceback" in stderr and "UserError" in stderr, stderr[-2000:]


def test_a_bug_keeps_its_traceback(tmp_path):
    from vega_toolkit.errors import console_script

    @console_script("vega-x")
    def buggy(argv=None):
        return {}["no such key"]

    with pytest.raises(KeyError):
        buggy([])
