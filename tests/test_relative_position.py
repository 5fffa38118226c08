"""Log-bucket relative positions and the skew view of the fast path (research/deberta.md A.4)."""
import pytest
import torch

from vega_toolkit.modules.relative_position import (
    log_bucket_position,
    relative_columns,
    relative_index,
    skew,
)


@pytest.mark.parametrize(
    "distance, bucket",
    [(0, 0), (1, 1), (-1, -1), (128, 128), (129, 129), (140, 137), (200, 169), (256, 192), (400, 233), (511, 255),
     (-511, -255), (1024, 319), (4096, 446)],
)
def test_log_bucket_matches_the_deberta_table(distance, bucket):
    # Values from research/deberta.md A.4 (b = 256, m = 512); |r| > 511 follows HF (no clamp before bucketing).
    assert log_bucket_position(torch.tensor([float(distance)]), 256, 512).long().item() == bucket


def test_distances_within_512_use_511_distinct_buckets():
    r = torch.arange(-511, 512).float()
    assert torch.unique(log_bucket_position(r, 256, 512)).numel() == 511


def test_relative_index_is_clamped_into_the_table_and_cached():
    idx = relative_index(1500, 1500, 256, 512, torch.device("cpu"))
    assert idx.min().item() == 0 and idx.max().item() == 511
    assert idx[0, 0].item() == 256 and idx[5, 4].item() == 257 and idx[4, 5].item() == 255
    assert relative_index(1500, 1500, 256, 512, torch.device("cpu")) is idx


def test_unbucketed_index_is_the_shifted_distance():
    idx = relative_index(6, 6, 0, 4, torch.device("cpu"))  # k = 4, table 8 rows
    assert idx[5, 0].item() == 7 and idx[0, 5].item() == 0 and idx[2, 3].item() == 3


def test_skew_reads_column_j_minus_i_plus_l_minus_1():
    length = 7
    x = torch.randn(2, 3, length, 2 * length - 1)
    out = skew(x)
    i, j = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    assert torch.equal(out, x[..., i, j - i + length - 1])


@pytest.mark.parametrize("length", [1, 9, 200, 700])
def test_columns_reproduce_the_dense_index(length):
    buckets, max_pos = 64, 256
    cols = relative_columns(length, buckets, max_pos, torch.device("cpu"))
    idx = relative_index(length, length, buckets, max_pos, torch.device("cpu"))
    c2p_slot = cols.slots[cols.c2p].float().expand(length, -1).contiguous()
    p2c_slot = cols.slots[cols.p2c].float().expand(length, -1).contiguous()
    assert torch.equal(skew(c2p_slot).long(), idx)  # c2p[i, j] reads slot idx(i, j)
    assert torch.equal(skew(p2c_slot).t().long(), idx)  # p2c[i, j] (computed over keys j) reads idx(i, j) too
    assert cols.slots.numel() == torch.unique(idx).numel()  # only the active slots are projected


def test_skew_backward_scatters_into_the_read_columns_only():
    length = 6
    x = torch.randn(2, length, 2 * length - 1, requires_grad=True)
    g = torch.randn(2, length, length)
    (skew(x) * g).sum().backward()
    i, j = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    expected = torch.zeros_like(x)
    expected[:, i, j - i + length - 1] = g
    assert torch.equal(x.grad, expected)


def test_slot_index_renumbers_the_dense_index_into_the_active_slots():
    from vega_toolkit.modules.relative_position import relative_slot_index

    cols = relative_columns(300, 64, 256, torch.device("cpu"))
    dense = relative_index(300, 300, 64, 256, torch.device("cpu"))
    assert torch.equal(cols.slots[relative_slot_index(300, 64, 256, torch.device("cpu"))], dense)
