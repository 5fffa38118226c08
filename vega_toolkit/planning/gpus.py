"""The cards vega-plan knows: memory and dense peak FLOP/s (`--gpu NAME`; `--gpu-memory` / `--gpu-flops` override).

Memory is `nvidia-smi --query-gpu=memory.total` (MiB) of the SXM parts; peaks are NVIDIA's datasheet numbers for
dense tensor-core math (no 2:4 sparsity): A100 312 TFLOP/s bf16/fp16, 19.5 fp32; H100 SXM and H200 989 bf16/fp16,
67 fp32 (NVIDIA A100 and H100/H200 datasheets). fairseq does not enable TF32, so an fp32 run is planned at the fp32
peak.
"""

from dataclasses import dataclass

MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int
    half_flops: float  # bf16 / fp16 dense tensor-core peak
    fp32_flops: float

    def peak_flops(self, dtype: str) -> float:
        return self.fp32_flops if dtype == "fp32" else self.half_flops


GPUS: dict[str, Gpu] = {
    g.name: g
    for g in (
        Gpu("a100-40gb", 40960 * MIB, 312e12, 19.5e12),
        Gpu("a100-80gb", 81920 * MIB, 312e12, 19.5e12),
        Gpu("h100-80gb", 81559 * MIB, 989e12, 67e12),
        Gpu("h200", 143771 * MIB, 989e12, 67e12),
    )
}


def get_gpu(name: str, memory_gib: float = 0.0, flops: float = 0.0) -> Gpu:
    """The card ``name``, with memory (GiB) and bf16/fp16 peak (FLOP/s) overridden where given (> 0)."""
    if name not in GPUS:
        if not (memory_gib > 0 and flops > 0):
            raise ValueError(
                f"--gpu {name!r} is not one of {', '.join(GPUS)} (or give --gpu-memory and --gpu-flops "
                "for another card)"
            )
        return Gpu(name, int(memory_gib * GIB), flops, flops / 16)
    gpu = GPUS[name]
    return Gpu(
        gpu.name, int(memory_gib * GIB) if memory_gib > 0 else gpu.memory_bytes, flops or gpu.half_flops, gpu.fp32_flops
    )
