"""vega-generate: the 11 leaderboard files (row counts, label strings, STS-B clipping), the zip, dev scoring,
and the Python predictor for fine-tuned checkpoints."""

import os
import zipfile

import pytest
import torch
from glue_helpers import FIXTURES, build_glue, make_vocab_dir, save_glue_checkpoint, vega_cli
from test_glue_readers import OFFICIAL_ROWS

from vega_toolkit.cli.generate import generate, write_submission_file
from vega_toolkit.data.glue_tasks import GLUE_TASKS
from vega_toolkit.models.glue_predictor import GluePredictor
from vega_toolkit.models.heads import HeadMismatchError

TRAINED = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]
VALID = {
    "CoLA.tsv": {"0", "1"},
    "SST-2.tsv": {"0", "1"},
    "MRPC.tsv": {"0", "1"},
    "QQP.tsv": {"0", "1"},
    "WNLI.tsv": {"0", "1"},
    "QNLI.tsv": {"entailment", "not_entailment"},
    "RTE.tsv": {"entailment", "not_entailment"},
    "MNLI-m.tsv": {"entailment", "neutral", "contradiction"},
    "MNLI-mm.tsv": {"entailment", "neutral", "contradiction"},
    "AX.tsv": {"entailment", "neutral", "contradiction"},
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One untrained-but-real `glue` checkpoint per task (fairseq layout, task config inside)."""
    root = tmp_path_factory.mktemp("glue_ckpts")
    vocab = make_vocab_dir(str(root / "vocab"))
    paths = {}
    for task in TRAINED:
        torch.manual_seed(0)
        extra = ["--criterion", "glue_prediction", "--classification-head-name", task.lower() + "_head"]
        extra += ["--regression-target"] if task == "STS-B" else []
        cfg, _, model, _ = build_glue(task, vocab, str(root / "cache"), extra)
        if task == "STS-B":  # push predictions outside [0, 5] to exercise the clipping
            torch.nn.init.constant_(model.classification_heads["sts-b_head"].out_proj.bias, 7.0)
        paths[task] = save_glue_checkpoint(str(root / f"{task}.pt"), cfg, model)
    return paths


def _glue_dir(tmp_path):
    """Real files from VEGA_GLUE_DIR where present (MNLI and QQP are not shared: fixtures), else all fixtures."""
    real = os.environ.get("VEGA_GLUE_DIR")
    merged = tmp_path / "glue"
    merged.mkdir()
    for task in GLUE_TASKS.values():
        source = (
            os.path.join(real, task.folder)
            if real and os.path.isdir(os.path.join(real, task.folder))
            else os.path.join(FIXTURES, task.folder)
        )
        if not os.path.exists(merged / task.folder):
            os.symlink(source, merged / task.folder)
    return str(merged), real


def _expected_rows(real, file_name):
    task = next(t for t in GLUE_TASKS.values() if file_name in t.submission.values())
    split = next(s for s, f in task.submission.items() if f == file_name)
    if real and os.path.isdir(os.path.join(real, task.folder)):
        return OFFICIAL_ROWS[(task.name, split)]
    return 12  # rows of every fixture test file


def test_all_eleven_files_with_test_row_counts_valid_labels_and_a_flat_zip(checkpoints, tmp_path):
    glue_dir, real = _glue_dir(tmp_path)
    out = tmp_path / "submission"
    # allow_partial: MNLI and QQP (not shared) come from the 12-row fixtures
    result = generate(
        [checkpoints[t] for t in TRAINED],
        glue_dir,
        str(out),
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
        out=open(os.devnull, "w"),
        allow_partial=True,
    )
    expected = {f for t in GLUE_TASKS.values() for f in t.submission.values()}
    assert set(result["written"]) == expected and result["missing"] == []
    for name in expected:
        with open(out / name, encoding="utf-8") as f:
            lines = f.read().splitlines()
        assert lines[0] == "index\tprediction"
        rows = [line.split("\t") for line in lines[1:]]
        assert len(rows) == _expected_rows(real, name), name
        assert [r[0] for r in rows] == [str(i) for i in range(len(rows))]  # GLUE test indices are 0..n-1
        if name == "STS-B.tsv":
            assert all(r[1] == "5.000" for r in rows)  # clipped to [0, 5], 3 decimals
        else:
            assert {r[1] for r in rows} <= VALID[name], name
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert sorted(zf.namelist()) == sorted(expected)


def test_dev_scoring_prints_each_dev_set_and_ends_with_the_metric(checkpoints, tmp_path, capsys):
    import sys

    result = generate(
        [checkpoints["MNLI"]],
        FIXTURES,
        str(tmp_path / "out"),
        dev=True,
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
        out=sys.stdout,
        allow_partial=True,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("dev MNLI dev_matched accuracy=") for line in lines)
    assert any(line.startswith("dev MNLI dev_mismatched accuracy=") for line in lines)
    assert lines[-1].startswith("dev accuracy=")
    assert set(result["dev"]) == {"MNLI"} and 0 <= result["glue_score"] <= 100


def test_predictor_labels_raw_pairs_like_the_submission_path(checkpoints):
    clf = GluePredictor.from_checkpoint(checkpoints["RTE"], glue_dir=FIXTURES, device="cpu")
    labels = clf.predict([("the cat sees the house .", "a dog likes music ."), ("she builds a red ball .", "he")])
    assert len(labels) == 2 and set(labels) <= {"entailment", "not_entailment"}
    stsb = GluePredictor.from_checkpoint(checkpoints["STS-B"], glue_dir=FIXTURES, device="cpu")
    assert stsb.predict([("a b", "c d")]) == ["5.000"]


def test_logits_decode_to_table_labels_and_clipped_stsb_scores_everywhere():
    """One decoding for submission files, pseudo-labels and dev scores (vega_toolkit/models/glue_predictor.py)."""
    import torch

    from vega_toolkit.adaptation.rounds import RoundPredictions
    from vega_toolkit.data.glue_tasks import get_glue_task
    from vega_toolkit.models.glue_predictor import decode_labels

    mnli, stsb = get_glue_task("MNLI"), get_glue_task("STS-B")
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    assert decode_labels(mnli, logits) == [mnli.labels[1], mnli.labels[0]]
    assert decode_labels(stsb, torch.tensor([[-0.5], [2.34567], [7.0]])) == ["0.000", "2.346", "5.000"]
    assert RoundPredictions.from_logits(mnli, logits).labels == decode_labels(mnli, logits)
    assert RoundPredictions.from_logits(stsb, torch.tensor([[7.0]])).labels == ["5.000"]


def test_predictions_do_not_depend_on_batching_or_length_sorting(checkpoints, tmp_path):
    clf = GluePredictor.from_checkpoint(
        checkpoints["MNLI"], glue_dir=FIXTURES, device="cpu", cache_dir=str(tmp_path / "cache")
    )
    encoded = clf.task.encoded_split("valid")
    big = clf.logits_for(encoded, max_tokens=100000)
    one_by_one = clf.logits_for(encoded, max_tokens=1)
    assert torch.allclose(big, one_by_one, atol=1e-5)


def test_bad_inputs_give_clear_errors(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="2 predictions for 3 test rows"):
        write_submission_file(str(tmp_path / "x.tsv"), ["0", "1", "2"], ["0", "1"])
    with pytest.raises(ValueError, match="two checkpoints for RTE"):
        generate(
            [checkpoints["RTE"], checkpoints["RTE"]],
            FIXTURES,
            str(tmp_path / "o"),
            device="cpu",
            cache_dir=str(tmp_path / "cache"),
            out=open(os.devnull, "w"),
            allow_partial=True,
        )


def test_hub_interface_loads_a_fine_tuned_checkpoint_and_agrees_with_the_predictor(checkpoints, tmp_path):
    import shutil

    from vega_toolkit import VegaModel

    folder = tmp_path / "rte_run"
    folder.mkdir()
    shutil.copyfile(checkpoints["RTE"], folder / "checkpoint_best.pt")
    clf = GluePredictor.from_checkpoint(checkpoints["RTE"], glue_dir=FIXTURES, device="cpu")
    # the glue task reads no data at load time; data_name_or_path points the hub at the model folder's spm.model
    hub = VegaModel.from_pretrained(
        str(folder), checkpoint_file="checkpoint_best.pt", data_name_or_path=clf.task.cfg.vocab_dir
    )
    a, b = "the cat sees the house quickly .", "a dog likes music ."
    tokens = hub.encode(a, b)
    enc = clf.task.encoder
    expected = torch.cat(
        [
            torch.tensor([enc.bos]),
            torch.from_numpy(enc.encode([a])[0]),
            torch.tensor([enc.eos]),
            torch.from_numpy(enc.encode([b])[0]),
            torch.tensor([enc.eos]),
        ]
    )
    assert torch.equal(tokens, expected)  # one token layout: <s> a </s> b </s>
    label = ["entailment", "not_entailment"][hub.predict("rte_head", tokens).argmax().item()]
    assert clf.predict([(a, b)]) == [label]


def _task_copy(tmp_path, task, real=True):
    """A writable copy of one task folder (the real one from VEGA_GLUE_DIR when there, else the fixture), inside a
    GLUE root of its own: returns (root, task folder)."""
    import shutil

    glue_dir = os.environ.get("VEGA_GLUE_DIR")
    source = (
        os.path.join(glue_dir, task)
        if real and glue_dir and os.path.isdir(os.path.join(glue_dir, task))
        else os.path.join(FIXTURES, task)
    )
    root = tmp_path / "glue"
    shutil.copytree(source, root / task)
    return root, root / task


def _generate_cli(checkpoint, glue_dir, tmp_path, *extra):
    return vega_cli(
        "generate",
        [
            checkpoint,
            "--glue-dir",
            str(glue_dir),
            "--out-dir",
            str(tmp_path / "out"),
            "--cpu",
            "--glue-cache-dir",
            str(tmp_path / "cache"),
            *extra,
        ],
    )


@pytest.mark.slow
def test_a_test_file_cut_mid_row_is_an_error_naming_it_unless_allow_partial(checkpoints, tmp_path):
    root, folder = _task_copy(tmp_path, "SST-2")
    test = folder / "test.tsv"
    data = test.read_bytes()
    # a download cut short: real SST-2 test.tsv at 60,013 bytes parses as 563 rows, the last one cut short
    test.write_bytes(data[:60013] if len(data) > 60013 else data[: len(data) // 2])
    rows = len(test.read_text().splitlines()) - 1
    r = _generate_cli(checkpoints["SST-2"], root, tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{test}: {rows} rows, but the official SST-2 test set has 1821" in r.stderr
    assert "--allow-partial" in r.stderr
    assert not (tmp_path / "out" / "SST-2.tsv").exists()
    r = _generate_cli(checkpoints["SST-2"], root, tmp_path, "--allow-partial")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((tmp_path / "out" / "SST-2.tsv").read_text().splitlines()) == rows + 1


def _with_head(checkpoint, tmp_path, edit):
    """A copy of `checkpoint` whose model state dict went through `edit`."""
    state = torch.load(checkpoint, weights_only=False)
    edit(state["model"])
    path = str(tmp_path / ("edited_" + os.path.basename(checkpoint)))
    torch.save(state, path)
    return path


@pytest.mark.slow
def test_a_classification_head_of_the_wrong_size_is_an_error_naming_checkpoint_head_and_sizes(checkpoints, tmp_path):
    def three_outputs(model):  # RTE has 2 classes; a 3-output head (e.g. an MNLI head under RTE's name)
        model["classification_heads.rte_head.out_proj.weight"] = torch.zeros(
            3, model["classification_heads.rte_head.out_proj.weight"].shape[1]
        )
        model["classification_heads.rte_head.out_proj.bias"] = torch.zeros(3)

    path = _with_head(checkpoints["RTE"], tmp_path, three_outputs)
    r = _generate_cli(path, FIXTURES, tmp_path, "--allow-partial")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{path}: classification head 'rte_head' has 3 outputs, but --glue-task RTE needs 2" in r.stderr
    from vega_toolkit import VegaModel

    folder = tmp_path / "hub"
    folder.mkdir()
    os.replace(path, folder / "checkpoint_best.pt")
    hub = VegaModel.from_pretrained(
        str(folder),
        checkpoint_file="checkpoint_best.pt",
        data_name_or_path=os.path.dirname(checkpoints["RTE"]) + "/vocab",
    )
    with pytest.raises(HeadMismatchError, match=r"checkpoint_best.pt: classification head 'rte_head' has 3 outputs"):
        hub.predict("rte_head", hub.encode("a b", "c d"))


def test_a_missing_classification_head_is_an_error_naming_the_head(checkpoints, tmp_path):
    def drop_head(model):
        for key in [k for k in model if k.startswith("classification_heads.")]:
            del model[key]

    path = _with_head(checkpoints["SST-2"], tmp_path, drop_head)
    with pytest.raises(
        HeadMismatchError,
        match=r"no classification head 'sst-2_head', which --glue-task SST-2 needs "
        r"with 2 outputs \(heads in the checkpoint: none\)",
    ):
        GluePredictor.from_checkpoint(path, glue_dir=FIXTURES, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["root", "task_folder"])
def test_a_missing_test_file_is_named_by_its_own_path(checkpoints, tmp_path, layout):
    root, folder = _task_copy(tmp_path, "SST-2", real=False)
    (folder / "test.tsv").unlink()
    r = _generate_cli(checkpoints["SST-2"], root if layout == "root" else folder, tmp_path, "--allow-partial")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{folder / 'test.tsv'}: missing SST-2 test file" in r.stderr and "SST-2/SST-2" not in r.stderr
