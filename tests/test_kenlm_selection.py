"""KenLM data selection with the real lmplz/build_binary (scripts/build_kenlm.sh) and the kenlm module."""

import os
import random
import subprocess
import sys

import pytest

from vega_toolkit.cli.select import cli_main
from vega_toolkit.selection.lm import (
    KenLMNotFoundError,
    NgramScorer,
    find_kenlm_program,
    normalize,
    train_ngram_lm,
)
from vega_toolkit.selection.select import DomainScorer, reservoir_sample, select_stream

# Most tests here train or score with the real KenLM programs; the few that do not are not worth a lane of their own.
pytestmark = pytest.mark.kenlm

IN_NOUNS = "cat dog bird horse cow sheep goat mouse".split()
IN_VERBS = "sat slept stood ran lay waited".split()
IN_PLACES = "mat rug bed chair sofa floor".split()
OUT_WORDS = (
    "stock market shares fell sharply after the central bank raised interest rates again while "
    "investors sold bonds and traders expected inflation data"
).split()


def in_domain_sentence(rng):
    return f"The {rng.choice(IN_NOUNS)} {rng.choice(IN_VERBS)} on the {rng.choice(IN_PLACES)} ."


def out_of_domain_sentence(rng):
    return " ".join(rng.choice(OUT_WORDS) for _ in range(rng.randint(6, 12))).capitalize() + " ."


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("sel")
    train = [in_domain_sentence(rng) for _ in range(300)]
    pool_in = [in_domain_sentence(rng) + f" {i}" for i in range(20)]  # unique rows
    pool_out = [out_of_domain_sentence(rng) for _ in range(40)]
    pool = pool_in + pool_out
    rng.shuffle(pool)
    general = [out_of_domain_sentence(rng) for _ in range(300)] + [in_domain_sentence(rng) for _ in range(30)]
    for name, lines in (("train.txt", train), ("pool.txt", pool), ("general.txt", general)):
        (root / name).write_text("".join(x + "\n" for x in lines))
    return root, set(pool_in), pool


@pytest.fixture(scope="module")
def in_domain_lm(corpora, kenlm_programs, tmp_path_factory):
    root, _, _ = corpora
    return train_ngram_lm(
        open(root / "train.txt"), str(tmp_path_factory.mktemp("lm") / "in"), order=3, discount_fallback=True
    )


def test_lmplz_and_build_binary_are_the_real_kenlm_programs(kenlm_programs):
    for name, path in kenlm_programs.items():
        out = subprocess.run([path, "--help"], capture_output=True, text=True)
        assert "order" in (out.stdout + out.stderr) or name == "build_binary"
        assert os.access(path, os.X_OK)


def test_missing_lmplz_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KENLM_BIN", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(KenLMNotFoundError, match=r"bash scripts/build_kenlm\.sh \.venv"):
        find_kenlm_program("lmplz")


def test_perplexity_matches_kenlm_own_perplexity_on_normalised_text(in_domain_lm):
    scorer = NgramScorer(in_domain_lm)
    for sentence in ("The cat sat on the mat .", "Stock market shares fell .", "the DOG, lay on the rug!"):
        expected = scorer.model.perplexity(normalize(sentence))  # kenlm: 10 ** (-score / (words + 1))
        assert scorer.perplexity([sentence]) == pytest.approx(expected, rel=1e-9)


def test_training_and_scoring_share_one_tokenisation(in_domain_lm):
    scorer = NgramScorer(in_domain_lm)
    assert normalize("The CAT sat, on the mat.") == "the cat sat , on the mat ."
    assert scorer.cross_entropy(["The CAT sat on the MAT."]) == scorer.cross_entropy(["the cat sat on the mat ."])


def test_pair_is_scored_as_two_sentences_with_summed_tokens(in_domain_lm):
    scorer = NgramScorer(in_domain_lm)
    a, b = "The cat sat on the mat .", "The dog ran on the rug ."
    log_a, n_a = scorer.log10_prob([a])
    log_b, n_b = scorer.log10_prob([b])
    assert scorer.log10_prob([a, b]) == pytest.approx((log_a + log_b, n_a + n_b))


def test_in_domain_lm_prefers_in_domain_sentences(corpora, in_domain_lm):
    rng = random.Random(5)
    scorer = NgramScorer(in_domain_lm)
    assert scorer.perplexity([in_domain_sentence(rng)]) * 5 < scorer.perplexity([out_of_domain_sentence(rng)])


def test_tiny_corpus_without_discount_fallback_fails_with_a_hint(tmp_path):
    with pytest.raises(RuntimeError, match="discount"):
        train_ngram_lm(["a b c", "d e f"], str(tmp_path / "tiny"), order=4)


@pytest.mark.parametrize("general", [False, True])
def test_vega_select_top_k_keeps_the_in_domain_rows_in_pool_order(corpora, tmp_path, general, capsys):
    root, in_rows, pool = corpora
    out = tmp_path / "selected.txt"
    argv = [
        "--train",
        str(root / "train.txt"),
        "--pool",
        str(root / "pool.txt"),
        "--top-k",
        str(len(in_rows)),
        "--order",
        "3",
        "--discount-fallback",
        "--out",
        str(out),
    ]
    if general:
        argv += ["--general", str(root / "general.txt")]
    assert cli_main(argv) == 0
    kept = out.read_text().splitlines()
    assert set(kept) == in_rows
    assert kept == [row for row in pool if row in in_rows]  # pool order
    printed = capsys.readouterr().out
    assert ("moore-lewis" if general else "perplexity") in printed and "sentences/min" in printed


def test_heap_top_k_equals_a_full_sort(corpora, in_domain_lm):
    _, _, pool = corpora
    scorer = DomainScorer(in_domain_lm)
    rows = [(row, [row]) for row in pool]
    ranked = sorted(range(len(pool)), key=lambda i: (scorer.score([pool[i]])[0], i))
    for k in (0, 1, 7, len(pool), len(pool) + 3):
        kept, stats = select_stream(iter(rows), scorer, top_k=k)
        assert [payload for _, _, payload in kept] == [pool[i] for i in sorted(ranked[:k])]
        assert stats.scored == len(pool) and stats.selected == min(k, len(pool))


def test_max_ppl_keeps_exactly_the_rows_at_or_under_the_threshold(corpora, in_domain_lm):
    _, _, pool = corpora
    scorer = DomainScorer(in_domain_lm)
    ppls = [scorer.score([row])[1] for row in pool]
    threshold = sorted(ppls)[len(ppls) // 2]
    kept, _ = select_stream(((row, [row]) for row in pool), scorer, max_ppl=threshold)
    assert [payload for _, _, payload in kept] == [row for row, p in zip(pool, ppls, strict=True) if p <= threshold]


def test_tsv_pool_keeps_header_and_rows_unchanged_and_scores_pairs(corpora, tmp_path):
    root, in_rows, pool = corpora
    tsv = tmp_path / "pool.tsv"
    tsv.write_text(
        "index\tsentence1\tsentence2\tlabel\n" + "".join(f"{i}\t{row}\t{row}\tx\n" for i, row in enumerate(pool))
    )
    out = tmp_path / "sel.tsv"
    assert (
        cli_main(
            [
                "--train",
                str(root / "train.txt"),
                "--pool",
                str(tsv),
                "--columns",
                "1,2",
                "--header",
                "--top-k",
                str(len(in_rows)),
                "--order",
                "3",
                "--discount-fallback",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tsentence1\tsentence2\tlabel"
    assert {line.split("\t")[1] for line in lines[1:]} == in_rows
    assert all(line.count("\t") == 3 for line in lines[1:])


def test_short_tsv_row_is_an_error_naming_file_and_line(corpora, tmp_path, capsys):
    root, _, _ = corpora
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tThe cat sat .\nb\n")
    rc = cli_main(
        [
            "--train",
            str(root / "train.txt"),
            "--pool",
            str(bad),
            "--columns",
            "1",
            "--top-k",
            "1",
            "--order",
            "3",
            "--discount-fallback",
            "--out",
            str(tmp_path / "o.txt"),
        ]
    )
    assert rc == 2
    assert f"{bad}:2: expected at least 2 tab-separated fields" in capsys.readouterr().err


def test_missing_pool_file_is_a_clear_error(corpora, tmp_path):
    root, _, _ = corpora
    with pytest.raises(SystemExit, match="--pool .*file not found"):
        cli_main(
            [
                "--train",
                str(root / "train.txt"),
                "--pool",
                str(tmp_path / "nope.txt"),
                "--top-k",
                "1",
                "--out",
                str(tmp_path / "o.txt"),
            ]
        )


def test_reservoir_sample_is_uniform_sized_and_in_stream_order():
    sample = reservoir_sample(range(1000), 50, seed=3)
    assert len(sample) == 50 and sample == sorted(sample) and len(set(sample)) == 50
    assert reservoir_sample(range(10), 50) == list(range(10))


# --- real data: CoLA text vs SST-2 reviews and Gutenberg prose -------------------------------------------------
def test_real_cola_lm_ranks_held_out_cola_above_out_of_domain_text(tmp_path):
    glue, corpus = os.environ.get("VEGA_GLUE_DIR"), os.environ.get("VEGA_CORPUS_DIR")
    if not (glue and corpus):
        pytest.skip("needs VEGA_GLUE_DIR and VEGA_CORPUS_DIR")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from selection import gutenberg_lines  # benchmarks/selection.py: the measurement docs/glue.md reports

    from vega_toolkit.data.glue_readers import read_glue_split

    rng = random.Random(0)
    train = [ex.text_a for ex in read_glue_split(glue, "CoLA", "train")]
    held_out = list(dict.fromkeys(ex.text_a for ex in read_glue_split(glue, "CoLA", "dev")))
    guten = gutenberg_lines(corpus)
    rng.shuffle(guten)
    sst_dev = [ex.text_a for ex in read_glue_split(glue, "SST-2", "dev")]
    sst_train = [ex.text_a for ex in read_glue_split(glue, "SST-2", "train")]
    ood = sst_dev + guten[: len(held_out)]
    in_domain = set(held_out) - set(ood)
    pool = held_out + ood
    general = sst_train[:20000] + guten[len(held_out) : len(held_out) + 20000]
    k = len(held_out)
    precision = {}
    for name, gen in (("ppl", None), ("ml", general)):
        scorer = DomainScorer.train(
            str(tmp_path / name), iter(train), None if gen is None else iter(gen), order=4, discount_fallback=True
        )
        kept, _ = select_stream(((row, [row]) for row in pool), scorer, top_k=k)
        precision[name] = sum(payload in in_domain for _, _, payload in kept) / len(in_domain)
    print(f"precision@{k}: perplexity {precision['ppl']:.3f}, Moore-Lewis {precision['ml']:.3f}")
    assert precision["ppl"] >= 0.8
    assert precision["ml"] >= 0.9


def test_a_pool_in_another_encoding_is_named_with_its_line_before_any_lm_is_trained(corpora, tmp_path, capsys):
    root, _, _ = corpora
    pool = tmp_path / "pool.txt"
    pool.write_bytes("The cat sat .\nThe caf\u00e9 dog ran .\n".encode("latin-1"))
    out = tmp_path / "o.txt"
    rc = cli_main(
        [
            "--train",
            str(root / "train.txt"),
            "--pool",
            str(pool),
            "--top-k",
            "1",
            "--order",
            "3",
            "--discount-fallback",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ]
    )
    assert rc == 2
    assert f"{pool}:2: not UTF-8 (byte 0xe9 at column 8)" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() or not os.listdir(tmp_path / "work")  # no LM trained first
    assert not out.exists() and not (tmp_path / "o.txt.tmp").exists()


def test_a_failed_selection_leaves_no_temporary_file(corpora, tmp_path):
    from vega_toolkit.selection.select import select_file

    class Failing:
        def score(self, segments):
            raise RuntimeError("scorer died")

    root, _, _ = corpora
    out = tmp_path / "o.txt"
    with pytest.raises(RuntimeError, match="scorer died"):
        select_file(str(root / "pool.txt"), str(out), Failing(), top_k=1)
    assert os.listdir(tmp_path) == []
