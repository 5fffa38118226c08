"""The shuffle/replace corruption (vega_toolkit/data/noising.py) against its spec: exact per-sequence counts,
disjoint shuffled and replaced sets, specials never corrupted, unchanged shuffled tokens labelled original."""

import collections

import pytest
import torch
from fairseq.data import Dictionary

from vega_toolkit.data.noising import (
    IGNORE_INDEX,
    ORIGINAL,
    REPLACED,
    SHUFFLED,
    RTDNoisingDataset,
    TokenNoiser,
    seeded_generator,
)


@pytest.fixture(scope="module")
def dictionary():
    d = Dictionary()
    for i in range(300):
        d.add_symbol(f"w{i}", n=1000 - 3 * i)
    d.add_symbol("<mask>")
    return d


def random_blocks(dictionary, n, seq_len, seed=0, pad_tail=True):
    """[n, seq_len] blocks `<s> w ... </s>` with a random amount of right padding per row."""
    g = torch.Generator().manual_seed(seed)
    first = dictionary.nspecial
    last = len(dictionary) - 1  # <mask> is the last symbol: never in the text
    tokens = torch.randint(first, last, (n, seq_len), generator=g)
    lengths = torch.randint(seq_len // 4, seq_len + 1, (n,), generator=g) if pad_tail else torch.full((n,), seq_len)
    for i, length in enumerate(lengths.tolist()):
        tokens[i, 0] = dictionary.bos()
        tokens[i, length - 1] = dictionary.eos()
        tokens[i, length:] = dictionary.pad()
    return tokens


def test_rates_over_2000_sequences_are_within_10_percent_of_the_flags(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.10, replace_prob=0.05)
    tokens = random_blocks(dictionary, 2000, 128)
    _, labels = noiser(tokens, generator=seeded_generator(1, 1, 0))
    eligible = (labels != IGNORE_INDEX).sum().item()
    shuf_frac = (labels == SHUFFLED).sum().item() / eligible
    repl_frac = (labels == REPLACED).sum().item() / eligible
    assert abs(shuf_frac - 0.10) / 0.10 < 0.10, shuf_frac
    assert abs(repl_frac - 0.05) / 0.05 < 0.10, repl_frac


def test_special_tokens_and_padding_are_never_corrupted_and_are_ignored(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.3, replace_prob=0.3)
    tokens = random_blocks(dictionary, 200, 64)
    tokens[:, 5] = dictionary.unk()
    tokens[:, 7] = dictionary.index("<mask>")
    corrupted, labels = noiser(tokens, generator=seeded_generator(3, 1, 0))
    special = tokens < dictionary.nspecial
    special |= tokens == dictionary.index("<mask>")
    assert torch.equal(corrupted[special], tokens[special])
    assert (labels[special] == IGNORE_INDEX).all()
    assert (labels[~special] != IGNORE_INDEX).all()
    # no special symbol is ever moved or drawn into an eligible position
    assert not noiser.is_special[corrupted[~special]].any()


def test_labels_follow_the_spec(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.2, replace_prob=0.1)
    tokens = random_blocks(dictionary, 300, 64)
    corrupted, labels = noiser(tokens, generator=seeded_generator(5, 1, 0))
    changed = corrupted != tokens
    assert torch.equal(changed, (labels == SHUFFLED) | (labels == REPLACED))  # label 0 <=> token unchanged
    for row_tokens, row_corrupted, row_labels in zip(tokens, corrupted, labels, strict=True):
        # a shuffled row keeps its multiset of tokens over the non-replaced positions: shuffling moves tokens
        # only within the same sequence
        keep = row_labels != REPLACED
        assert collections.Counter(row_tokens[keep].tolist()) == collections.Counter(row_corrupted[keep].tolist())


def test_shuffled_token_that_did_not_change_is_labelled_original(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.5, replace_prob=0.0)
    # Only two distinct pieces: most shuffles swap a piece with an equal one.
    a, b = dictionary.index("w0"), dictionary.index("w1")
    body = torch.tensor([a, b] * 20)
    tokens = torch.cat([torch.tensor([dictionary.bos()]), body, torch.tensor([dictionary.eos()])])
    corrupted, labels = noiser(tokens, generator=seeded_generator(0, 1, 0))
    assert (labels[corrupted == tokens][1:-1] == ORIGINAL).all()
    assert (labels[corrupted != tokens] == SHUFFLED).all()
    assert (labels == SHUFFLED).sum() < 20  # 20 positions were chosen; equal-piece swaps stay label 0


def test_each_sequence_gets_its_own_permutation(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.3, replace_prob=0.0)
    row = random_blocks(dictionary, 1, 64, pad_tail=False)[0]
    corrupted, labels = noiser(row.expand(16, -1).clone(), generator=seeded_generator(0, 1, 0))
    patterns = {tuple((labels[i] == SHUFFLED).tolist()) for i in range(16)}
    assert len(patterns) > 1
    # shuffling never pulls tokens from padding or from other rows
    tokens = random_blocks(dictionary, 50, 64)
    corrupted, labels = noiser(tokens, generator=seeded_generator(0, 1, 0))
    for i in range(50):
        assert collections.Counter(corrupted[i].tolist()) == collections.Counter(tokens[i].tolist())


def test_replacements_never_equal_the_original_under_both_weightings(dictionary):
    tokens = random_blocks(dictionary, 100, 64)
    for weighting in ("uniform", "frequency"):
        noiser = TokenNoiser.from_dictionary(dictionary, 0.0, 0.5, replace_weighting=weighting)
        corrupted, labels = noiser(tokens, generator=seeded_generator(0, 1, 0))
        replaced = labels == REPLACED
        assert replaced.sum() > 1000
        assert (corrupted[replaced] != tokens[replaced]).all()


def test_frequency_weighting_prefers_frequent_pieces(dictionary):
    tokens = random_blocks(dictionary, 400, 64)
    counts = {}
    for weighting in ("uniform", "frequency"):
        noiser = TokenNoiser.from_dictionary(dictionary, 0.0, 0.5, replace_weighting=weighting)
        corrupted, labels = noiser(tokens, generator=seeded_generator(0, 1, 0))
        drawn = corrupted[labels == REPLACED]
        frequent = drawn < dictionary.index("w50")
        counts[weighting] = frequent.float().mean().item()
    assert counts["frequency"] > counts["uniform"] * 1.5


def test_same_seed_gives_same_corruption_and_a_new_epoch_gives_new_corruption(dictionary):
    blocks = random_blocks(dictionary, 8, 64)
    items = [row[row != dictionary.pad()] for row in blocks]
    noiser = TokenNoiser.from_dictionary(dictionary)

    class Blocks(torch.utils.data.Dataset):
        sizes = [len(x) for x in items]

        def __getitem__(self, i):
            return items[i]

        def __len__(self):
            return len(items)

    def corrupt_all(seed, epoch):
        ds = RTDNoisingDataset(Blocks(), noiser, dictionary.pad(), seed=seed)
        ds.set_epoch(epoch)
        return ds.collater([ds[i] for i in range(len(items))])

    a, b = corrupt_all(1, 1), corrupt_all(1, 1)
    assert torch.equal(a["net_input"]["src_tokens"], b["net_input"]["src_tokens"])
    assert torch.equal(a["target"], b["target"])
    c = corrupt_all(1, 2)
    d = corrupt_all(2, 1)
    assert not torch.equal(a["net_input"]["src_tokens"], c["net_input"]["src_tokens"])
    assert not torch.equal(a["net_input"]["src_tokens"], d["net_input"]["src_tokens"])
    assert torch.equal(a["original_tokens"], c["original_tokens"])
    # the collated targets pad with the ignore index, not the pad id (pad = 1 = SHUFFLED)
    assert (a["target"][a["original_tokens"] == dictionary.pad()] == IGNORE_INDEX).all()


def test_bad_probabilities_are_rejected_naming_the_flags(dictionary):
    with pytest.raises(ValueError, match="--shuffle-prob"):
        TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.8, replace_prob=0.5)
    with pytest.raises(ValueError, match="--replace-weighting"):
        TokenNoiser.from_dictionary(dictionary, replace_weighting="zipf")


@pytest.mark.parametrize("n_tokens", [4, 6, 8, 10, 12, 15, 20])
def test_short_rows_realise_the_shuffle_rate_exactly_in_expectation(dictionary, n_tokens):
    """A shuffle count of one is a 1-cycle (nothing moves); short rows must still realise --shuffle-prob."""
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.10, replace_prob=0.05)
    g = torch.Generator().manual_seed(n_tokens)
    # Distinct words per row, so a moved token always differs from the one it replaces.
    words = torch.rand(20000, len(dictionary) - 1 - dictionary.nspecial, generator=g).argsort(1)[:, :n_tokens]
    body = words + dictionary.nspecial
    bos = torch.full((len(body), 1), dictionary.bos())
    eos = torch.full((len(body), 1), dictionary.eos())
    _, labels = noiser(torch.cat([bos, body, eos], 1), generator=seeded_generator(7, 1, n_tokens))
    shuf = (labels == SHUFFLED).sum(1).float() / n_tokens  # per-row fraction of eligible tokens
    rate, stderr = shuf.mean().item(), shuf.std().item() / len(shuf) ** 0.5
    assert abs(rate - 0.10) < 4 * stderr + 1e-3, (n_tokens, rate, stderr)
    repl = (labels == REPLACED).float().sum().item() / labels.ne(IGNORE_INDEX).sum().item()
    assert abs(repl - 0.05) < 0.005, (n_tokens, repl)


def test_a_row_never_has_exactly_one_shuffled_token(dictionary):
    noiser = TokenNoiser.from_dictionary(dictionary, shuffle_prob=0.10, replace_prob=0.05)
    _, labels = noiser(random_blocks(dictionary, 5000, 16), generator=seeded_generator(2, 1, 0))
    per_row = (labels == SHUFFLED).sum(1)
    assert int((per_row == 1).sum()) == 0
