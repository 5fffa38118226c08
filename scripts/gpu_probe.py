"""What a GPU machine runs, checked before the GPU checks spend its time: versions against the pins this project was
tested with, the device and its capability, the imports the checks need, and one small fused-attention call compiled
and run forward and backward (the kernels log their registers, spills and shared memory).

    python -u scripts/gpu_probe.py        # stage 1 of scripts/gpu_checks.sh

Exit status 1 (after printing everything it could) when torch sees no CUDA device, an import fails, TRITON_INTERPRET
is set, or the fused call fails or differs from the reference; version differences are reported, not fatal.
"""

import importlib
import logging
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pinned_versions():
    """{package: version} from the ``name==version`` lines of requirements/*.txt."""
    pins = {}
    for path in sorted((ROOT / "requirements").glob("*.txt")):
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return pins


def version_line(name: str, pins: dict) -> tuple:
    """('name version (pin ...)', imported) for one package; a missing package is reported, not raised."""
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 -- a broken install shows as its error, and the probe goes on
        return f"{name}: does not import ({type(error).__name__}: {error})", False
    version = getattr(module, "__version__", "?")
    pin = pins.get(name.replace("_", "-").lower())
    note = "" if pin is None else " (= tested pin)" if str(version).split("+")[0] == pin else f" (tested pin {pin})"
    return f"{name} {version}{note}", True


def fused_smoke_test(torch) -> str:
    """Fused attention at head dim 64, L = 200 with padding, dropout off, bf16 autocast, against the fp32 reference."""
    import copy

    from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention

    torch.manual_seed(0)
    fast = DisentangledSelfAttention(128, 2, attention_impl="fused").cuda()
    ref = copy.deepcopy(fast)
    ref.attention_impl = "reference"
    x = torch.randn(2, 200, 128, device="cuda", requires_grad=True)
    rel = torch.randn(512, 128, device="cuda")
    pad = torch.zeros(2, 200, dtype=torch.bool, device="cuda")
    pad[1, 150:] = True
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = fast(x, rel, pad)
    out.float().square().sum().backward()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        want = ref(x, rel, pad)
    error = (out.float() - want)[~pad].abs().max().item()
    if not (torch.isfinite(x.grad).all() and error < 0.05):  # tests/test_cuda.py's bf16 bound
        raise RuntimeError(
            f"bf16 output differs from the fp32 reference by {error:.3g} (bound 0.05) or grads are not finite"
        )
    return f"fused attention bf16 fwd+bwd (first call, compiling included): {seconds:.1f} s, max |error| {error:.2g}"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    ok = True
    pins = pinned_versions()
    print(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}")
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("gpu_probe: TRITON_INTERPRET=1 is set: the compiled kernels would not run; unset it")
        ok = False
    lines = [version_line(name, pins) for name in ("torch", "triton", "transformers", "fairseq", "numpy")]
    for line, imported in lines:
        print(line)
        ok &= imported
    import torch

    print(f"torch CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        print(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"nvidia-smi: {type(error).__name__}: {error}")
    if not torch.cuda.is_available():
        print("gpu_probe: torch sees no CUDA device")
        return 1
    props = torch.cuda.get_device_properties(0)
    print(
        f"device {props.name}: capability {props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB, "
        f"{props.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}, "
        f"{torch.cuda.device_count()} device(s)"
    )
    try:
        fused = importlib.import_module("vega_toolkit.modules.fused_disentangled_attention")
        print(f"fused kernel configs on CUDA: {fused.kernel_configs('cuda')}")
        print(fused_smoke_test(torch))
    except Exception as error:  # noqa: BLE001 -- the probe reports what failed and exits 1
        import traceback

        traceback.print_exc()
        print(f"gpu_probe: the fused kernel failed: {type(error).__name__}: {error}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
