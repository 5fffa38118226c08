"""The SDPA fast path of disentangled attention equals the reference (HF-equivalent) math, values and gradients."""

import copy

import pytest
import torch

from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention


def make_pair(share_att_key=True, pos_att_type=("c2p", "p2c"), buckets=16, max_rel=32, seed=0):
    torch.manual_seed(seed)
    fast = DisentangledSelfAttention(
        32,
        4,
        pos_att_type=pos_att_type,
        share_att_key=share_att_key,
        position_buckets=buckets,
        max_relative_positions=max_rel,
        attention_impl="sdpa",
    )
    ref = copy.deepcopy(fast)
    ref.attention_impl = "reference"
    return fast.eval(), ref.eval()


def inputs(batch=3, length=40, rows=32, padded=True):
    x = torch.randn(batch, length, 32, requires_grad=True)
    rel = torch.randn(rows, 32, requires_grad=True)
    pad = torch.zeros(batch, length, dtype=torch.bool)
    if padded:
        pad[1, length - 7 :] = True
        pad[2, 4:] = True
    return x, rel, pad if padded else None


# length 9: buckets are the identity; length 40: log buckets map several distances to one slot.
# grad on and off: the CPU fast path runs its own attention core with a bias that needs a gradient, SDPA otherwise.
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("length", [9, 40])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("share_att_key", [True, False])
@pytest.mark.parametrize("pos_att_type", [("c2p", "p2c"), ("c2p",), ("p2c",), ()])
def test_fast_path_equals_reference_on_real_positions(grad, length, padded, share_att_key, pos_att_type):
    fast, ref = make_pair(share_att_key, pos_att_type)
    x, rel, pad = inputs(length=length, padded=padded)
    keep = ~pad if padded else torch.ones(x.shape[:2], dtype=torch.bool)
    with torch.set_grad_enabled(grad):
        assert (fast(x, rel, pad) - ref(x, rel, pad))[keep].abs().max().item() <= 1e-5


@pytest.mark.parametrize("length", [1, 2, 100])
def test_fast_path_equals_reference_with_log_buckets_beyond_the_identity_range(length):
    # buckets 16 / max 32: distances >= 8 are log-bucketed and >= 32 exceed the table (clamped gather index).
    fast, ref = make_pair()
    x, rel, _ = inputs(batch=2, length=length, padded=False)
    assert torch.allclose(fast(x, rel), ref(x, rel), atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [9, 40])
def test_fast_path_gradients_match_reference_for_inputs_and_parameters(length):
    fast, ref = make_pair()
    x, rel, pad = inputs(length=length)
    keep = (~pad).unsqueeze(-1).float()
    grads = []
    for module in (fast, ref):
        x.grad = rel.grad = None
        module.zero_grad()
        (module(x, rel, pad) * keep).pow(2).sum().backward()  # loss on real positions only
        grads.append([x.grad.clone(), rel.grad.clone()] + [p.grad.clone() for p in module.parameters()])
    for g_fast, g_ref in zip(*grads, strict=True):
        assert torch.allclose(g_fast, g_ref, atol=1e-5, rtol=1e-4)


def test_padding_never_produces_nan_in_fast_path():
    fast, _ = make_pair()
    fast.train()
    x, rel, pad = inputs()
    pad[2, 1:] = True  # only the first token is real
    with torch.no_grad():
        assert torch.isfinite(fast(x, rel, pad)).all()  # the SDPA path
    out = fast(x, rel, pad)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_bf16_autocast_output_is_close_to_fp32():
    fast, _ = make_pair()
    x, rel, pad = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x, rel, pad)
    assert out.dtype == torch.bfloat16
    keep = ~pad
    assert (out.float() - fast(x, rel, pad))[keep].abs().max() < 0.05


def test_bf16_autocast_stays_finite_with_huge_scores():
    fast, _ = make_pair()
    x, rel, pad = inputs()
    x = (x * 1000).detach()  # scores of order 1e5 and more: fp16 would overflow, bf16 (and the fp32 bias) must not
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x, rel, pad)
    assert torch.isfinite(out).all()


def test_fp16_bias_is_computed_in_fp32_and_stays_finite():
    fast, _ = make_pair()
    fast = fast.half()
    x, rel, pad = inputs()
    x, rel = (x * 1000).detach().half(), rel.detach().half()
    out = fast(x, rel, pad)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_unknown_relative_term_is_rejected_with_the_flag_name():
    with pytest.raises(ValueError, match="pos-att-type"):
        DisentangledSelfAttention(32, 4, pos_att_type=("c2p", "p2p"))


@pytest.mark.parametrize("pos_att_type", [("c2p", "p2c"), ("c2p",), ("p2c",)])
def test_fast_path_with_many_row_blocks_matches_reference_values_and_gradients(pos_att_type):
    # BLOCK 7 does not divide 40: full blocks plus a shorter last one, each with its own distance window.
    fast, ref = make_pair(pos_att_type=pos_att_type)
    fast.BLOCK = 7
    x, rel, pad = inputs(length=40)
    keep = (~pad).unsqueeze(-1).float()
    grads, outs = [], []
    for module in (fast, ref):
        x.grad = rel.grad = None
        module.zero_grad()
        out = module(x, rel, pad) * keep
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([x.grad.clone(), rel.grad.clone()] + [p.grad.clone() for p in module.parameters()])
    assert (outs[0] - outs[1]).abs().max().item() <= 1e-5
    for g_fast, g_ref in zip(*grads, strict=True):
        assert torch.allclose(g_fast, g_ref, atol=1e-5, rtol=1e-4)


def test_training_dropout_keeps_the_expected_fraction_and_is_unbiased():
    from vega_toolkit.modules.relative_position import dropout_keep_mask

    keep, scale = dropout_keep_mask((200, 1000), 0.1)
    assert keep.dtype == torch.bool and abs(keep.float().mean().item() - 0.9) < 0.005
    assert scale * (1 - round(0.1 * 65536) / 65536) == pytest.approx(1.0)
    fast, _ = make_pair()
    fast.attention_dropout = 0.5
    fast.train()
    x, rel, _ = inputs(padded=False)
    torch.manual_seed(1)
    a = fast(x, rel)
    torch.manual_seed(1)
    assert torch.equal(a, fast(x, rel))  # the mask follows torch's RNG: seeded runs reproduce
    assert not torch.equal(a, fast(x, rel))
