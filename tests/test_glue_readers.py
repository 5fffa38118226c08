"""GLUE readers: official layouts (fixtures and, with VEGA_GLUE_DIR, the real files) and file:line errors."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vega_toolkit.data.glue_readers import GlueFormatError, read_glue_file, read_glue_split
from vega_toolkit.data.glue_tasks import GLUE_TASKS, get_glue_task

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "glue")
ALL_SPLITS = [(t.name, s) for t in GLUE_TASKS.values() for s in t.splits]

# Official data-row counts (huggingface/datasets glue card; ../shared/glue/SOURCES.md), written out here rather
# than read from the task table so that a wrong table entry fails this test.
OFFICIAL_ROWS = {
    ("CoLA", "train"): 8551,
    ("CoLA", "dev"): 1043,
    ("CoLA", "test"): 1063,
    ("SST-2", "train"): 67349,
    ("SST-2", "dev"): 872,
    ("SST-2", "test"): 1821,
    ("MRPC", "train"): 3668,
    ("MRPC", "dev"): 408,
    ("MRPC", "test"): 1725,
    ("STS-B", "train"): 5749,
    ("STS-B", "dev"): 1500,
    ("STS-B", "test"): 1379,
    ("QQP", "train"): 363846,
    ("QQP", "dev"): 40430,
    ("QQP", "test"): 390965,
    ("MNLI", "train"): 392702,
    ("MNLI", "dev_matched"): 9815,
    ("MNLI", "dev_mismatched"): 9832,
    ("MNLI", "test_matched"): 9796,
    ("MNLI", "test_mismatched"): 9847,
    ("QNLI", "train"): 104743,
    ("QNLI", "dev"): 5463,
    ("QNLI", "test"): 5463,
    ("RTE", "train"): 2490,
    ("RTE", "dev"): 277,
    ("RTE", "test"): 3000,
    ("WNLI", "train"): 635,
    ("WNLI", "dev"): 71,
    ("WNLI", "test"): 146,
    ("AX", "test"): 1104,
}


def test_task_table_row_counts_are_the_official_ones():
    assert {(t.name, s): spec.rows for t in GLUE_TASKS.values() for s, spec in t.splits.items()} == OFFICIAL_ROWS


@pytest.mark.parametrize("task,split", ALL_SPLITS)
def test_every_fixture_split_loads_with_text_and_labels_where_expected(task, split):
    t = get_glue_task(task)
    examples = read_glue_split(FIXTURES, task, split)
    assert len(examples) > 0
    for ex in examples:
        assert ex.text_a.strip()
        assert (ex.text_b is not None) == t.is_pair
        if t.splits[split].label_column is None:
            assert ex.label is None
        elif t.is_regression:
            assert 0.0 <= float(ex.label) <= 5.0
        else:
            assert ex.label in t.labels


@pytest.mark.skipif(not os.environ.get("VEGA_GLUE_DIR"), reason="set VEGA_GLUE_DIR to the real glue_data folder")
@pytest.mark.parametrize("task,split", ALL_SPLITS)
def test_real_glue_file_has_the_official_row_count(task, split):
    glue_dir = os.environ["VEGA_GLUE_DIR"]
    t = get_glue_task(task)
    path = os.path.join(glue_dir, t.folder, t.splits[split].file)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present (MNLI, QQP and QNLI train are not in ../shared/glue)")
    assert len(read_glue_file(path, t, split)) == OFFICIAL_ROWS[(task, split)]


@pytest.mark.skipif(not os.environ.get("VEGA_GLUE_DIR"), reason="set VEGA_GLUE_DIR to the real glue_data folder")
def test_real_files_keep_their_quirks_bom_stray_quotes_and_test_indices():
    glue_dir = os.environ["VEGA_GLUE_DIR"]
    mrpc = read_glue_split(glue_dir, "MRPC", "train")
    assert mrpc[0].label == "1" and mrpc[0].text_a.startswith("Amrozi accused his brother")
    stsb_dev = read_glue_split(glue_dir, "STS-B", "dev")
    # quoting off: a stray quote neither merges lines nor is stripped
    assert sum('"' in ex.text_a + ex.text_b for ex in stsb_dev) > 0
    assert [ex.index for ex in read_glue_split(glue_dir, "RTE", "test")][:3] == ["0", "1", "2"]
    cola_dev = read_glue_split(glue_dir, "CoLA", "dev")  # no header, no final newline
    assert cola_dev[-1].line == 1043


def test_mrpc_bom_header_is_accepted_and_cola_dev_without_final_newline_keeps_last_row():
    assert read_glue_split(FIXTURES, "MRPC", "train")[0].line == 2
    with open(os.path.join(FIXTURES, "CoLA", "dev.tsv"), encoding="utf-8") as f:
        content = f.read()
    assert not content.endswith("\n")
    assert len(read_glue_split(FIXTURES, "CoLA", "dev")) == content.count("\n") + 1


def test_stsb_stray_quote_stays_inside_its_field():
    dev = read_glue_split(FIXTURES, "STS-B", "dev")
    assert all(ex.text_b.startswith('"') for ex in dev)


def _write(tmp_path, text, name="dev.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = _write(tmp_path, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\tentailment\n")
    with pytest.raises(GlueFormatError, match=rf"{path}:3: expected 4 tab-separated fields .* found 3"):
        read_glue_file(path, "RTE", "dev")


def test_unknown_label_names_file_and_line(tmp_path):
    path = _write(tmp_path, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n")
    with pytest.raises(GlueFormatError, match=rf"{path}:2: RTE label 'neutral'"):
        read_glue_file(path, "RTE", "dev")


def test_stsb_score_outside_zero_to_five_is_rejected(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    path = _write(tmp_path, header + "0\tg\tf\ty\t0\tn\tn\ta\tb\t5.5\n")
    with pytest.raises(GlueFormatError, match=rf"{path}:2: STS-B score '5.5' is outside"):
        read_glue_file(path, "STS-B", "dev")


def test_wrong_header_is_rejected_rather_than_read_as_data(tmp_path):
    path = _write(tmp_path, "sentence\tlabel\nfine film\t1\n")
    with pytest.raises(GlueFormatError, match=rf"{path}:1: expected the QNLI dev header"):
        read_glue_file(path, "QNLI", "dev")


def test_blank_line_inside_a_file_is_an_error_not_a_skipped_row(tmp_path):
    path = _write(tmp_path, "sentence\tlabel\ngood\t1\n\nbad\t0\n")
    with pytest.raises(GlueFormatError, match=rf"{path}:3: empty line"):
        read_glue_file(path, "SST-2", "dev")


def test_missing_file_error_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="SST-2 train"):
        read_glue_split(str(tmp_path), "SST-2", "train")


def test_unknown_task_and_split_names_are_rejected():
    with pytest.raises(KeyError, match="unknown GLUE task"):
        get_glue_task("SQuAD")
    with pytest.raises(KeyError, match="no split 'dev'"):
        read_glue_split(FIXTURES, "MNLI", "dev")


def test_task_names_are_case_and_dash_insensitive():
    assert get_glue_task("sst2") is get_glue_task("SST-2") is get_glue_task("sst-2")
    assert get_glue_task("diagnostic").name == "AX"


_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_row = st.lists(_cell, min_size=0, max_size=6).map("\t".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(_row, min_size=0, max_size=5),
    header=st.booleans(),
    task_split=st.sampled_from(
        [
            ("RTE", "dev"),
            ("STS-B", "train"),
            ("CoLA", "train"),
            ("MNLI", "test_matched"),
            ("QQP", "dev"),
            ("MRPC", "test"),
        ]
    ),
)
def test_arbitrary_input_either_parses_to_valid_examples_or_raises_a_located_error(tmp_path, rows, header, task_split):
    task, split = task_split
    t = get_glue_task(task)
    spec = t.splits[split]
    lines = (["\t".join(spec.header)] if header and spec.header else []) + rows
    path = _write(tmp_path, "\n".join(lines) + "\n", name="fuzz.tsv")
    try:
        examples = read_glue_file(path, t, split)
    except GlueFormatError as err:
        assert str(err).startswith(path)
        return
    # anything accepted is well formed and nothing was dropped: one example per non-header line
    assert len(examples) == len(rows)
    for ex in examples:
        assert ex.text_a.strip() and (ex.text_b is None or ex.text_b.strip())
        assert spec.label_column is None or t.is_regression or ex.label in t.labels
