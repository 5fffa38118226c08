"""vega-generate: the 11 leaderboard files (row counts, label strings, STS-B clipping), the zip, dev scoring,
and the Python predictor for fine-tuned checkpoints."""
import os
import zipfile

import pytest
import torch

from glue_helpers import FIXTURES, build_glue, make_vocab_dir, save_glue_checkpoint
from test_glue_readers import OFFICIAL_ROWS
from vega_toolkit.cli.generate import GluePredictor, generate, write_submission_file
from vega_toolkit.data.glue_tasks import GLUE_TASKS

TRAINED = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]
VALID = {"CoLA.tsv": {"0", "1"}, "SST-2.tsv": {"0", "1"}, "MRPC.tsv": {"0", "1"}, "QQP.tsv": {"0", "1"},
         "WNLI.tsv": {"0", "1"}, "QNLI.tsv": {"entailment", "not_entailment"},
         "RTE.tsv": {"entailment", "not_entailment"}, "MNLI-m.tsv": {"entailment", "neutral", "contradiction"},
         "MNLI-mm.tsv": {"entailment", "neutral", "contradiction"}, "AX.tsv": {"entailment", "neutral", "contradiction"}}


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
        source = os.path.join(real, task.folder) if real and os.path.isdir(os.path.join(real, task.folder)) else \
            os.path.join(FIXTURES, task.folder)
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
    result = generate([checkpoints[t] for t in TRAINED], glue_dir, str(out), cache_dir=str(tmp_path / "cache"),
                      device="cpu", out=open(os.devnull, "w"))
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

    result = generate([checkpoints["MNLI"]], FIXTURES, str(tmp_path / "out"), dev=True,
                      cache_dir=str(tmp_path / "cache"), device="cpu", out=sys.stdout)
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


def test_predictions_do_not_depend_on_batching_or_length_sorting(checkpoints, tmp_path):
    clf = GluePredictor.from_checkpoint(checkpoints["MNLI"], glue_dir=FIXTURES, device="cpu",
                                        cache_dir=str(tmp_path / "cache"))
    encoded = clf.task.encoded_split("valid")
    big = clf.logits_for(encoded, max_tokens=100000)
    one_by_one = clf.logits_for(encoded, max_tokens=1)
    assert torch.allclose(big, one_by_one, atol=1e-5)


def test_bad_inputs_give_clear_errors(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="2 predictions for 3 test rows"):
        write_submission_file(str(tmp_path / "x.tsv"), ["0", "1", "2"], ["0", "1"])
    with pytest.raises(ValueError, match="two checkpoints for RTE"):
        generate([checkpoints["RTE"], checkpoints["RTE"]], FIXTURES, str(tmp_path / "o"), device="cpu",
                 cache_dir=str(tmp_path / "cache"), out=open(os.devnull, "w"))


def test_hub_interface_loads_a_fine_tuned_checkpoint_and_agrees_with_the_predictor(checkpoints, tmp_path):
    import shutil

    from vega_toolkit import VegaModel

    folder = tmp_path / "rte_run"
    folder.mkdir()
    shutil.copyfile(checkpoints["RTE"], folder / "checkpoint_best.pt")
    clf = GluePredictor.from_checkpoint(checkpoints["RTE"], glue_dir=FIXTURES, device="cpu")
    # the glue task reads no data at load time; data_name_or_path points the hub at the model folder's spm.model
    hub = VegaModel.from_pretrained(str(folder), checkpoint_file="checkpoint_best.pt",
                                    data_name_or_path=clf.task.cfg.vocab_dir)
    a, b = "the cat sees the house quickly .", "a dog likes music ."
    tokens = hub.encode(a, b)
    enc = clf.task.encoder
    expected = torch.cat([torch.tensor([enc.bos]), torch.from_numpy(enc.encode([a])[0]), torch.tensor([enc.eos]),
                          torch.from_numpy(enc.encode([b])[0]), torch.tensor([enc.eos])])
    assert torch.equal(tokens, expected)  # one token layout: <s> a </s> b </s>
    label = ["entailment", "not_entailment"][hub.predict("rte_head", tokens).argmax().item()]
    assert clf.predict([(a, b)]) == [label]
