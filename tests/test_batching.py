"""fairseq's batching keeps every example (its stock version drops the remainder of --required-batch-size-multiple)."""

import numpy as np
import pytest
from fairseq.data import data_utils

import vega_toolkit  # noqa: F401  (installs the fix)
from vega_toolkit.fairseq_fixes import batching


@pytest.mark.parametrize("n,batch_size,multiple", [(277, 32, 8), (5, 32, 8), (100, 3, 8), (64, 32, 8), (33, 4, 1)])
def test_every_example_is_in_exactly_one_batch(n, batch_size, multiple):
    indices = np.arange(n)
    sizes = np.random.RandomState(n).randint(5, 50, size=n)
    batches = data_utils.batch_by_size(
        indices,
        lambda i: sizes[i],
        num_tokens_vec=sizes,
        max_sentences=batch_size,
        required_batch_size_multiple=multiple,
    )
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n))
    assert max(len(b) for b in batches) <= batch_size


def test_stock_fairseq_drops_the_remainder_this_fix_restores():
    indices, sizes = np.arange(277), np.full(277, 10)
    stock = batching._original_batch_by_size(
        indices, lambda i: 10, num_tokens_vec=sizes, max_sentences=32, required_batch_size_multiple=8
    )
    assert sum(len(b) for b in stock) == 272  # the bug this module exists for (RTE dev: 277 rows)
    fixed = data_utils.batch_by_size(
        indices, lambda i: 10, num_tokens_vec=sizes, max_sentences=32, required_batch_size_multiple=8
    )
    assert sum(len(b) for b in fixed) == 277


def test_leftover_batches_respect_max_tokens():
    indices, sizes = np.arange(21), np.full(21, 100)
    batches = data_utils.batch_by_size(
        indices, lambda i: 100, num_tokens_vec=sizes, max_tokens=800, required_batch_size_multiple=8
    )
    assert sum(len(b) for b in batches) == 21
    assert all(len(b) * 100 <= 800 for b in batches)
