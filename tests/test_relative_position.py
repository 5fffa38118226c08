"""Log-bucket relative positions and the banded relative bias of the fast path (microsoft/DeBERTa
deberta/da_utils.py)."""

import pytest
import torch

from vega_toolkit.modules.relative_position import (
    WIDTH_ALIGN,
    _row_blocks,
    band_view,
    log_bucket_position,
    relative_bias,
    relative_columns,
    relative_index,
)


@pytest.mark.parametrize(
    "distance, bucket",
    [
        (0, 0),
        (1, 1),
        (-1, -1),
        (128, 128),
        (129, 129),
        (140, 137),
        (200, 169),
        (256, 192),
        (400, 233),
        (511, 255),
        (-511, -255),
        (1024, 319),
        (4096, 446),
    ],
)
def test_log_bucket_matches_the_deberta_table(distance, bucket):
    # Values of microsoft/DeBERTa make_log_bucket_position (b = 256, m = 512); |r| > 511 follows HF (no clamp before
    # bucketing).
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


@pytest.mark.parametrize("extra_columns", [0, 5])  # 5: an aligned (padded) GEMM width
def test_band_view_reads_column_c_minus_t_plus_block_minus_1(extra_columns):
    length, rows = 7, 3
    x = torch.randn(2, 3, rows, length + rows - 1 + extra_columns)
    out = band_view(x, length)
    t, c = torch.meshgrid(torch.arange(rows), torch.arange(length), indexing="ij")
    assert torch.equal(out, x[..., t, c - t + rows - 1])


@pytest.mark.parametrize("length,block", [(512, 32), (512, 128), (128, 128), (13, 4)])
def test_skewed_gemm_widths_are_aligned_and_stay_inside_the_padded_table(length, block):
    table_rows = 2 * length - 1 + WIDTH_ALIGN - 1
    for _, rows, window in _row_blocks(length, block):
        width = window.stop - window.start
        assert width % WIDTH_ALIGN == 0 and width >= length + rows - 1 and window.stop <= table_rows


@pytest.mark.parametrize("length", [1, 9, 200, 700])
def test_columns_reproduce_the_dense_index(length):
    buckets, max_pos = 64, 256
    cols = relative_columns(length, buckets, max_pos, torch.device("cpu"))
    idx = relative_index(length, length, buckets, max_pos, torch.device("cpu"))
    c2p_slot = cols.slots[cols.c2p].float().expand(length, -1).contiguous()
    p2c_slot = cols.slots[cols.p2c].float().expand(length, -1).contiguous()
    assert torch.equal(band_view(c2p_slot, length).long(), idx)  # c2p[i, j] reads slot idx(i, j)
    assert torch.equal(band_view(p2c_slot, length).t().long(), idx)  # p2c[i, j] (computed over keys j) too
    assert cols.slots.numel() == torch.unique(idx).numel()  # only the active slots are projected


def dense_relative_bias(q, k, pos_key, pos_query, pad):
    """The definition: bias[b, h, i, j] = <q_i, Kr[j - i + L - 1]> + <k_j, Qr[i - j + L - 1]>, pads = finfo.min."""
    length = q.size(-2)
    i, j = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    bias = torch.einsum("bhid,hijd->bhij", q, pos_key[:, j - i + length - 1])
    bias = bias + torch.einsum("bhjd,hijd->bhij", k, pos_query[:, i - j + length - 1])
    return bias if pad is None else bias.masked_fill(pad[:, None, None, :], torch.finfo(bias.dtype).min)


@pytest.mark.parametrize("length,block", [(1, 4), (5, 5), (13, 4), (13, 32)])
def test_relative_bias_equals_its_definition_for_any_block_size(length, block):
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, length, 4), torch.randn(2, 3, length, 4)
    pos_key, pos_query = torch.randn(3, 2 * length - 1, 4), torch.randn(3, 2 * length - 1, 4)
    pad = torch.zeros(2, length, dtype=torch.bool)
    pad[1, -1] = True
    got = relative_bias(q, k, pos_key, pos_query, pad, block)
    assert torch.allclose(got, dense_relative_bias(q, k, pos_key, pos_query, pad), atol=1e-5, rtol=0)
    assert torch.allclose(
        relative_bias(q, k, pos_key, None, None, block),
        dense_relative_bias(q, k, pos_key, torch.zeros_like(pos_query), None),
        atol=1e-5,
        rtol=0,
    )


def test_relative_bias_backward_passes_gradcheck_across_blocks():
    torch.manual_seed(0)
    length = 7
    args = [torch.randn(2, 2, length, 3, dtype=torch.double, requires_grad=True) for _ in range(2)]
    args += [torch.randn(2, 2 * length - 1, 3, dtype=torch.double, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradcheck(lambda *a: relative_bias(*a, None, 3), args)
