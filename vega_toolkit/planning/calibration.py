"""Calibration files: measured peak memory and step time of configurations on a card (benchmarks/calibration/*.json).

    rows = load_calibration("benchmarks/calibration/h200.json")

    python -u benchmarks/planner_calibration.py --out benchmarks/calibration   # on a GPU: writes <gpu>.json

Measured peak memory and step time per configuration, as vega-plan --validate compares them with its prediction.
The file format and what each row kind measures: docs/design.md#calibration-files.
"""

import json
import os
from dataclasses import dataclass, field

CALIBRATION_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks", "calibration"
)
KINDS = ("train_step", "encoder_speed")


class CalibrationError(ValueError):
    pass


@dataclass
class CalibrationRow:
    name: str
    kind: str
    argv: list[str]
    vocab_size: int
    peak_allocated_bytes: int
    step_ms: float
    length: int = 0
    batch_size: int = 0
    resident_params: int = 0
    peak_reserved_bytes: int | None = None
    context_bytes: int | None = None


@dataclass
class Calibration:
    gpu: str
    path: str
    source: str
    rows: list[CalibrationRow] = field(default_factory=list)

    def allocator_overhead(self) -> float | None:
        """Measured reserved / allocated - 1 (mean over rows that carry both), or None."""
        ratios = [r.peak_reserved_bytes / r.peak_allocated_bytes - 1 for r in self.rows if r.peak_reserved_bytes]
        return sum(ratios) / len(ratios) if ratios else None

    def context_bytes(self) -> int | None:
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


def calibration_files(directory: str = CALIBRATION_DIR) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))


def write_calibration(
    path: str, gpu: str, device_name: str, torch_version: str, source: str, rows: list[CalibrationRow]
):
    from dataclasses import asdict

    from vega_toolkit.io.atomic import atomic_write

    text = json.dumps(
        {
            "gpu": gpu,
            "device_name": device_name,
            "torch": torch_version,
            "source": source,
            "rows": [asdict(r) for r in rows],
        },
        indent=1,
    )
    atomic_write(path, lambda f: f.write((text + "\n").encode()))
