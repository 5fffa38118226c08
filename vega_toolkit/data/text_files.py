"""UTF-8 checks for input text files: a file in another encoding is an error naming the file, line and byte.

    from vega_toolkit.data.text_files import require_utf8
    require_utf8("pool.txt")      # ValueError("pool.txt:3: not UTF-8 (byte 0xe9 at column 17); convert it, ...")

Python's own UnicodeDecodeError names neither the file nor the line, and a reader that decodes lazily raises it
only when it gets there (for vega-select: after both language models were trained).
"""

from vega_toolkit.errors import UserError


class NotUtf8Error(UserError):
    """A text input that is not UTF-8; the message starts with `path:line:`."""


def not_utf8_message(path: str) -> str:
    """`path:line: ...` for the first line of `path` that is not UTF-8, with the conversion command; UTF-16 (which
    Windows tools write) is recognised by its byte-order mark."""
    with open(path, "rb") as f:
        if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return (
                f"{path}:1: the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; convert "
                f"it, e.g. iconv -f UTF-16 -t UTF-8 {path} > converted"
            )
        f.seek(0)
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return (
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); convert "
                    f"it, e.g. iconv -f WINDOWS-1252 -t UTF-8 {path} > converted"
                )
    return f"{path}: not UTF-8 text"


def require_utf8(path: str, chunk_bytes: int = 1 << 24):
    """Raise NotUtf8Error unless all of `path` decodes as UTF-8 (read in chunks: a pool of GBs is fine)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk_bytes), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise NotUtf8Error(not_utf8_message(path)) from None
