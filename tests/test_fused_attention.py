"""`--attention-impl fused` (the Triton kernel of fused_disentangled_attention.py) equals the reference math: values,
gradients of the inputs, the relative table and the projections, with key padding and with dropout (same keep mask).

Here the kernels run on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1, set below before triton is
imported), so CI checks them without a GPU; tiles of 16 with lengths that are not multiples of 16. On a CUDA machine
tests/test_cuda.py checks the compiled kernels instead, and these tests run only under an explicit TRITON_INTERPRET=1.
"""
import copy
import importlib
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():  # CI: interpret; with a GPU the compiled kernels are the ones to test
    os.environ["TRITON_INTERPRET"] = "1"

from vega_toolkit.modules import disentangled_attention  # noqa: E402
from vega_toolkit.modules import fused_disentangled_attention as fused  # noqa: E402
from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention  # noqa: E402

if os.environ.get("TRITON_INTERPRET") == "1" and not fused.INTERPRETED:  # imported earlier in this process
    fused = importlib.reload(fused)
pytestmark = pytest.mark.skipif(not fused.INTERPRETED, reason="interpreter tests: run with TRITON_INTERPRET=1")

HEADS, HEAD_DIM, BLOCK = 2, 16, 16


def make_pair(buckets=8, max_rel=24, share_att_key=True, pos_att_type=("c2p", "p2c"), dropout=0.0, seed=0):
    """Fused and reference modules with the same weights (2 heads of 16, tiles of 16)."""
    torch.manual_seed(seed)
    ref = DisentangledSelfAttention(HEADS * HEAD_DIM, HEADS, attention_dropout=dropout, pos_att_type=pos_att_type,
                                    share_att_key=share_att_key, position_buckets=buckets,
                                    max_relative_positions=max_rel, attention_impl="reference")
    fast = copy.deepcopy(ref)
    fast.attention_impl, fast.FUSED_BLOCK = "fused", BLOCK
    return fast, ref


def inputs(length, rows, batch=2, padded=True, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, HEADS * HEAD_DIM, generator=generator).requires_grad_()
    rel = torch.randn(rows, HEADS * HEAD_DIM, generator=generator).requires_grad_()
    pad = torch.zeros(batch, length, dtype=torch.bool)
    if padded:
        pad[1, length // 2 + 1:] = True
    return x, rel, pad if padded else None


def outputs_and_grads(module, x, rel, pad):
    """Output on real tokens and the gradients of x, the relative table and every parameter."""
    keep = torch.ones(x.shape[:2], dtype=torch.bool) if pad is None else ~pad
    x.grad = rel.grad = None
    module.zero_grad()
    out = module(x, rel, pad) * keep.unsqueeze(-1)  # padded query rows differ by design (key-only mask)
    out.pow(2).sum().backward()
    return [out, x.grad, rel.grad] + [p.grad for p in module.parameters()]


def max_error(fast, ref, x, rel, pad):
    """Largest difference over the output and all gradients (both None where a term is left out)."""
    pairs = list(zip(outputs_and_grads(fast, x, rel, pad), outputs_and_grads(ref, x, rel, pad)))
    assert all((a is None) == (b is None) for a, b in pairs)
    return max((a - b).abs().max().item() for a, b in pairs if a is not None)


# (buckets, max_rel, rows): identity buckets within the length; log buckets (several distances share a slot, and
# beyond max_rel the clamped last slot); no bucketing at all (buckets 0: 2 x max_rel rows).
BUCKETS = [(64, 128, 128), (8, 24, 16), (0, 20, 40)]


@pytest.mark.parametrize("buckets,max_rel,rows", BUCKETS)
@pytest.mark.parametrize("length", [9, 45])
@pytest.mark.parametrize("padded", [False, True])
def test_fused_values_and_gradients_equal_reference(buckets, max_rel, rows, length, padded):
    fast, ref = make_pair(buckets, max_rel)
    assert max_error(fast, ref, *inputs(length, rows, padded=padded)) <= 1e-5


@pytest.mark.parametrize("pos_att_type", [("c2p",), ("p2c",), ()])
@pytest.mark.parametrize("share_att_key", [True, False])
def test_fused_equals_reference_for_each_relative_term_and_separate_projections(pos_att_type, share_att_key):
    fast, ref = make_pair(share_att_key=share_att_key, pos_att_type=pos_att_type)
    assert max_error(fast, ref, *inputs(37, 16)) <= 1e-5


@pytest.mark.parametrize("padded", [False, True])
def test_fused_kernel_gradients_of_q_k_v_equal_reference(padded):
    fast, ref = make_pair()
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, HEADS, 45, HEAD_DIM, generator=generator).requires_grad_() for _ in range(3))
    _, rel, pad = inputs(45, 16, padded=padded)
    real = torch.ones(2, 45, dtype=torch.bool) if pad is None else ~pad
    results = []
    for attention in (fast._fused, ref._reference):
        q.grad = k.grad = v.grad = None
        out = attention(q, k, v, rel, pad) * real[:, None, :, None]
        out.pow(2).sum().backward()
        results.append([out, q.grad, k.grad, v.grad])
    assert max((a - b).abs().max().item() for a, b in zip(*results)) <= 1e-5


def test_fused_row_with_a_single_real_key_is_finite_and_exact():
    fast, ref = make_pair()
    x, rel, pad = inputs(40, 16)
    pad[0, 1:] = True
    assert max_error(fast, ref, x, rel, pad) <= 1e-5


def test_fused_fp16_scores_beyond_the_fp16_range_stay_finite_and_close_to_fp32():
    fast, ref = make_pair()
    x, rel, pad = inputs(45, 16)
    x, rel = (x * 1000).detach(), (rel * 1000).detach()  # scores of order 1e6: the fp16 reference overflows
    want = ref(x, rel, pad)
    half = fast.half()
    x16 = x.half().requires_grad_()
    got = half(x16, rel.half(), pad)
    got.float().sum().backward()
    assert not torch.isfinite(ref.half()(x.half(), rel.half(), pad)).all()
    assert torch.isfinite(got).all() and torch.isfinite(x16.grad).all()
    assert ((got.float() - want)[~pad].abs().max() / want.abs().max()).item() < 2e-3  # fp16 rounding, 6e-4 seen


def test_fused_dropout_equals_reference_given_the_kernels_keep_mask(monkeypatch):
    p = 0.3
    fast, ref = make_pair(dropout=p)
    fast.train(), ref.train()
    x, rel, pad = inputs(21, 16)  # 2 x 2 tiles, the last ones partial (Philox is slow in the interpreter)
    torch.manual_seed(7)
    keep = fused.keep_mask(fused.draw_seed(), x.size(0), HEADS, x.size(1), p, x.device)
    torch.manual_seed(7)  # the fused forward draws the same seed (pos_dropout is 0: nothing else is drawn)
    got = outputs_and_grads(fast, x, rel, pad)
    monkeypatch.setattr(disentangled_attention.F, "dropout", lambda probs, p, training: probs * keep / (1 - p))
    want = outputs_and_grads(ref, x, rel, pad)
    assert max((a - b).abs().max().item() for a, b in zip(got, want)) <= 1e-5
    assert not torch.equal(got[0], outputs_and_grads(fast.eval(), x, rel, pad)[0])  # dropout did act


def test_fused_dropout_mask_is_redrawn_identically_under_activation_checkpointing():
    # torch's checkpoint restores the CPU generator before recomputing, so the kernel gets the same Philox seed.
    fast, _ = make_pair(dropout=0.3)
    fast.train()
    x, rel, pad = inputs(9, 16)
    grads = []
    for wrap in (lambda *a: fast(*a), lambda *a: torch.utils.checkpoint.checkpoint(fast, *a, use_reentrant=False)):
        x.grad = None
        torch.manual_seed(5)
        wrap(x, rel, pad).pow(2).sum().backward()
        grads.append(x.grad.clone())
    assert torch.equal(*grads)


def test_keep_mask_keeps_one_minus_p_and_depends_only_on_the_seed():
    first = fused.keep_mask(11, 2, 3, 64, 0.25, "cpu")
    assert torch.equal(first, fused.keep_mask(11, 2, 3, 64, 0.25, "cpu"))
    assert not torch.equal(first, fused.keep_mask(12, 2, 3, 64, 0.25, "cpu"))
    assert abs(first.float().mean().item() - 0.75) < 0.02  # 24,576 draws: 4.5 standard deviations
    assert not torch.equal(first[0, 0], first[0, 1]) and not torch.equal(first[0, 0], first[1, 0])


def test_fused_on_cpu_without_the_interpreter_says_how_to_run_it(monkeypatch):
    monkeypatch.setattr(fused, "INTERPRETED", False)
    fast, _ = make_pair()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        fast(*inputs(9, 16))


def test_fused_without_triton_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "vega_toolkit.modules.fused_disentangled_attention", None)
    fast, _ = make_pair()
    with pytest.raises(RuntimeError, match="needs triton"):
        fast(*inputs(9, 16))


def test_vega_encoder_with_attention_impl_fused_equals_reference_on_real_tokens(tmp_path):
    from test_vega_encoder import TOKENS, build

    model, _ = build(tmp_path, "--attention-impl", "fused")  # vega_tiny: 2 layers, 2 heads of 64, 256 buckets
    assert model.encoder.layers[0].self_attn.attention_impl == "fused"
    fast = model(TOKENS, features_only=True)[0]
    model.encoder.set_attention_impl("reference")
    ref = model(TOKENS, features_only=True)[0]
    assert (fast - ref)[TOKENS.ne(1)].abs().max() <= 1e-5


def test_fused_is_a_choice_of_the_encoder_config_but_not_the_default():
    from vega_toolkit.models.vega_encoder import VegaEncoderConfig

    assert "fused" in disentangled_attention.ATTENTION_IMPLS
    assert VegaEncoderConfig().attention_impl == "sdpa"
