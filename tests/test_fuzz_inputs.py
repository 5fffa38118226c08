"""Fuzzing the inputs a new user feeds the toolkit: every GLUE file layout and `vega-preprocess` text, cut at random
points, re-encoded, or with random binary junk inserted. Every outcome must be the correct parse or an error whose
message names the file; any other exception would reach the user as a Python traceback.

The error types allowed here are exactly those the CLIs turn into one-line messages (vega-glue, vega-generate and
vega-train catch GlueFormatError; vega-preprocess catches ValueError and FileNotFoundError), so "an allowed error
naming the file" in-process means "a message naming the file, no traceback" at the CLI (the CLI tests of each item
check that mapping with real subprocesses)."""

import os
import random

from glue_helpers import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vega_toolkit.data.glue_readers import GlueFormatError, read_glue_file
from vega_toolkit.data.glue_tasks import GLUE_TASKS

ALL_SPLITS = [(t, s) for t in GLUE_TASKS.values() for s in t.splits]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _fixture(task, split) -> bytes:
    with open(os.path.join(FIXTURES, task.folder, task.splits[split].file), "rb") as f:
        return f.read()


def _parse(tmp_path, data: bytes, task, split):
    """(examples, None) or (None, error message); any other exception fails the test."""
    path = tmp_path / f"{task.name}-{split}.tsv"
    path.write_bytes(data)
    try:
        return read_glue_file(str(path), task, split), None
    except GlueFormatError as err:
        assert str(err).startswith(f"{path}:") or str(err).startswith(f"{path} "), str(err)
        return None, str(err)


def _is_prefix_parse(cut, whole):
    """A file cut short parses as the rows before the cut plus, possibly, a last row whose fields are cut short
    (CoLA's "4.750" read as "4." cannot be told apart; vega-glue validate flags it by its row count)."""
    if not cut or len(cut) > len(whole):
        return False
    last, same = cut[-1], whole[len(cut) - 1]
    fields = [
        (last.text_a, same.text_a),
        (last.text_b or "", same.text_b or ""),
        (last.label or "", same.label or ""),
        (last.index, same.index),
    ]
    return cut[:-1] == whole[: len(cut) - 1] and all(b.startswith(a) for a, b in fields)


@FUZZ
@given(which=st.sampled_from(ALL_SPLITS), point=st.floats(0, 1))
def test_a_glue_file_cut_anywhere_parses_as_a_prefix_or_fails_naming_the_file(tmp_path, which, point):
    task, split = which
    data = _fixture(task, split)
    whole = read_glue_file(os.path.join(FIXTURES, task.folder, task.splits[split].file), task, split)
    cut, error = _parse(tmp_path, data[: int(len(data) * point)], task, split)
    assert error is not None or _is_prefix_parse(cut, whole)


@FUZZ
@given(
    which=st.sampled_from(ALL_SPLITS),
    encoding=st.sampled_from(ENCODINGS),
    where=st.floats(0, 1),
    char=st.sampled_from(["\u00e9", "\u201c", "\u00fc", "a"]),
)
def test_a_glue_file_in_any_encoding_parses_as_its_utf8_text_or_fails_naming_the_file(
    tmp_path, which, encoding, where, char
):
    task, split = which
    text = _fixture(task, split).decode("utf-8-sig")
    at = int(len(text) * where)
    data = (text[:at] + char + text[at:]).encode(encoding, errors="replace")  # "?" where the encoding has no char
    meant = data.decode(encoding)  # the text the file holds, in the encoding it was written in
    reference, reference_error = _parse(tmp_path, meant.encode("utf-8"), task, split)
    parsed, error = _parse(tmp_path, data, task, split)
    if error is None:
        assert parsed == reference  # never a silently different text
    elif reference_error is None:  # only the encoding differs: the message says so
        assert "UTF-8" in error or "UTF-16" in error, error


@FUZZ
@given(which=st.sampled_from(ALL_SPLITS), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_a_glue_file_with_binary_junk_parses_or_fails_naming_the_file(tmp_path, which, where, junk):
    task, split = which
    data = _fixture(task, split)
    at = int(len(data) * where)
    _parse(tmp_path, data[:at] + junk + data[at:], task, split)  # asserts: a parse, or an error naming the file


def _corpus(rng: random.Random) -> str:
    words = "the cat dog sat ran on a mat rug old new red blue house tree".split()
    # numbered: every unit is unique, so a unit in both train and valid can only be a copy
    return "".join(f"{i} " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + " .\n" for i in range(60))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    mutation=st.sampled_from(["cut", "encoding", "junk"]),
    encoding=st.sampled_from(ENCODINGS),
    where=st.floats(0, 1),
    junk=st.binary(min_size=1, max_size=256),
    paragraphs=st.booleans(),
)
def test_preprocess_input_gives_a_clean_data_bin_or_an_error_naming_the_file(
    tmp_path_factory, seed, mutation, encoding, where, junk, paragraphs
):
    from vega_toolkit.cli.preprocess import main as preprocess

    tmp = tmp_path_factory.mktemp("pp")
    text = _corpus(random.Random(seed)).replace("cat", "caf\u00e9 \u201ccat\u201d", 3)
    data = text.encode("utf-8")
    if mutation == "cut":
        data = data[: int(len(data) * where)]
    elif mutation == "encoding":
        data = text.encode(encoding, errors="replace")
    else:
        at = int(len(data) * where)
        data = data[:at] + junk + data[at:]
    path = tmp / "input.txt"
    path.write_bytes(data)
    argv = [str(path), "--destdir", str(tmp / "bin"), "--vocab-size", "40", "--workers", "1"]
    try:
        out = preprocess(argv + (["--paragraphs"] if paragraphs else []))
    except (ValueError, FileNotFoundError) as err:  # what vega-preprocess's CLI prints as a one-line message
        assert str(path) in str(err), str(err)
        return
    symbols = (out / "dict.txt").read_text(encoding="utf-8")
    assert not any(0x80 <= ord(c) < 0xA0 or c == "\0" for c in symbols)  # no control characters in the vocabulary
    from test_preprocess import decoded

    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert not set(train) & set(valid)  # valid never copies a train unit
