"""Readers for the official GLUE release files; every malformed row is an error naming file and line.

    from vega_toolkit.data.glue_readers import read_glue_split
    examples = read_glue_split("glue_data", "MRPC", "dev")    # -> list[GlueExample]
    examples[0].text_a, examples[0].text_b, examples[0].label, examples[0].index

Files are split on tabs only, with quoting off: STS-B and MRPC contain unbalanced `"` that a csv reader would
merge across lines (the reason fairseq and HF read them with quoting disabled). A UTF-8 BOM (MRPC's header) is
dropped. Nothing is skipped silently: a wrong field count, an unknown label, an empty line in the middle of a file
or a wrong header raises `GlueFormatError("FILE:LINE: ...")`.
"""

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

from vega_toolkit.data.glue_tasks import GlueSplit, GlueTaskSpec, get_glue_task
from vega_toolkit.data.text_files import not_utf8_message
from vega_toolkit.errors import UserError


class GlueFormatError(UserError):
    """A GLUE file does not have the official format; the message starts with `path:line:`."""


@dataclass(frozen=True)
class GlueExample:
    index: str  # the test file's index column, or the zero-based data-row number for train/dev files
    text_a: str
    text_b: str | None
    label: str | None  # the label string as written in the file (a float string for STS-B); None for test
    line: int  # 1-based line number in the file, for error messages downstream


def _lines(path: str) -> Iterator[tuple]:
    # utf-8-sig drops MRPC's BOM; newline="" keeps "\r" inside fields visible so we can strip exactly one ending
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            for number, raw in enumerate(f, start=1):
                yield number, raw[:-1] if raw.endswith("\n") else raw
        except UnicodeDecodeError:
            raise GlueFormatError(not_utf8_message(path)) from None  # names the line and the byte


def _check_label(task: GlueTaskSpec, value: str, where: str) -> str:
    if task.is_regression:
        try:
            score = float(value)
        except ValueError:
            raise GlueFormatError(f"{where}: {task.name} score {value!r} is not a number") from None
        if not (math.isfinite(score) and 0.0 <= score <= 5.0):
            raise GlueFormatError(f"{where}: {task.name} score {value!r} is outside [0, 5]")
        return value
    if value not in task.labels:
        raise GlueFormatError(f"{where}: {task.name} label {value!r} is not one of {list(task.labels)}")
    return value


def read_glue_file(path: str, task: str | GlueTaskSpec, split: str) -> list[GlueExample]:
    """Read one GLUE TSV `path` laid out as `task`'s `split` (e.g. "train", "dev_matched", "test")."""
    task = get_glue_task(task)
    spec = split_spec(task, split)
    require_glue_file(path, task, split)
    examples: list[GlueExample] = []
    pending_blank = None  # a blank line is only allowed as the very last line of a file
    for number, line in _lines(path):
        where = f"{path}:{number}"
        if line.endswith("\r"):
            line = line[:-1]
        if pending_blank is not None:
            raise GlueFormatError(f"{path}:{pending_blank}: empty line inside the file")
        if line == "":
            pending_blank = number
            continue
        fields = line.split("\t")
        if number == 1 and spec.header is not None:
            if tuple(f.strip().lower() for f in fields) != tuple(h.lower() for h in spec.header):
                raise GlueFormatError(
                    f"{where}: expected the {task.name} {split} header {chr(9).join(spec.header)!r}, "
                    f"found {line[:200]!r}"
                )
            continue
        if len(fields) != spec.num_fields:
            raise GlueFormatError(
                f"{where}: expected {spec.num_fields} tab-separated fields for {task.name} {split}, found {len(fields)}"
            )
        texts = [fields[c] for c in spec.text_columns]
        if any(t.strip() == "" for t in texts):
            raise GlueFormatError(f"{where}: empty sentence in {task.name} {split}")
        label = None if spec.label_column is None else _check_label(task, fields[spec.label_column], where)
        index = str(len(examples)) if spec.index_column is None else fields[spec.index_column]
        examples.append(GlueExample(index, texts[0], texts[1] if len(texts) > 1 else None, label, number))
    if not examples:
        raise GlueFormatError(f"{path}: no data rows for {task.name} {split}")
    return examples


def split_spec(task: GlueTaskSpec, split: str) -> GlueSplit:
    if split not in task.splits:
        raise KeyError(f"GLUE task {task.name} has no split {split!r} (known: {', '.join(task.splits)})")
    return task.splits[split]


def require_glue_file(path: str, task: GlueTaskSpec, split: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing {task.name} {split} file (expected {task.splits[split].file})")


def glue_split_path(glue_dir: str, task: str | GlueTaskSpec, split: str) -> str:
    """Path of `split` of `task` under a GLUE root (glue_data/) or directly inside the task folder. When the file
    exists in neither, the path it should have (so that an error names the right place)."""
    task = get_glue_task(task)
    spec = split_spec(task, split)
    nested = os.path.join(glue_dir, task.folder, spec.file)
    direct = os.path.join(glue_dir, spec.file)
    if os.path.isfile(nested):
        return nested
    if os.path.isfile(direct) or os.path.basename(os.path.normpath(glue_dir)) == task.folder:
        return direct
    return nested


def read_glue_split(glue_dir: str, task: str | GlueTaskSpec, split: str) -> list[GlueExample]:
    """Read `split` of `task` from a GLUE root folder (or from the task's own folder)."""
    return read_glue_file(glue_split_path(glue_dir, task, split), task, split)
