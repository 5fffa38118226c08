"""On a CUDA GPU: the SDPA fast path and the fused Triton kernel equal the reference math, mixed precision stays
finite, vega-train trains in bf16/fp16 and its checkpoints reload. Skipped where torch sees no GPU (CI has none):
`pytest tests/test_cuda.py`.
With a GPU, the fused tests fail rather than skip when the compiled kernels cannot run (a skip there reads as a pass).
The fused parity helpers take any device: tests/test_fused_attention.py runs them on CPU in Triton's interpreter.
"""

import copy
import importlib
import re
import subprocess
import sys

import pytest
import torch

from vega_toolkit.io import checkpoints
from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TRAIN = [sys.executable, "-m", "vega_toolkit.cli.train"]


@pytest.fixture(autouse=True)
def exact_fp32_matmuls():
    # TF32 would make fp32 GEMMs accurate to ~1e-3 only; the parity bounds below are fp32 ones.
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


def attention_pair(dim=64, heads=4, seed=0, impl="sdpa", device="cuda"):
    """Fast and reference modules with the same weights, on the GPU, real (256 / 512) log-bucket settings."""
    torch.manual_seed(seed)
    fast = DisentangledSelfAttention(dim, heads, attention_impl=impl).to(device)
    ref = copy.deepcopy(fast)
    ref.attention_impl = "reference"
    return fast, ref


def cuda_inputs(batch=3, length=300, dim=64, rows=512, padded=True, seed=1, device="cuda"):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=generator).to(device).requires_grad_()
    rel = torch.randn(rows, dim, generator=generator).to(device).requires_grad_()
    pad = None
    if padded:
        pad = torch.zeros(batch, length, dtype=torch.bool, device=device)
        pad[1, length - 37 :] = True
        pad[2, 5:] = True
    return x, rel, pad


def real_rows(pad, x):
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if pad is None else ~pad


# length 300 > 128: distances beyond the identity range go through the log buckets.
@pytest.mark.parametrize("length", [40, 300])
@pytest.mark.parametrize("padded", [False, True])
def test_fast_path_equals_reference_on_cuda_values_and_gradients(length, padded):
    fast, ref = attention_pair()
    x, rel, pad = cuda_inputs(length=length, padded=padded)
    keep = real_rows(pad, x)
    results = []
    for module in (fast, ref):
        x.grad = rel.grad = None
        module.zero_grad()
        out = module(x, rel, pad)
        (out * keep.unsqueeze(-1)).square().sum().backward()
        results.append((out.detach(), x.grad.clone(), rel.grad.clone(), module.query_proj.weight.grad.clone()))
    (out_fast, *grads_fast), (out_ref, *grads_ref) = results
    assert (out_fast - out_ref)[keep].abs().max().item() <= 1e-5
    for got, expected in zip(grads_fast, grads_ref, strict=True):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), (got - expected).abs().max()


def test_cuda_output_equals_cpu_output():
    fast, _ = attention_pair()
    x, rel, pad = cuda_inputs()
    with torch.no_grad():
        on_gpu = fast(x, rel, pad)
        on_cpu = copy.deepcopy(fast).cpu()(x.cpu(), rel.cpu(), pad.cpu())
    keep = real_rows(pad, x)
    assert (on_gpu.cpu() - on_cpu)[keep.cpu()].abs().max().item() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_output_is_close_to_fp32_and_gradients_are_finite(dtype):
    fast, _ = attention_pair()
    fast.train()
    fast.attention_dropout = 0.0
    x, rel, pad = cuda_inputs()
    keep = real_rows(pad, x)
    with torch.no_grad():
        expected = fast(x, rel, pad)
    with torch.autocast("cuda", dtype=dtype):
        out = fast(x, rel, pad)
    assert out.dtype == dtype
    assert (out.float() - expected)[keep].abs().max().item() < 0.05
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(fast.key_proj.weight.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_huge_scores_do_not_overflow_under_autocast(dtype):
    # scores of order 1e6: fp16 cannot hold them; the bias is built in fp32 and SDPA accumulates in fp32.
    fast, _ = attention_pair()
    x, rel, pad = cuda_inputs()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        out = fast(x * 1000, rel, pad)
    assert torch.isfinite(out).all()


def test_pure_fp16_module_stays_finite_with_huge_scores():
    fast, _ = attention_pair()
    fast = fast.half()
    x, rel, pad = cuda_inputs()
    with torch.no_grad():
        out = fast((x * 1000).half(), rel.half(), pad)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


@pytest.fixture
def fused_kernel():
    """The fused attention module, compiled (imported here: test_fused_attention.py may set TRITON_INTERPRET)."""
    try:
        fused = importlib.import_module("vega_toolkit.modules.fused_disentangled_attention")
    except ImportError as error:
        pytest.fail(f"CUDA is present but the fused kernel's module does not import: {error}")
    if fused.INTERPRETED:
        pytest.fail("TRITON_INTERPRET=1 is set: the compiled kernels this file checks cannot run; unset it")
    return fused


def fused_outputs_and_grads(module, x, rel, pad, dtype=None):
    """Output (real rows) and the gradients of x, the relative table and the query / key projections."""
    keep = real_rows(pad, x)
    x.grad = rel.grad = None
    module.zero_grad()
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = module(x, rel, pad)
    (out.float() * keep.unsqueeze(-1)).square().sum().backward()
    return [out.float()[keep], x.grad, rel.grad, module.query_proj.weight.grad, module.key_proj.weight.grad]


def assert_fused_close_to_fp32_reference(got, want, dtype=None):
    """fp32 (dtype None): output within 1e-5, gradients allclose at 1e-4; under 16-bit autocast: output within the
    sdpa path's 0.05, gradients finite and within 5% of their largest entry."""
    if dtype is None:
        assert (got[0] - want[0]).abs().max().item() <= 1e-5, (got[0] - want[0]).abs().max()
        for g, w in zip(got[1:], want[1:], strict=True):
            assert torch.allclose(g, w, rtol=1e-4, atol=1e-4), (g - w).abs().max()
        return
    assert (got[0] - want[0]).abs().max().item() < 0.05, (got[0] - want[0]).abs().max()
    for g, w in zip(got[1:], want[1:], strict=True):
        assert torch.isfinite(g).all() and (g - w).abs().max() <= 0.05 * w.abs().max(), (g - w).abs().max()


@pytest.mark.parametrize("length", [40, 300])
@pytest.mark.parametrize("padded", [False, True])
def test_fused_kernel_equals_reference_on_cuda_in_fp32(fused_kernel, length, padded):
    fast, ref = attention_pair(impl="fused")
    x, rel, pad = cuda_inputs(length=length, padded=padded)
    assert_fused_close_to_fp32_reference(
        fused_outputs_and_grads(fast, x, rel, pad), fused_outputs_and_grads(ref, x, rel, pad)
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_kernel_under_autocast_is_close_to_fp32_reference(fused_kernel, dtype):
    fast, ref = attention_pair(impl="fused")
    x, rel, pad = cuda_inputs(length=300)
    assert_fused_close_to_fp32_reference(
        fused_outputs_and_grads(fast, x, rel, pad, dtype), fused_outputs_and_grads(ref, x, rel, pad), dtype
    )


# The production head dim (64: width 128 over 2 heads, the compiled kernels' default tiles) at L = 128 and at
# L = 1100, where distances run beyond the 512 relative positions (clamped: whole tiles read one slot).
@pytest.mark.parametrize("length", [128, 1100])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_kernel_at_head_dim_64_equals_reference(fused_kernel, length, dtype):
    fast, ref = attention_pair(dim=128, heads=2, impl="fused")
    x, rel, pad = cuda_inputs(length=length, dim=128)
    assert_fused_close_to_fp32_reference(
        fused_outputs_and_grads(fast, x, rel, pad, dtype), fused_outputs_and_grads(ref, x, rel, pad), dtype
    )


def test_fused_kernel_huge_scores_stay_finite_in_fp16(fused_kernel):
    fast, _ = attention_pair(impl="fused")
    x, rel, pad = cuda_inputs()
    with torch.autocast("cuda", dtype=torch.float16):
        out = fast(x * 1000, rel, pad)
    out.float().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_fused_kernel_dropout_equals_reference_given_its_keep_mask(fused_kernel, monkeypatch):
    fast, ref = attention_pair(impl="fused")
    fast.attention_dropout = ref.attention_dropout = 0.1
    fast.train(), ref.train()
    x, rel, pad = cuda_inputs(length=300)
    torch.manual_seed(3)
    keep = fused_kernel.keep_mask(fused_kernel.draw_seed(), x.size(0), 4, x.size(1), 0.1, x.device)
    torch.manual_seed(3)  # the same seed for the forward (pos_dropout is 0)
    got = fused_outputs_and_grads(fast, x, rel, pad)
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda probs, p, training: probs * keep / (1 - p))
    want = fused_outputs_and_grads(ref, x, rel, pad)
    assert abs(keep.float().mean().item() - 0.9) < 0.01
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-4), (g - w).abs().max()


@pytest.mark.parametrize("precision", ["--bf16", "--fp16"])
def test_vega_train_mixed_precision_on_gpu_then_checkpoint_reloads(precision, tiny_data_bin, tmp_path):
    save_dir = tmp_path / "ckpt"
    args = [
        str(tiny_data_bin),
        "--task",
        "denoising_pretrain",
        "--criterion",
        "rtd_ternary",
        "--arch",
        "vega_tiny",
        "--tokens-per-sample",
        "64",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--max-update",
        "8",
        "--save-dir",
        str(save_dir),
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
        "--log-interval",
        "1",
        "--seed",
        "2",
        precision,
    ]
    run = subprocess.run(TRAIN + args, capture_output=True, text=True)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    losses = [float(v) for v in re.findall(r"train_inner.* loss=([-\d.e+naif]+)", log)]
    assert losses and all(v == v and abs(v) < 1e4 for v in losses), losses
    state = checkpoints.load_checkpoint_to_cpu(str(save_dir / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 8
    weights = state["model"]
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
