"""Read scalar curves back from the TensorBoard event files fairseq writes with `--tensorboard-logdir`.

    from vega_toolkit.metrics.tensorboard import read_scalars
    curves = read_scalars("runs/phase1/train")      # {"rtd_acc": [(step, value), ...], ...}

tensorboardX writes events but ships no reader, and the `tensorboard` package is a large dependency for one loop:
an event file is a sequence of TFRecords (uint64 length, uint32 crc, payload, uint32 crc) whose payloads are
`Event` protobufs, which tensorboardX does ship.
"""

import struct
from collections import defaultdict
from pathlib import Path

from tensorboardX.proto import event_pb2


def iter_events(path: str | Path):
    """Every `Event` of one event file; a record cut short by a crash ends the iteration quietly."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            payload = f.read(length)
            if len(payload) < length or len(f.read(4)) < 4:
                return
            event = event_pb2.Event()
            event.ParseFromString(payload)
            yield event


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series under `logdir` (event files in it, not in sub-folders), sorted by step."""
    curves = defaultdict(list)
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in iter_events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    curves[value.tag].append((event.step, value.simple_value))
    return {tag: sorted(points) for tag, points in curves.items()}
