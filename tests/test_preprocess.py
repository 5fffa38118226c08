"""vega-preprocess: text -> sentencepiece -> fairseq data-bin, checked against sentencepiece itself as the oracle."""
import os
import random

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
    out = preprocess([str(corpus), "--destdir", str(tmp_path / "bin"), "--vocab-size", "200", "--workers", "1",
                      "--valid-fraction", "0.1"])
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".log")) == [
        "dict.txt", "spm.model", "train.bin", "train.idx", "valid.bin", "valid.idx"]
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    lines = [line.strip() for name in ("a.txt", "b.txt") for line in (corpus / name).read_text().splitlines()
             if line.strip()]
    d, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) + len(valid) == len(lines) == 300 and 10 <= len(valid) <= 55
    expected = sorted(" ".join(sp.encode(line, out_type=str)) for line in lines)
    assert sorted(train + valid) == expected  # no line lost, duplicated or mis-tokenised; no <unk>
    # every normal sentencepiece piece has its own id, after fairseq's 4 specials
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    assert d.symbols[d.nspecial:] == pieces
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
    out = preprocess([str(tmp_path / "book.txt"), "--paragraphs", "--destdir", str(tmp_path / "bin"),
                      "--vocab-size", "200", "--workers", "1", "--valid-fraction", "0.2"])
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) + len(valid) == 120 and 10 <= len(valid) <= 40
    assert sorted(train + valid) == sorted(" ".join(sp.encode(p, out_type=str)) for p in paragraphs)


def test_multiprocess_encoding_gives_identical_files(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("vega_toolkit.cli.preprocess.CHUNK_LINES", 7)  # many chunks: order across workers matters
    one = preprocess([str(corpus), "--destdir", str(tmp_path / "w1"), "--vocab-size", "200", "--workers", "1"])
    two = preprocess([str(corpus), "--destdir", str(tmp_path / "w2"), "--spm-model", str(one / "spm.model"),
                      "--workers", "2"])
    for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_existing_spm_model_and_dictionary_are_kept(corpus, tmp_path):
    first = preprocess([str(corpus), "--destdir", str(tmp_path / "a"), "--vocab-size", "200", "--workers", "1"])
    custom = tmp_path / "dict.txt"
    symbols = (first / "dict.txt").read_text().splitlines()
    custom.write_text("\n".join(reversed(symbols)) + "\n")  # a converted model's own order
    out = preprocess([str(corpus / "b.txt"), "--destdir", str(tmp_path / "b"), "--spm-model",
                      str(first / "spm.model"), "--srcdict", str(custom), "--workers", "1"])
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
        preprocess([str(tmp_path / "empty.txt"), "--destdir", str(tmp_path / "o"), "--vocab-size", "50",
                    "--valid-fraction", "1.5"])


def _preprocess_cli(tmp_path, *args):
    from glue_helpers import vega_cli

    r = vega_cli("preprocess", [*map(str, args), "--destdir", str(tmp_path / "bin"), "--workers", "1"])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def test_valid_never_shares_a_line_with_train_on_tiny_inputs(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("the first line of text .\nthe second line of text .\n")
    out = preprocess([str(two), "--destdir", str(tmp_path / "a"), "--vocab-size", "20", "--workers", "1"])
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert len(train) == len(valid) == 1 and not set(train) & set(valid)
    repeated = tmp_path / "repeated.txt"  # repeated lines (Gutenberg's "* * *"): no copy may land on both sides
    repeated.write_text("".join(f"line number {i} of a corpus .\n* * *\nCHAPTER {i % 3}\n" for i in range(100)))
    out = preprocess([str(repeated), "--destdir", str(tmp_path / "r"), "--vocab-size", "60", "--workers", "1",
                      "--valid-fraction", "0.1"])
    _, train = decoded(out, "train")
    _, valid = decoded(out, "valid")
    assert valid and not set(train) & set(valid) and len(train) + len(valid) == 300
    one = tmp_path / "one.txt"
    one.write_text("a single line .\n")
    r = _preprocess_cli(tmp_path, one, "--vocab-size", "20")
    assert r.returncode != 0 and f"1 non-empty line in ['{one}']: too few to split into train and valid" in r.stderr


def test_windows_1252_text_is_decoded_and_never_turned_into_control_characters(tmp_path):
    text = tmp_path / "win.txt"
    text.write_bytes("".join(f"\u201cquoted {i}\u201d \u2013 done\n" for i in range(40)).encode("cp1252"))
    out = preprocess([str(text), "--destdir", str(tmp_path / "a"), "--vocab-size", "30", "--workers", "1"])
    symbols = (out / "dict.txt").read_text(encoding="utf-8")
    assert not any(0x80 <= ord(c) < 0xA0 for c in symbols) and "\u201c" in symbols
    r = _preprocess_cli(tmp_path, text, "--vocab-size", "30", "--encoding", "latin-1")
    assert r.returncode != 0 and f"{text}:1 read as latin-1 gives the control character U+0093" in r.stderr
    assert "--encoding cp1252" in r.stderr


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


def test_a_vocabulary_too_small_for_the_characters_names_the_inputs_and_the_flag(tmp_path):
    text = tmp_path / "chars.txt"
    text.write_text("".join(f"{chr(0x4e00 + i)} {chr(0x4e40 + i)} line {i}\n" for i in range(60)))
    r = _preprocess_cli(tmp_path, text, "--vocab-size", "20")
    assert r.returncode != 0 and f"sentencepiece cannot train on ['{text}'] with --vocab-size 20" in r.stderr
