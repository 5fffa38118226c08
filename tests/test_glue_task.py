"""The `glue` task: encoding ([CLS] a [SEP] b [SEP], truncation), the encode-once cache, labels from the task
table, MNLI's two dev sets, flag errors, and the MNLI -> RTE intermediate-task start."""

import glob
import os
import re

import numpy as np
import pytest
from glue_helpers import FIXTURES, build_glue, checkpoints, glue_train_args, make_vocab_dir, vega_train

from vega_toolkit.data.glue_binarize import TextEncoder, load_encoded_split, pair_tokens, truncate_pair
from vega_toolkit.data.glue_readers import read_glue_split


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    return make_vocab_dir(str(tmp_path_factory.mktemp("vocab")))


def _build(vocab_dir, tmp_path, task, extra=()):
    return build_glue(task, vocab_dir, str(tmp_path / "cache"), ["--criterion", "glue_prediction", *extra])


@pytest.mark.parametrize("la,lb,budget", [(3, 4, 10), (10, 2, 6), (2, 10, 6), (5, 5, 7), (8, 6, 9), (0, 9, 4)])
def test_truncation_is_longest_first_like_hf(la, lb, budget):
    a, b = list(range(la)), list(range(lb))
    # reference: HF truncate_sequences(strategy="longest_first") removes one token at a time from the longer
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    assert truncate_pair(la, lb, budget) == (len(a), len(b))


def test_pair_layout_is_cls_a_sep_b_sep_and_fits_max_positions():
    a, b = np.arange(10, 30), np.arange(40, 45)
    t = pair_tokens(a, b, bos=0, eos=2, max_positions=16).tolist()
    assert len(t) == 16 and t[0] == 0 and t[-1] == 2
    sep = t.index(2)
    assert t[1:sep] == list(range(10, 10 + sep - 1)) and t[sep + 1 : -1] == list(range(40, 45))
    assert pair_tokens(a, None, 0, 2, 8).tolist() == [0, 10, 11, 12, 13, 14, 15, 2]


def test_encoding_matches_sentencepiece_pieces_looked_up_in_the_dictionary(vocab_dir):
    enc = TextEncoder.from_model_dir(vocab_dir)
    text = read_glue_split(FIXTURES, "RTE", "dev")[0].text_a
    expected = [enc.dictionary.index(p) for p in enc.sp.encode(text, out_type=str)]
    assert enc.encode([text])[0].tolist() == expected
    assert enc.dictionary.unk() not in expected


def test_split_is_encoded_once_and_reencoded_when_the_file_changes(vocab_dir, tmp_path):
    enc = TextEncoder.from_model_dir(vocab_dir)
    src = tmp_path / "dev.tsv"
    src.write_text(open(os.path.join(FIXTURES, "RTE", "dev.tsv")).read())
    cache = tmp_path / "cache"
    first = load_encoded_split(str(src), "RTE", "dev", enc, str(cache))
    files = glob.glob(str(cache / "*.pt"))
    assert len(files) == 1
    enc.encode = None  # a cache hit must not tokenise again
    second = load_encoded_split(str(src), "RTE", "dev", enc, str(cache))
    assert all(np.array_equal(x, y) for x, y in zip(first.b, second.b, strict=True)) and first.labels == second.labels
    src.write_text(src.read_text().replace("\tentailment\n", "\tnot_entailment\n", 1))
    with pytest.raises(TypeError):  # changed file -> cache miss -> tokenises (here: the disabled encoder)
        load_encoded_split(str(src), "RTE", "dev", enc, str(cache))


def test_labels_follow_the_task_table_and_batches_carry_them(vocab_dir, tmp_path):
    _, task, _, _ = _build(vocab_dir, tmp_path, "MNLI")
    assert task.cfg.num_classes == 3
    task.load_dataset("valid")
    rows = read_glue_split(FIXTURES, "MNLI", "dev_matched")
    dataset = task.datasets["valid"]
    item = dataset[0]
    example = rows[item["id"]]
    assert ["entailment", "neutral", "contradiction"][int(item["target"])] == example.label
    assert item["net_input.src_tokens"][0] == task.source_dictionary.bos()


def test_mnli_has_matched_and_mismatched_dev_and_test_splits(vocab_dir, tmp_path):
    _, task, _, _ = _build(vocab_dir, tmp_path, "MNLI")
    sizes = {s: len(task.load_dataset(s)) for s in ("valid", "valid1", "test", "test1")}
    assert sizes == {"valid": 16, "valid1": 16, "test": 12, "test1": 12}
    assert "target" not in task.datasets["test"][0]
    with pytest.raises(KeyError, match="no split 'valid2'"):
        task.load_dataset("valid2")


def test_stsb_regression_targets_are_the_raw_scores(vocab_dir, tmp_path):
    _, task, model, _ = _build(vocab_dir, tmp_path, "STS-B", ["--regression-target"])
    task.load_dataset("train")
    item = task.datasets["train"][0]
    assert float(read_glue_split(FIXTURES, "STS-B", "train")[item["id"]].label) == pytest.approx(item["target"])
    assert model.classification_heads["sentence_classification_head"].out_proj.out_features == 1


def test_flag_mistakes_are_reported_by_flag_name(vocab_dir, tmp_path):
    with pytest.raises(ValueError, match="regression task: pass --regression-target"):
        _build(vocab_dir, tmp_path, "STS-B")
    with pytest.raises(ValueError, match="drop --regression-target"):
        _build(vocab_dir, tmp_path, "RTE", ["--regression-target"])
    with pytest.raises(ValueError, match="--num-classes 3 contradicts"):
        _build(vocab_dir, tmp_path, "RTE", ["--num-classes", "3"])
    with pytest.raises(FileNotFoundError, match="--vocab-dir"):
        _build(str(tmp_path), tmp_path, "RTE")


@pytest.mark.slow
def test_criterion_reports_the_metric_of_the_task(vocab_dir, tmp_path):
    assert _build(vocab_dir, tmp_path, "CoLA")[3].report_mcc
    assert _build(vocab_dir, tmp_path, "QQP")[3].report_acc_and_f1
    assert _build(vocab_dir, tmp_path, "STS-B", ["--regression-target"])[3].report_pearson_and_spearman
    assert not _build(vocab_dir, tmp_path, "SST-2")[3].keep_pred_and_targ


@pytest.fixture(scope="module")
def mnli_run(vocab_dir, tmp_path_factory):
    """A real MNLI fine-tuning run (one epoch on the fixture, head `mnli_head` with 3 outputs): its save dir."""
    mnli = str(tmp_path_factory.mktemp("mnli"))
    r = vega_train(
        glue_train_args(
            "MNLI",
            os.path.join(FIXTURES, "MNLI"),
            vocab_dir,
            mnli,
            str(tmp_path_factory.mktemp("cache")),
            ["--criterion", "glue_prediction", "--classification-head-name", "mnli_head", "--no-epoch-checkpoints"],
        )
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return mnli


def _rte_from_mnli(vocab_dir, mnli, save_dir, cache, *extra):
    return glue_train_args(
        "RTE",
        os.path.join(FIXTURES, "RTE"),
        vocab_dir,
        save_dir,
        cache,
        [
            "--criterion",
            "glue_prediction",
            "--classification-head-name",
            "rte_head",
            "--finetune-from-model",
            os.path.join(mnli, "checkpoint_best.pt"),
            "--no-epoch-checkpoints",
            *extra,
        ],
    )


@pytest.mark.slow
def test_rte_starts_from_mnli_encoder_with_a_fresh_head_and_requeue_resumes(vocab_dir, mnli_run, tmp_path):
    cache = str(tmp_path / "cache")
    mnli = mnli_run
    rte = str(tmp_path / "rte")
    args = _rte_from_mnli(vocab_dir, mnli, rte, cache)
    r = vega_train(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"dropping .*'mnli_head'", r.stderr)  # the model's upgrade dropped the MNLI head
    assert f"Loaded checkpoint {os.path.join(mnli, 'checkpoint_best.pt')}" in r.stderr
    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu

    mnli_state = load_checkpoint_to_cpu(os.path.join(mnli, "checkpoint_best.pt"))["model"]
    rte_state = load_checkpoint_to_cpu(os.path.join(rte, "checkpoint_last.pt"))["model"]
    assert not any(k.startswith("classification_heads.mnli_head") for k in rte_state)
    assert rte_state["classification_heads.rte_head.out_proj.weight"].shape[0] == 2
    # a second launch (SLURM requeue) resumes RTE's own checkpoint, not MNLI's
    r = vega_train([*args[: args.index("--max-epoch")], "--max-epoch", "2", *args[args.index("--max-epoch") + 2 :]])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Loaded checkpoint {os.path.join(rte, 'checkpoint_last.pt')}" in r.stderr
    encoder_keys = [k for k in mnli_state if k.startswith("encoder.")]
    assert encoder_keys and all(k in rte_state for k in encoder_keys)
    assert checkpoints(rte)


@pytest.mark.slow
def test_a_truncated_checkpoint_last_of_a_fine_tuning_run_resumes_from_its_newest_readable_checkpoint(
    vocab_dir, mnli_run, tmp_path
):
    rte, cache = str(tmp_path / "rte"), str(tmp_path / "cache")
    r = vega_train(_rte_from_mnli(vocab_dir, mnli_run, rte, cache, "--save-interval-updates", "2", "--max-update", "4"))
    assert r.returncode == 0, r.stderr[-3000:]
    last = os.path.join(rte, "checkpoint_last.pt")
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) // 2)
    # the same command (--finetune-from-model included, which rules out the old --restore-file advice), one more update
    r = vega_train(_rte_from_mnli(vocab_dir, mnli_run, rte, cache, "--save-interval-updates", "2", "--max-update", "5"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{last} is truncated or corrupt" in r.stderr
    assert f"Loaded checkpoint {last} (epoch 1 @ 4 updates)" in r.stderr  # not restarted from MNLI at update 0
    assert glob.glob(last + ".broken-*")


@pytest.mark.slow
def test_restoring_a_checkpoint_whose_head_has_another_size_names_the_head_and_the_flag(vocab_dir, mnli_run, tmp_path):
    restore = os.path.join(mnli_run, "checkpoint_last.pt")
    args = glue_train_args(
        "RTE",
        os.path.join(FIXTURES, "RTE"),
        vocab_dir,
        str(tmp_path / "rte"),
        str(tmp_path / "cache"),
        ["--criterion", "glue_prediction", "--classification-head-name", "rte_head", "--restore-file", restore],
    )
    r = vega_train(args)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert (
        f"--restore-file {restore}: its classification head 'mnli_head' has 3 outputs, but --glue-task RTE "
        f"trains 'rte_head' with 2"
    ) in r.stderr
    assert f"--finetune-from-model {restore}" in r.stderr


@pytest.mark.slow
def test_a_test_file_without_rows_stops_training_at_its_start(vocab_dir, tmp_path):
    import shutil

    data = tmp_path / "SST-2"
    shutil.copytree(os.path.join(FIXTURES, "SST-2"), data)
    test = data / "test.tsv"
    test.write_text(test.read_text().splitlines()[0] + "\n")  # header only
    save = tmp_path / "save"
    r = vega_train(
        glue_train_args(
            "SST-2", str(data), vocab_dir, str(save), str(tmp_path / "cache"), ["--criterion", "glue_prediction"]
        )
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{test}: no data rows for SST-2 test" in r.stderr
    assert not glob.glob(str(save / "*.pt"))  # stopped before any training, not after the whole run


def test_a_corrupt_cache_file_is_named_and_rebuilt(vocab_dir, tmp_path, caplog):
    enc = TextEncoder.from_model_dir(vocab_dir)
    src = os.path.join(FIXTURES, "RTE", "dev.tsv")
    cache = tmp_path / "cache"
    first = load_encoded_split(src, "RTE", "dev", enc, str(cache))
    (cache_file,) = glob.glob(str(cache / "*.pt"))
    with open(cache_file, "r+b") as f:
        f.truncate(100)
    again = load_encoded_split(src, "RTE", "dev", enc, str(cache))
    assert f"GLUE cache file {cache_file} is unreadable" in caplog.text
    assert again.indices == first.indices and all(np.array_equal(x, y) for x, y in zip(again.a, first.a, strict=True))
    caplog.clear()
    load_encoded_split(src, "RTE", "dev", enc, str(cache))  # rewritten: a clean hit now
    assert "unreadable" not in caplog.text
