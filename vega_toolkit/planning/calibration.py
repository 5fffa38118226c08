"""Calibration files: measured peak memory and step time of configurations on a card (benchmarks/calibration/*.json).

    rows = load_calibration("benchmarks/calibration/h200.json")

Written by `benchmarks/planner_calibration.py --out DIR` on a GPU (DIR/<gpu>.json) or, for measurements made before
that script existed, by hand with their source in `"source"`. One file:

    {"gpu": "h200",                      # a key of planning/gpus.py's table
     "device_name": "NVIDIA H200", "torch": "...", "source": "where the numbers come from",
     "rows": [{"name": "...", "kind": "train_step" | "encoder_speed",
               "argv": [vega-train flags of the configuration],
               "vocab_size": 8000,
               "length": 512, "batch_size": 128,                       # encoder_speed: its --tokens / L
               "resident_params": 0,                                    # other models' parameters on the card
               "peak_allocated_bytes": ..., "step_ms": ...,             # torch.cuda.max_memory_allocated; wall
               "peak_reserved_bytes": null, "context_bytes": null}]}    # optional: the allocator and the context

`train_step` rows measure the very update vega-plan traces (vega_toolkit/planning/step.py: the Trainer's model,
criterion and optimizer, `run_update`). `encoder_speed` rows are benchmarks/encoder_speed.py's step: the encoder's
forward and backward of a squared-output loss under bf16 autocast, fp32 weights, no optimizer, gradients of the
previous step resident, and the HF and plain encoders' weights on the card too (`resident_params`).
"""
import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

CALIBRATION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "benchmarks", "calibration")
KINDS = ("train_step", "encoder_speed")


class CalibrationError(ValueError):
    pass


@dataclass
class CalibrationRow:
    name: str
    kind: str
    argv: List[str]
    vocab_size: int
    peak_allocated_bytes: int
    step_ms: float
    length: int = 0
    batch_size: int = 0
    resident_params: int = 0
    peak_reserved_bytes: Optional[int] = None
    context_bytes: Optional[int] = None


@dataclass
class Calibration:
    gpu: str
    path: str
    source: str
    rows: List[CalibrationRow] = field(default_factory=list)

    def allocator_overhead(self) -> Optional[float]:
        """Measured reserved / allocated - 1 (mean over rows that carry both), or None."""
        ratios = [r.peak_reserved_bytes / r.peak_allocated_bytes - 1 for r in self.rows if r.peak_reserved_bytes]
        return sum(ratios) / len(ratios) if ratios else None

    def context_bytes(self) -> Optional[int]:
        measured = [r.context_bytes for r in self.rows if r.context_bytes]
        return max(measured) if measured else None


def load_calibration(path: str) -> Calibration:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such calibration file") from None
    except json.JSONDecodeError as error:
        raise CalibrationError(f"{path}: not JSON ({error})") from None
    rows = []
    for i, row in enumerate(data.get("rows", [])):
        try:
            rows.append(CalibrationRow(**row))
        except TypeError as error:
            raise CalibrationError(f"{path}: row {i}: {error}") from None
        if rows[-1].kind not in KINDS:
            raise CalibrationError(f"{path}: row {i}: kind must be one of {KINDS}, got {rows[-1].kind!r}")
    if not rows:
        raise CalibrationError(f"{path}: no rows")
    return Calibration(data.get("gpu", ""), path, data.get("source", ""), rows)


def calibration_files(directory: str = CALIBRATION_DIR) -> List[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))


def write_calibration(path: str, gpu: str, device_name: str, torch_version: str, source: str,
                      rows: List[CalibrationRow]):
    from dataclasses import asdict

    from vega_toolkit.io.atomic import atomic_write

    text = json.dumps({"gpu": gpu, "device_name": device_name, "torch": torch_version, "source": source,
                       "rows": [asdict(r) for r in rows]}, indent=1)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))
