"""Registers, spills and shared memory of the fused attention kernels compiled for a CUDA architecture, on any machine:
Triton compiles to a cubin without a GPU, and its bundled cuobjdump reads each kernel's registers and stack (spills)
from it. It shows a tile / warp / stage choice that spills before a GPU window is spent on it, and that the kernels
compile at all.

    python benchmarks/fused_kernel_resources.py                                  # sm_90 (H100 / H200), bf16, d = 64
    VEGA_FUSED_BWD_KV_WARPS=8 python benchmarks/fused_kernel_resources.py --arch 80 --dtype fp32

The kernels as vega_base runs them: both relative terms, key padding, dropout on; the configs are
``kernel_configs("cuda")`` with the VEGA_FUSED_* knobs. On a GPU the module logs the same three numbers per kernel
when it first compiles it (from the loaded binary).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("fused_kernel_resources.py: unset TRITON_INTERPRET (the interpreter compiles nothing)")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from vega_toolkit.modules import fused_disentangled_attention as fused  # noqa: E402

KERNELS = {"fwd": fused._forward_kernel, "bwd_kv": fused._backward_kv_kernel, "bwd_q": fused._backward_q_kernel}
# Argument types as _FusedDisentangledAttention passes them (16-bit activations, fp32 statistics and table grads).
FP32 = {"ROW_MAX", "ROW_SUM", "DELTA", "DK", "DQ", "DP2C", "DC2P"}
SCALARS = {"H": "i32", "L": "i32", "S": "i32", "scale": "fp32", "dropout_p": "fp32", "seed": "i32"}


def signature(kernel, dtype: str, constexprs: dict) -> dict:
    """Triton type of every argument: constexpr, scalar, or a pointer (activations in ``dtype``)."""
    pointers = {"SLOT": "*i32", "PAD": "*i8"}
    return {
        name: "constexpr"
        if name in constexprs
        else SCALARS.get(name) or pointers.get(name) or ("*fp32" if name in FP32 else f"*{dtype}")
        for name in kernel.arg_names
    }


def cubin_resources(cubin: bytes) -> tuple:
    """(registers per thread, stack bytes per thread) of Triton's own cubin, from the bundled cuobjdump. The stack is
    local memory, i.e. spills: the driver's local size, which Triton reports as n_spills = bytes / 4 on a GPU."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        run = subprocess.run([str(tool), "-res-usage", str(path)], capture_output=True, text=True)
    usage = re.search(r"REG:(\d+) STACK:(\d+)", run.stdout)
    if run.returncode or not usage:
        raise RuntimeError(f"cuobjdump -res-usage failed: {(run.stderr or run.stdout).strip()[-2000:]}")
    return int(usage.group(1)), int(usage.group(2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (80: A100, 90: H100 / H200)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--head-dim", type=int, default=64)
    args = p.parse_args()
    if args.arch < 80:
        p.error(f"--arch {args.arch}: the kernels target sm_80 and newer")
    configs = fused.kernel_configs("cuda")
    constants = dict(
        HEAD_DIM=args.head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(args.head_dim)),
        HAS_C2P=True,
        HAS_P2C=True,
        HAS_PAD=True,
        DROPOUT=True,
        PRECISION="ieee" if args.dtype == "fp32" else "tf32",
    )
    print(
        f"\nfused attention kernels, sm_{args.arch}, {args.dtype}, head dim {args.head_dim}, c2p + p2c + padding + "
        f"dropout, triton {triton.__version__} (cuobjdump -res-usage)\n"
    )
    print("| kernel | BLOCK_M | BLOCK_N | warps | stages | registers / thread | stack (spill) B / thread | shared B |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kernel in KERNELS.items():
        config = configs[name]
        values = dict(constants, BLOCK_M=config.block_m, BLOCK_N=config.block_n)
        source = ASTSource(kernel, signature(kernel, args.dtype, values), constexprs=values)
        compiled = triton.compile(
            source,
            target=GPUTarget("cuda", args.arch, 32),
            options={"num_warps": config.num_warps, "num_stages": config.num_stages},
        )
        registers, stack = cubin_resources(compiled.asm["cubin"])
        print(
            f"| {name} | {config.block_m} | {config.block_n} | {config.num_warps} | {config.num_stages} | "
            f"{registers} | {stack} | {compiled.metadata.shared} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
