"""The text units of a corpus of `*.txt` files, read from any byte range: what `vega-preprocess` encodes.

    from vega_toolkit.data.corpus_text import Corpus, list_input_files
    corpus = Corpus.of(list_input_files(["books/", "extra.txt"]), paragraphs=True)
    for unit in corpus.units(start, end):   # every unit whose first byte lies in [start, end)
        ...

A unit is a non-empty line (whitespace stripped) or, with `paragraphs`, a blank-line separated paragraph joined into
one line (hard-wrapped Project Gutenberg text). The files are read as one stream of bytes in the given order; a unit
belongs to the byte range holding its first byte, so any partition of [0, corpus.size) into ranges (shards, and
chunks of shards for the workers) yields every unit exactly once, in order, whatever the partition. That is what
makes the output the same whatever `--shards` chunks and `--workers` are. Errors name `file:line`; the line number is
counted only when an error is raised (a range starting in the middle of a 100 GB file does not count its lines).
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vega_toolkit.errors import UserError

# sentencepiece's max_sentence_length: a longer unit is left out of its training, and an input made only of such
# units (a 50 MB single line) leaves it nothing to train on
MAX_UNIT_BYTES = 1 << 16
# U+0080-U+009F: what Windows-1252 punctuation (curly quotes, dashes) becomes when read as Latin-1; never text
_C1_CONTROLS = {chr(c) for c in range(0x80, 0xA0)}
# Whitespace other than space and tab (U+0085 NEL, U+2028 LINE SEPARATOR, U+001C-U+001F, ...): sentencepiece keeps
# some of them inside pieces, which then cannot be dict.txt entries ("piece '\x85' contains whitespace"); they
# separate words like a space does, so they become one
_ODD_SPACES = {c: " " for c in range(0x3001) if chr(c).isspace() and chr(c) not in " \t"}
# the ASCII ones: most text is ASCII, and a regular expression skips it much faster than str.translate
_ODD_ASCII_SPACES = re.compile("[" + "".join(chr(c) for c in _ODD_SPACES if c < 128) + "]")


def _spaces(text: str) -> str:
    if text.isascii():
        return _ODD_ASCII_SPACES.sub(" ", text)
    return text.translate(_ODD_SPACES)


def list_input_files(inputs: list[str]) -> list[Path]:
    """Files named, plus the `*.txt` files of directories named (sorted); a broken `*.txt` link is an error, never
    skipped: it is text the user meant to include."""
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = []
            for p in sorted(path.glob("*.txt")):
                if p.is_symlink() and not p.exists():
                    raise FileNotFoundError(f"vega-preprocess: {p} is a broken symbolic link (to {os.readlink(p)})")
                if p.is_file():
                    found.append(p)
            if not found:
                raise FileNotFoundError(f"vega-preprocess: input directory {path} contains no *.txt files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.is_symlink():
            raise FileNotFoundError(f"vega-preprocess: input {path} is a broken symbolic link (to {os.readlink(path)})")
        else:
            raise FileNotFoundError(f"vega-preprocess: input {path} does not exist")
    return files


def line_number(path: Path, offset: int) -> int:
    """1-based number of the line holding byte `offset` (counted only for error messages)."""
    count = 1
    with open(path, "rb") as f:
        left = offset
        while left > 0:
            block = f.read(min(left, 1 << 24))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def decode_line(raw: bytes, encoding: str, path: Path, offset: int) -> str:
    """One raw line as text (odd whitespace made spaces); ValueError naming `path:line` for binary or mis-encoded
    input. `auto` reads UTF-8 and falls back to Windows-1252 (a superset of Latin-1's text) line by line."""
    if b"\0" in raw:
        raise UserError(
            f"vega-preprocess: {path}:{line_number(path, offset)} contains NUL bytes: a binary file? "
            f"The inputs must be text files"
        )
    if encoding != "auto":
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise UserError(
                f"vega-preprocess: {path}:{line_number(path, offset)} is not {encoding} ({e}); try --encoding auto"
            ) from None
    else:
        try:
            return _spaces(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        # Older Project Gutenberg files are Latin-1, Windows editors write Windows-1252: the latter decodes both
        # (it only adds printable characters where Latin-1 has control characters)
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as e:
            raise UserError(
                f"vega-preprocess: {path}:{line_number(path, offset)} is neither UTF-8 nor "
                f"Windows-1252 (byte 0x{raw[e.start]:02x}): a binary file, or pass the file's "
                f"--encoding"
            ) from None
        encoding = "Windows-1252"
    control = next((c for c in text if c in _C1_CONTROLS), None)
    if control is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UserError(
            f"vega-preprocess: {path}:{line_number(path, offset)} read as {encoding} gives the control "
            f"character U+{ord(control):04X}: not the file's encoding (Windows-1252 text read as "
            f"Latin-1?); pass --encoding cp1252 or the file's real encoding"
        )
    return _spaces(text)


@dataclass(frozen=True)
class Corpus:
    """Input files read as one byte stream, cut into units (lines, or paragraphs)."""

    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    paragraphs: bool = False
    encoding: str = "auto"

    @classmethod
    def of(cls, files: list[Path], paragraphs: bool = False, encoding: str = "auto") -> "Corpus":
        return cls(tuple(files), tuple(os.path.getsize(f) for f in files), paragraphs, encoding)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def units(self, start: int, end: int) -> Iterator[str]:
        """Every unit whose first byte lies in [start, end) of the stream, in order."""
        for unit, _ in self.units_at(start, end):
            yield unit

    def units_at(self, start: int, end: int, limit: int | None = None) -> Iterator[tuple[str, int]]:
        """(unit, stream offset just past it) for the units starting in [start, end), at most `limit` of them."""
        base = 0
        for path, size in zip(self.files, self.sizes, strict=True):
            if base >= end:
                return
            if base + size > start:
                for unit, stop in _file_units(
                    path, max(0, start - base), min(size, end - base), self.paragraphs, self.encoding
                ):
                    yield unit, base + stop
                    if limit is not None:
                        limit -= 1
                        if limit <= 0:
                            return
            base += size

    def unit_start(self, offset: int) -> int:
        """The stream offset of the first unit starting at or after `offset` (`size` when there is none): where a
        range beginning at `offset` really begins."""
        base = 0
        for path, size in zip(self.files, self.sizes, strict=True):
            if base + size > offset:
                found = _first_unit_offset(path, max(0, offset - base), size, self.paragraphs, self.encoding)
                if found is not None:
                    return base + found
            base += size
        return self.size


def _is_blank(raw: bytes, encoding: str, path: Path, offset: int) -> bool:
    return not decode_line(raw, encoding, path, offset).strip()


def _previous_line_blank(f, path: Path, pos: int, encoding: str) -> bool:
    """Whether the line ending just before `pos` (a line start > 0) is blank."""
    window = min(pos, 4096)  # a blank line is short: a longer one is not blank
    f.seek(pos - window)
    block = f.read(window)[:-1]  # drop the newline that ends the previous line
    cut = block.rfind(b"\n")
    if cut < 0 and window < pos:
        return False
    return _is_blank(block[cut + 1 :], encoding, path, pos - 1)


def _seek_line_start(f, start: int) -> int:
    """Position `f` at the first line start >= `start`; return that offset."""
    if start == 0:
        f.seek(0)
        return 0
    f.seek(start - 1)
    if f.read(1) == b"\n":
        return start
    f.readline()
    return f.tell()


def _file_units(path: Path, start: int, end: int, paragraphs: bool, encoding: str) -> Iterator[tuple[str, int]]:
    """(unit, offset past it) for the units of one file whose first byte lies in [start, end)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"vega-preprocess: input {path} has disappeared") from None
    with f:
        pos = _seek_line_start(f, start)
        in_paragraph = paragraphs and pos > 0 and not _previous_line_blank(f, path, pos, encoding)
        f.seek(pos)
        parts: list[str] = []
        first = size = 0
        for raw in f:
            line_at = pos
            pos += len(raw)
            line = decode_line(raw, encoding, path, line_at).strip()
            if not paragraphs:
                if line_at >= end:
                    return
                if line:
                    # a UTF-8 unit is at most 3 bytes per input byte (Windows-1252 decoding): count only the long
                    yield (_checked(line, path, line_at, False) if len(raw) * 3 > MAX_UNIT_BYTES else line), pos
                continue
            if line:
                if in_paragraph and not parts:
                    continue  # the tail of a paragraph that began before `start`: the previous range's
                if not parts:
                    if line_at >= end:
                        return
                    first = line_at
                parts.append(line)
                size += len(line) + 1  # characters: a lower bound of the bytes _checked() counts
                if size > MAX_UNIT_BYTES:  # stop early: the paragraph is already too long
                    _checked(" ".join(parts), path, first, True)
            else:
                in_paragraph = False
                if parts:
                    yield _checked(" ".join(parts), path, first, True), pos
                    parts, size = [], 0
        if parts:
            yield _checked(" ".join(parts), path, first, True), pos


def _first_unit_offset(path: Path, start: int, size: int, paragraphs: bool, encoding: str) -> int | None:
    with open(path, "rb") as f:
        pos = _seek_line_start(f, start)
        in_paragraph = paragraphs and pos > 0 and not _previous_line_blank(f, path, pos, encoding)
        f.seek(pos)
        for raw in f:
            blank = _is_blank(raw, encoding, path, pos)
            if not blank and not in_paragraph:
                return pos
            if blank:
                in_paragraph = False
            pos += len(raw)
    return None


def _checked(unit: str, path: Path, offset: int, paragraphs: bool) -> str:
    n_bytes = len(unit.encode("utf-8"))
    if n_bytes > MAX_UNIT_BYTES:
        what, hint = (
            ("a paragraph", "drop --paragraphs if the file has no blank lines between paragraphs")
            if paragraphs
            else ("a line", "split the text into lines, one sentence or paragraph each")
        )
        raise UserError(
            f"vega-preprocess: {path}:{line_number(path, offset)}: {what} of {n_bytes} or more bytes, "
            f"more than the {MAX_UNIT_BYTES} sentencepiece trains on: {hint}"
        )
    return unit
