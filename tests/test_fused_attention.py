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
    ref = DisentangledSelfAttention(
        HEADS * HEAD_DIM,
        HEADS,
        attention_dropout=dropout,
        pos_att_type=pos_att_type,
        share_att_key=share_att_key,
        position_buckets=buckets,
        max_relative_positions=max_rel,
        attention_impl="reference",
    )
    fast = copy.deepcopy(ref)
    fast.attention_impl, fast.FUSED_BLOCK = "fused", BLOCK
    return fast, ref


def inputs(length, rows, batch=2, padded=True, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, HEADS * HEAD_DIM, generator=generator).requires_grad_()
    rel = torch.randn(rows, HEADS * HEAD_DIM, generator=generator).requires_grad_()
    pad = torch.zeros(batch, length, dtype=torch.bool)
    if padded:
        pad[1, length // 2 + 1 :] = True
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
    pairs = list(zip(outputs_and_grads(fast, x, rel, pad), outputs_and_grads(ref, x, rel, pad), strict=True))
    assert all((a is None) == (b is None) for a, b in pairs)
    return max((a - b).abs().max().item() for a, b in pairs if a is not None)


# (buckets, max_rel, rows): identity buckets within the length; log buckets (several distances share a slot, and
# beyond max_rel the clamped last slot); no bucketing at all (buckets 0: 2 x max_rel rows).
BUCKETS = [(64, 128, 128), (8, 24, 16), (0, 20, 40)]


@pytest.mark.parametrize("buckets,max_rel,rows", BUCKETS)
@pytest.mark.parametrize("length", [9, pytest.param(45, marks=pytest.mark.slow)])  # 45: 5-7 s each in the interpreter
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
    assert max((a - b).abs().max().item() for a, b in zip(*results, strict=True)) <= 1e-5


@pytest.mark.parametrize("block", [(16, 32), (32, 16)])
def test_fused_backward_with_query_tiles_unlike_key_tiles_equals_reference(block):
    # dK/dV run over key tiles, dQ over query tiles: each grid must count its own tiles (L = 45: 3 of 16, 2 of 32).
    fast, ref = make_pair()
    fast.FUSED_BLOCK = block
    assert max_error(fast, ref, *inputs(45, 16)) <= 1e-5


def test_fused_tile_knobs_from_the_environment_reach_the_kernels(monkeypatch):
    monkeypatch.setenv("VEGA_FUSED_BLOCK_M", "16")
    monkeypatch.setenv("VEGA_FUSED_BWD_KV_BLOCK_N", "32")
    configs = fused.kernel_configs("cpu")
    assert (configs["bwd_kv"].block_m, configs["bwd_kv"].block_n, configs["bwd_q"].block_n) == (16, 32, 32)
    fast, ref = make_pair()
    fast.FUSED_BLOCK = None  # the knobs decide
    assert max_error(fast, ref, *inputs(45, 16, padded=False)) <= 1e-5


@pytest.mark.parametrize(
    "knob,value,message",
    [
        ("VEGA_FUSED_BLOCK_M", "24", "power of two >= 16"),
        ("VEGA_FUSED_FWD_WARPS", "three", "num_warps"),
        ("VEGA_FUSED_BWD_Q_STAGES", "0", "num_stages"),
    ],
)
def test_bad_kernel_knob_is_named_in_the_error(knob, value, message):
    with pytest.raises(ValueError, match=f"{knob}='{value}': .*{message}"):
        fused.kernel_configs("cuda", environ={knob: value})


@pytest.mark.slow
def test_fused_tiles_whose_distances_share_one_slot_sum_their_table_gradients_exactly():
    # buckets 8 over max_rel 24: every distance beyond 24 reads the last slot, so at L = 80 a 16 x 16 tile whose
    # distances all exceed 24 maps to one slot (its table gradients are summed before the atomic add), and the
    # tiles near the diagonal do not.
    length, tile = 80, 16
    cols = disentangled_attention.relative_columns(length, 8, 24, "cpu")
    slots_per_tile = {
        len(set(cols.c2p[n - m + length - 1 - (tile - 1) : n - m + length - 1 + tile].tolist()))
        for m in range(0, length, tile)
        for n in range(0, length, tile)
    }
    assert 1 in slots_per_tile and max(slots_per_tile) > 1
    fast, ref = make_pair(8, 24)
    x, rel, pad = inputs(length, 16, batch=1, padded=False)  # one sequence: 25 tiles per head are enough
    pad = torch.zeros(1, length, dtype=torch.bool)
    pad[0, 70:] = True
    assert max_error(fast, ref, x, rel, pad) <= 1e-5


def test_fused_row_whose_keys_are_all_padded_is_uniform_with_no_score_gradient_as_in_reference():
    # The reference fills every score of such a row with finfo.min: softmax 1 / L and no gradient through the scores.
    fast, ref = make_pair()
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, HEADS, 21, HEAD_DIM, generator=generator).requires_grad_() for _ in range(3))
    rel = torch.randn(16, HEADS * HEAD_DIM, generator=generator).requires_grad_()
    pad = torch.zeros(2, 21, dtype=torch.bool)
    pad[0] = True  # every key of the first sequence is padded (and so is every query: the reference agrees there)
    results = []
    for attention in (fast._fused, ref._reference):
        q.grad = k.grad = v.grad = rel.grad = None
        out = attention(q, k, v, rel, pad)
        out.pow(2).sum().backward()
        results.append([out, q.grad, k.grad, v.grad, rel.grad])
    assert max((a - b).abs().max().item() for a, b in zip(*results, strict=True)) <= 1e-5
    assert torch.equal(results[0][1][0], torch.zeros_like(q[0]))  # no score gradient reaches the padded sequence


def test_fused_slot_map_of_another_length_is_refused_before_any_kernel_runs():
    q = k = v = torch.randn(1, HEADS, 9, HEAD_DIM)
    pos = torch.randn(HEADS, 16, HEAD_DIM)
    longer = disentangled_attention.relative_columns(10, 8, 24, "cpu").c2p  # 19 entries where L = 9 needs 17
    with pytest.raises(ValueError, match=r"slot_of must map the 2L - 1 = 17 distances of L = 9"):
        fused.fused_disentangled_attention(q, k, v, pos, pos, longer, scale=0.1)


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


@pytest.mark.slow
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
    assert max((a - b).abs().max().item() for a, b in zip(got, want, strict=True)) <= 1e-5
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


@pytest.mark.slow
def test_cuda_fused_parity_check_at_head_dim_64_holds_in_the_interpreter():
    # tests/test_cuda.py's helpers (inputs, outputs and gradients, bounds) at the production head dim, on CPU: the GPU
    # runs the same check at L = 128 and 1100; here L = 40 keeps the interpreter quick.
    import test_cuda

    fast, ref = test_cuda.attention_pair(dim=128, heads=2, impl="fused", device="cpu")
    x, rel, pad = test_cuda.cuda_inputs(length=40, dim=128, device="cpu")
    test_cuda.assert_fused_close_to_fp32_reference(
        test_cuda.fused_outputs_and_grads(fast, x, rel, pad), test_cuda.fused_outputs_and_grads(ref, x, rel, pad)
    )
