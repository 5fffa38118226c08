"""vega-preprocess: text -> sentencepiece -> fairseq data-bin, checked against sentencepiece itself as the oracle."""

import os
import random
import re

import pytest
import sentencepiece as spm
from fairseq.data import Dictionary, data_utils

from vega_toolkit.cli.preprocess import main as preprocess
from vega_toolkit.demo.toy_data import paragraph


def decoded(data_bin, split):
    d = Dictionary.load(os.path.join(data_bin, "dict.txt"))
    ds = data_utils.load_indexed_dataset(os.path.join(data_bin, split), d)
    return d, [d.string(ds[i]) for i in range(len(ds))]  # string() drops the trailing </s>


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp")
    rng = random.Random(1)
    (root / "a.txt").write_text("".join(paragraph(rng) + "\n\n" for _ in range(150)))
    (root / "b.txt").write_text("".join(paragraph(rng) + "\n" for _ in range(150)))
    (root / "notes.md").write_text("not a .txt file: ignored when the directory is the input\n")
    return root


def test_data_bin_holds_exactly_the_sentencepiece_encoding_of_every_line(tiny_data_bin, corpus, tmp_path):
    out = preprocess(
        [
            str(corpus),
            "--destdir",
            str(tmp_path / "bin"),
            "--vocab-size",
            "200",
            "--workers",
            "1",
            "--valid-fraction",
            "0.1",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".vega-shard.json",
        "dict.txt",
        "preprocess.json",
        "spm.model",
        "train.bin",
        "train.idx",
        "valid.bin",
        "valid.idx",
    ]  # the data-bin, the plan it was made by, and the marker that says it is finished
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    lines = [
        line.strip() for name in ("a.txt", "b.txt") for line in (corpus / name).read_text().splitlines() if line.strip()
    ]
    d, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) + len(valid) == len(lines) == 300 and 10 <= len(valid) <= 55
    expected = sorted(" ".join(sp.encode(line, out_type=str)) for line in lines)
    assert sorted(train + valid) == expected  # no line lost, duplicated or mis-tokenised; no <unk>
    # every normal sentencepiece piece has its own id, after fairseq's 4 specials
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    assert d.symbols[d.nspecial :] == pieces
    assert d.count[d.index("▁the")] > 100  # real counts, for --replace-weighting frequency


def test_paragraphs_joins_hard_wrapped_lines_and_holds_out_whole_paragraphs(tmp_path):
    rng = random.Random(2)
    paragraphs = [paragraph(rng) for _ in range(120)]
    wrapped = []
    for text in paragraphs:  # Gutenberg style: ~40-character lines, a blank line (or several) between paragraphs
        words, line = text.split(), []
        for word in words:
            if sum(len(w) + 1 for w in line) + len(word) > 40:
                wrapped.append(" ".join(line))
                line = []
            line.append(word)
        wrapped += [" ".join(line), "", ""][: 2 + (len(wrapped) % 2)]
    (tmp_path / "book.txt").write_text("\n".join(wrapped).rstrip("\n"))  # the last paragraph ends the file
    out = preprocess(
        [
            str(tmp_path / "book.txt"),
            "--paragraphs",
            "--destdir",
            str(tmp_path / "bin"),
            "--vocab-size",
            "200",
            "--workers",
            "1",
            "--valid-fraction",
            "0.2",
        ]
    )
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) + len(valid) == 120 and 10 <= len(valid) <= 40
    assert sorted(train + valid) == sorted(" ".join(sp.encode(p, out_type=str)) for p in paragraphs)


def folder_bytes(folder):
    """Every file under `folder` (relative path -> bytes), the job logs left out."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "slurm" not in p.relative_to(folder).parts and p.name != "preprocess.json"
    }


def test_the_same_shards_byte_for_byte_whatever_the_number_of_workers(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("vega_toolkit.data.corpus_pipeline.CHUNK_BYTES", 700)  # many chunks: order across workers
    runs = {}
    for workers in (1, 3):
        runs[workers] = preprocess(
            [
                str(corpus),
                "--destdir",
                str(tmp_path / f"w{workers}"),
                "--vocab-size",
                "200",
                "--shards",
                "3",
                "--workers",
                str(workers),
                "--valid-fraction",
                "0.1",
            ]
        )
    one, three = folder_bytes(runs[1]), folder_bytes(runs[3])
    assert sorted(one) == sorted(three) and {"shard0/valid.bin", "shard2/train.bin", "dict.txt"} <= set(one)
    for name in one:
        assert one[name] == three[name], name


def test_existing_spm_model_and_dictionary_are_kept(corpus, tmp_path):
    first = preprocess([str(corpus), "--destdir", str(tmp_path / "a"), "--vocab-size", "200", "--workers", "1"])
    custom = tmp_path / "dict.txt"
    symbols = (first / "dict.txt").read_text().splitlines()
    custom.write_text("\n".join(reversed(symbols)) + "\n")  # a converted model's own order
    out = preprocess(
        [
            str(corpus / "b.txt"),
            "--destdir",
            str(tmp_path / "b"),
            "--spm-model",
            str(first / "spm.model"),
            "--srcdict",
            str(custom),
            "--workers",
            "1",
        ]
    )
    assert (out / "dict.txt").read_text() == custom.read_text()
    assert (out / "spm.model").read_bytes() == (first / "spm.model").read_bytes()


def test_latin1_files_are_read_and_strict_utf8_names_the_line(tmp_path):
    text = tmp_path / "old.txt"
    text.write_bytes("".join(f"line {i} caf\u00e9 cr\u00e8me\n" for i in range(40)).encode("latin-1"))
    out = preprocess([str(text), "--destdir", str(tmp_path / "bin"), "--vocab-size", "30", "--workers", "1"])
    _, train = decoded(out, "train")
    assert any("é" in line for line in train)
    with pytest.raises(ValueError, match=r"old\.txt:1 is not utf-8"):
        preprocess([str(text), "--destdir", str(tmp_path / "bin2"), "--vocab-size", "30", "--encoding", "utf-8"])


def test_bad_inputs_are_reported_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
        preprocess([str(tmp_path / "missing.txt"), "--destdir", str(tmp_path / "o"), "--vocab-size", "50"])
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no non-empty lines"):
        preprocess([str(tmp_path / "empty.txt"), "--destdir", str(tmp_path / "o"), "--vocab-size", "50"])
    with pytest.raises(FileNotFoundError, match="--spm-model"):
        preprocess([str(tmp_path / "empty.txt"), "--destdir", str(tmp_path / "o"), "--spm-model", "nope.model"])
    with pytest.raises(ValueError, match="--valid-fraction"):
        preprocess(
            [
                str(tmp_path / "empty.txt"),
                "--destdir",
                str(tmp_path / "o"),
                "--vocab-size",
                "50",
                "--valid-fraction",
                "1.5",
            ]
        )


def _preprocess_cli(tmp_path, *args):
    from glue_helpers import vega_cli

    args = [*map(str, args)]
    r = vega_cli(
        "preprocess",
        args + (["--destdir", str(tmp_path / "bin")] if "--destdir" not in args else []) + ["--workers", "1"],
    )
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_valid_never_shares_a_line_with_train_on_tiny_inputs(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("the first line of text .\nthe second line of text .\n")
    out = preprocess([str(two), "--destdir", str(tmp_path / "a"), "--vocab-size", "20", "--workers", "1"])
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) == len(valid) == 1 and not set(train) & set(valid)
    repeated = tmp_path / "repeated.txt"  # repeated lines (Gutenberg's "* * *"): no copy may land on both sides
    repeated.write_text("".join(f"line number {i} of a corpus .\n* * *\nCHAPTER {i % 3}\n" for i in range(100)))
    out = preprocess(
        [
            str(repeated),
            "--destdir",
            str(tmp_path / "r"),
            "--vocab-size",
            "60",
            "--workers",
            "1",
            "--valid-fraction",
            "0.1",
        ]
    )
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert valid and not set(train) & set(valid) and len(train) + len(valid) == 300
    one = tmp_path / "one.txt"
    one.write_text("a single line .\n")
    r = _preprocess_cli(tmp_path, one, "--vocab-size", "20")
    assert r.returncode != 0 and f"1 non-empty line in ['{one}']: too few to split into train and valid" in r.stderr


@pytest.mark.slow
def test_windows_1252_text_is_decoded_and_never_turned_into_control_characters(tmp_path):
    text = tmp_path / "win.txt"
    text.write_bytes("".join(f"\u201cquoted {i}\u201d \u2013 done\n" for i in range(40)).encode("cp1252"))
    out = preprocess([str(text), "--destdir", str(tmp_path / "a"), "--vocab-size", "30", "--workers", "1"])
    symbols = (out / "dict.txt").read_text(encoding="utf-8")
    assert not any(0x80 <= ord(c) < 0xA0 for c in symbols) and "\u201c" in symbols
    r = _preprocess_cli(tmp_path, text, "--vocab-size", "30", "--encoding", "latin-1")
    assert r.returncode != 0 and f"{text}:1 read as latin-1 gives the control character U+0093" in r.stderr
    assert "--encoding cp1252" in r.stderr


@pytest.mark.slow
def test_binary_and_over_long_inputs_are_refused_before_sentencepiece(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"some text\n" + bytes(random.Random(0).randrange(256) for _ in range(4000)) + b"\0\n")
    r = _preprocess_cli(tmp_path, binary, "--vocab-size", "30")
    assert r.returncode != 0 and f"{binary}:" in r.stderr and ("binary file" in r.stderr), r.stderr
    long = tmp_path / "long.txt"
    long.write_text("word " * 20000 + "\n" + "a short line .\n" * 5)
    r = _preprocess_cli(tmp_path, long, "--vocab-size", "30")
    assert r.returncode != 0 and f"{long}:1: a line of 99999 or more bytes, more than the 65536" in r.stderr
    r = _preprocess_cli(tmp_path, long, "--vocab-size", "30", "--paragraphs")
    assert r.returncode != 0 and "drop --paragraphs" in r.stderr


@pytest.mark.slow
def test_a_vocabulary_too_small_for_the_characters_names_the_inputs_and_the_flag(tmp_path):
    text = tmp_path / "chars.txt"
    text.write_text("".join(f"{chr(0x4E00 + i)} {chr(0x4E40 + i)} line {i}\n" for i in range(60)))
    r = _preprocess_cli(tmp_path, text, "--vocab-size", "20")
    assert r.returncode != 0 and f"sentencepiece cannot train on ['{text}'] with --vocab-size 20" in r.stderr


def test_streaming_index_writer_gives_the_bytes_of_fairseqs_own_builder(tmp_path):
    import numpy as np
    import torch
    from fairseq.data.indexed_dataset import MMapIndexedDatasetBuilder

    from vega_toolkit.data.mmap_writer import StreamingMMapBuilder

    rng = np.random.default_rng(0)
    items = [rng.integers(0, 60000, size=rng.integers(1, 40)).astype(np.uint16) for _ in range(300)]
    stock = MMapIndexedDatasetBuilder(str(tmp_path / "stock.bin"), dtype=np.uint16)
    for item in items:
        stock.add_item(torch.from_numpy(item.astype(np.int64)))
    stock.finalize(str(tmp_path / "stock.idx"))
    ours = StreamingMMapBuilder(str(tmp_path / "ours.bin"), dtype=np.uint16)
    for batch in (items[:1], items[1:250], items[250:]):  # batches of any size, one item included
        ours.add_items(np.concatenate(batch), np.array([len(i) for i in batch]))
    ours.finalize(str(tmp_path / "ours.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"ours.{ext}").read_bytes() == (tmp_path / f"stock.{ext}").read_bytes(), ext
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.bin", "ours.idx", "stock.bin", "stock.idx"]


def test_shards_partition_the_corpus_with_valid_only_in_the_first(corpus, tmp_path):
    from vega_toolkit.data.corpus_pipeline import Plan, unit_hash

    out = preprocess(
        [
            str(corpus),
            "--destdir",
            str(tmp_path / "bin"),
            "--vocab-size",
            "200",
            "--shards",
            "3",
            "--workers",
            "1",
            "--valid-fraction",
            "0.1",
            "--seed",
            "4",
        ]
    )
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    lines = [
        line.strip() for name in ("a.txt", "b.txt") for line in (corpus / name).read_text().splitlines() if line.strip()
    ]
    held_out = {line for line in lines if unit_hash(line, (4).to_bytes(8, "little")) < 0.1 * 2**64}
    encoded = {line: " ".join(sp.encode(line, out_type=str)) for line in lines}
    shards = [decoded(out / f"shard{k}", "train")[1] for k in range(3)]
    _, valid = decoded(out / "shard0", "valid")
    assert all(shards) and not any((out / f"shard{k}" / "valid.bin").exists() for k in (1, 2))
    # in corpus order, split into three contiguous runs; held-out text is never trained on
    assert shards[0] + shards[1] + shards[2] == [encoded[line] for line in lines if line not in held_out]
    plan = Plan.load(out)
    first = list(plan.corpus().units(*plan.ranges[0]))
    assert shards[0] == [encoded[line] for line in first if line not in held_out]
    assert valid and valid == [encoded[line] for line in first if line in held_out]
    assert all((out / f"shard{k}" / "dict.txt").read_bytes() == (out / "dict.txt").read_bytes() for k in range(3))
    d = Dictionary.load(str(out / "dict.txt"))
    the = d.index("▁the")
    expected = sum(sp.encode(line, out_type=str).count("▁the") for line in lines if line not in held_out)
    assert d.count[the] == expected  # dict.txt counts the encoded train data of every shard


@pytest.mark.slow
def test_pretraining_reads_one_shard_per_epoch_in_turn(corpus, tmp_path):
    from launch_helpers import pretrain_args, vega_train

    out = preprocess(
        [
            str(corpus),
            "--destdir",
            str(tmp_path / "bin"),
            "--vocab-size",
            "200",
            "--shards",
            "3",
            "--workers",
            "1",
            "--valid-fraction",
            "0.1",
        ]
    )
    log = vega_train(pretrain_args(out, tmp_path / "ckpt", 10_000, "--max-epoch", "4", "--tokens-per-sample", "32"))
    loaded = re.findall(r"loaded \d+ blocks from (\S+)/train", log)
    # fairseq loads the next epoch's shard as an epoch ends (the last one too)
    assert loaded[:4] == [str(out / f"shard{k}") for k in (0, 1, 2, 0)], loaded
    explicit = ":".join(str(out / f"shard{k}") for k in (2, 0))  # fairseq's own ':' list, in the order given
    log = vega_train(
        pretrain_args(explicit, tmp_path / "ckpt2", 10_000, "--max-epoch", "3", "--tokens-per-sample", "32")
    )
    assert re.findall(r"loaded \d+ blocks from (\S+)/train", log)[:3] == [str(out / f"shard{k}") for k in (2, 0, 2)]


def test_an_existing_data_bin_or_model_folder_is_refused_without_force(corpus, tmp_path):
    ours = preprocess([str(corpus), "--destdir", str(tmp_path / "ours"), "--vocab-size", "200", "--workers", "1"])
    foreign = tmp_path / "foreign"  # a data-bin another tool made: no plan of ours
    foreign.mkdir()
    for name in ("dict.txt", "train.bin", "train.idx"):
        (foreign / name).write_bytes((ours / name).read_bytes())
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"weights")
    refusals = {
        ours: "holds the shards of another preprocessing (differs in: --vocab-size 200 -> 120, the input "
        "files or their sizes)",
        foreign: "already holds dict.txt, train.bin, train.idx (a data-bin or model folder)",
        model: "already holds model.pt (a data-bin or model folder)",
    }
    for dest, message in refusals.items():
        before = folder_bytes(dest)
        with pytest.raises(ValueError, match=re.escape(f"--destdir {dest} {message}")) as refused:
            preprocess([str(corpus / "b.txt"), "--destdir", str(dest), "--vocab-size", "120", "--workers", "1"])
        assert "pass --force" in str(refused.value)
        assert folder_bytes(dest) == before  # nothing replaced
    out = preprocess(
        [str(corpus / "b.txt"), "--destdir", str(ours), "--vocab-size", "120", "--workers", "1", "--force"]
    )
    assert len(decoded(out, "train")[1]) + len(decoded(out, "valid")[1]) == 150


def test_a_folder_holding_only_its_tokenizer_is_completed_from_it_and_the_tokenizer_kept(corpus, tmp_path):
    # a committed study keeps only dict.txt and spm.model; its fresh checkout re-makes the binarized text beside them
    first = preprocess([str(corpus), "--destdir", str(tmp_path / "a"), "--vocab-size", "200", "--workers", "1"])
    made = folder_bytes(first)
    for p in first.iterdir():
        if p.name not in ("dict.txt", "spm.model"):
            p.unlink()
    tokenizer = folder_bytes(first)
    own = ["--spm-model", str(first / "spm.model"), "--srcdict", str(first / "dict.txt"), "--workers", "1"]
    again = preprocess([str(corpus), "--destdir", str(first), *own])
    after = folder_bytes(again)
    assert {n: after[n] for n in tokenizer} == tokenizer  # the tokenizer's bytes are kept
    assert {n: after[n] for n in ("train.bin", "train.idx", "valid.bin", "valid.idx")} == {
        n: made[n] for n in ("train.bin", "train.idx", "valid.bin", "valid.idx")
    }
    # another tokenizer named for a folder holding one is still refused
    other = tmp_path / "other"
    other.mkdir()
    for name in ("dict.txt", "spm.model"):
        (other / name).write_bytes((tmp_path / "a" / name).read_bytes())
    with pytest.raises(ValueError, match=re.escape(f"--destdir {other} already holds dict.txt, spm.model")):
        preprocess([str(corpus), "--destdir", str(other), *own])


def test_a_srcdict_not_built_from_the_spm_model_is_refused(corpus, tmp_path):
    a = preprocess([str(corpus), "--destdir", str(tmp_path / "a"), "--vocab-size", "200", "--workers", "1"])
    b = preprocess(
        [
            str(corpus / "b.txt"),
            "--destdir",
            str(tmp_path / "b"),
            "--vocab-size",
            "150",
            "--workers",
            "1",
            "--model-type",
            "bpe",
        ]
    )
    for srcdict, why in (
        (b / "dict.txt", "of its symbols are not pieces of the model"),
        (tmp_path / "short.txt", "pieces of the model are missing from it"),
    ):
        if srcdict.name == "short.txt":  # a's own dictionary with pieces cut off
            srcdict.write_text("".join((a / "dict.txt").read_text().splitlines(keepends=True)[:50]))
        with pytest.raises(
            ValueError,
            match=re.escape(f"--srcdict {srcdict} was not built from --spm-model {a / 'spm.model'}: ") + r"\d+ " + why,
        ):
            preprocess(
                [
                    str(corpus),
                    "--destdir",
                    str(tmp_path / "c"),
                    "--spm-model",
                    str(a / "spm.model"),
                    "--srcdict",
                    str(srcdict),
                    "--workers",
                    "1",
                ]
            )
    assert not (tmp_path / "c").exists()


def test_the_output_folder_may_not_be_or_hold_the_input(corpus, tmp_path):
    import shutil

    inputs = tmp_path / "text"
    shutil.copytree(corpus, inputs)
    with pytest.raises(ValueError, match=re.escape(f"--destdir {inputs} is the input {inputs} or holds it")):
        preprocess([str(inputs), "--vocab-size", "200", "--destdir", str(inputs)])
    with pytest.raises(ValueError, match=re.escape(f"--destdir {tmp_path} is the input {inputs / 'a.txt'} or holds")):
        preprocess([str(inputs / "a.txt"), "--vocab-size", "200", "--destdir", str(tmp_path)])
    assert sorted(p.name for p in inputs.iterdir()) == ["a.txt", "b.txt", "notes.md"]  # nothing written there


def test_a_broken_txt_link_in_an_input_folder_is_an_error_naming_it(corpus, tmp_path):
    import shutil

    inputs = tmp_path / "text"
    shutil.copytree(corpus, inputs)
    (inputs / "moved.txt").symlink_to(tmp_path / "gone.txt")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{inputs / 'moved.txt'} is a broken symbolic link")):
        preprocess([str(inputs), "--vocab-size", "200", "--destdir", str(tmp_path / "bin")])


def test_more_shards_than_lines_is_refused_before_any_work(tmp_path):
    text = tmp_path / "three.txt"
    text.write_text("one line of text .\nanother line of text .\na third line .\n")
    with pytest.raises(ValueError, match=r"--shards 4: shard \d would hold no text; .* use fewer"):
        preprocess([str(text), "--vocab-size", "20", "--shards", "4", "--destdir", str(tmp_path / "bin")])
    assert not (tmp_path / "bin").exists()


def test_a_corpus_that_vanishes_mid_run_is_an_error_and_finished_shards_are_kept(corpus, tmp_path):
    import shutil

    from vega_toolkit.cli.preprocess import parse
    from vega_toolkit.data.corpus_pipeline import encode_shard, prepare

    inputs = tmp_path / "text"
    shutil.copytree(corpus, inputs)
    argv = [str(inputs), "--destdir", str(tmp_path / "bin"), "--vocab-size", "200", "--shards", "2", "--workers", "1"]
    plan = prepare(parse(argv)[1])
    encode_shard(plan.destdir, 0)
    shard0 = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "bin" / "shard0").iterdir()}
    (inputs / "b.txt").rename(tmp_path / "b.txt")
    with pytest.raises(FileNotFoundError, match=re.escape(f"input {inputs / 'b.txt'} has disappeared")):
        encode_shard(plan.destdir, 1)
    (tmp_path / "b.txt").rename(inputs / "b.txt")
    out = preprocess(argv)  # the same command again: shard 0 is not redone
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shard0").iterdir() if p.name != "dict.txt"} == {
        k: v for k, v in shard0.items() if k != "dict.txt"
    }
    assert decoded(out / "shard1", "train")[1]


@pytest.mark.slow
def test_another_vocabularys_shards_are_refused_and_kept(corpus, tmp_path):
    argv = [str(corpus), "--destdir", str(tmp_path / "bin"), "--shards", "2", "--workers", "1"]
    out = preprocess(argv + ["--vocab-size", "200"])
    before = folder_bytes(out)
    r = _preprocess_cli(tmp_path, corpus, "--vocab-size", "150", "--shards", "2")
    assert (
        r.returncode != 0
        and "holds the shards of another preprocessing (differs in: --vocab-size 200 -> 150)" in r.stderr
        and "--force" in r.stderr
    ), r.stderr
    assert folder_bytes(out) == before


def test_a_killed_shard_is_redone_from_scratch_and_finished_ones_are_skipped(corpus, tmp_path):
    argv = [str(corpus), "--destdir", str(tmp_path / "bin"), "--vocab-size", "200", "--shards", "3", "--workers", "1"]
    out = preprocess(argv)
    before = folder_bytes(out)
    shard0 = (out / "shard0" / "train.bin").stat().st_mtime_ns
    # what a kill leaves: shard 1 without its finished marker, a truncated .bin, a half-written temporary
    (out / "shard1" / ".vega-shard.json").unlink()
    (out / "shard1" / "train.bin").write_bytes((out / "shard1" / "train.bin").read_bytes()[:10])
    (out / "shard1" / ".part-train.bin").write_bytes(b"partial")
    preprocess(argv)
    assert folder_bytes(out) == before
    assert (out / "shard0" / "train.bin").stat().st_mtime_ns == shard0


@pytest.mark.parametrize("paragraphs", [False, True])
def test_any_partition_of_the_bytes_yields_every_unit_once_in_order(tmp_path, paragraphs):
    from vega_toolkit.data.corpus_text import Corpus

    rng = random.Random(5)
    lines = []
    for i in range(200):  # paragraphs of 1-4 lines; blank, whitespace-only and CRLF separators
        lines += [f"line {i}.{j} {paragraph(rng)[: rng.randrange(5, 60)]}" for j in range(rng.randrange(1, 5))]
        lines += rng.choice([[""], ["", ""], ["   "], ["\r"]])
    (tmp_path / "a.txt").write_text("\n".join(lines[:300]))
    (tmp_path / "b.txt").write_text("\n".join(lines[300:]) + "\n")
    corpus = Corpus.of([tmp_path / "a.txt", tmp_path / "b.txt"], paragraphs=paragraphs)
    whole = list(corpus.units(0, corpus.size))
    expected = []
    for part in (lines[:300], lines[300:]):  # the oracle: files read line by line, paragraphs joined
        group = []
        for line in part + [""]:
            if line.strip() and paragraphs:
                group.append(line.strip())
            elif line.strip():
                expected.append(line.strip())
            elif group:
                expected.append(" ".join(group))
                group = []
    assert whole == expected and len(whole) > 150
    for _ in range(20):
        cuts = sorted({0, corpus.size, *(rng.randrange(corpus.size) for _ in range(rng.randrange(1, 40)))})
        assert [u for s, e in zip(cuts, cuts[1:], strict=False) for u in corpus.units(s, e)] == whole
