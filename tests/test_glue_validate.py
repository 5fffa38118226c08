"""`vega-glue validate`: exit status 1 on any malformed file, missing task folder or split, or unofficial row count
(unless --allow-partial), one report line per split even when a file cannot be decoded."""

import os
import shutil

import pytest
from glue_helpers import FIXTURES, vega_cli

REAL = os.environ.get("VEGA_GLUE_DIR")


def _copy(tmp_path, task, real=True):
    source = (
        os.path.join(REAL, task)
        if real and REAL and os.path.isdir(os.path.join(REAL, task))
        else os.path.join(FIXTURES, task)
    )
    shutil.copytree(source, tmp_path / "glue" / task)
    return tmp_path / "glue", tmp_path / "glue" / task


def _validate(*args):
    r = vega_cli("glue", ["validate", *map(str, args)])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    return r


@pytest.mark.slow
def test_an_empty_folder_fails(tmp_path):
    r = _validate(tmp_path)
    assert r.returncode == 1 and "missing folder SST-2/" in r.stdout


@pytest.mark.slow
def test_a_task_folder_given_instead_of_the_glue_folder_fails_and_says_so(tmp_path):
    _, task_folder = _copy(tmp_path, "SST-2", real=False)
    r = _validate(task_folder)
    assert r.returncode == 1 and f"{task_folder} looks like the SST-2 task folder: pass the folder above it" in r.stdout


@pytest.mark.slow
def test_a_file_cut_inside_its_last_column_fails_on_its_row_count(tmp_path):
    root, folder = _copy(tmp_path, "STS-B")
    dev = folder / "dev.tsv"
    data = dev.read_bytes()
    row_end = data.index(b"\n", len(data) // 2)
    cut = data[: data.rindex(b"\t", 0, row_end) + 3]  # the row's score "4.750" -> "4.": still a valid score
    dev.write_bytes(cut)
    r = _validate(root, "--tasks", "STS-B")
    assert r.returncode == 1
    (line,) = [x for x in r.stdout.splitlines() if x.split()[:2] == ["STS-B", "dev"]]
    assert line.endswith("differs (no final newline: cut short?)"), line


@pytest.mark.slow
def test_fixtures_pass_only_with_allow_partial(tmp_path):
    assert _validate(FIXTURES).returncode == 1  # 12-row fixtures are not the official files
    r = _validate(FIXTURES, "--allow-partial")
    assert r.returncode == 0 and "differs" in r.stdout


@pytest.mark.skipif(not REAL, reason="set VEGA_GLUE_DIR to the real glue_data folder")
def test_the_official_files_pass():
    # MNLI, QQP and QNLI train are not in ../shared/glue
    r = _validate(REAL, "--tasks", "CoLA,SST-2,MRPC,STS-B,RTE,WNLI,AX")
    assert r.returncode == 0, r.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "encoding,expected", [("latin-1", r":3: not UTF-8 \(byte 0xe9"), ("utf-16", r":1: the file is UTF-16")]
)
def test_a_file_in_another_encoding_is_named_with_its_line_and_the_report_goes_on(tmp_path, encoding, expected):
    import re

    root, folder = _copy(tmp_path, "RTE", real=False)
    shutil.copytree(os.path.join(FIXTURES, "WNLI"), root / "WNLI")
    dev = folder / "dev.tsv"
    lines = dev.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(" ", " caf\u00e9 ", 1)
    dev.write_bytes("".join(lines).encode(encoding))
    r = _validate(root, "--tasks", "RTE,WNLI", "--allow-partial")
    assert r.returncode == 1
    assert re.search(re.escape(str(dev)) + expected, r.stdout), r.stdout
    assert [x for x in r.stdout.splitlines() if x.startswith("WNLI")]  # the other task is still reported
