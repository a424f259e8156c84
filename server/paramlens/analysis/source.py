"""A Python file's bytes to text as the interpreter decodes them, and the size beyond
which a file is not parsed. The standard library only (no other paramlens module): the
model (:class:`~.model.FileInfo` reads its text lazily) and the readers both use it."""

from __future__ import annotations

import hashlib
import io
import tokenize
from pathlib import Path

# Parsing holds the interpreter lock: a 1 MB file takes 1-2 s here, during which the
# language server answers nothing. Larger files are generated code, not model definitions.
MAX_SOURCE_CHARS = 2**20


class SourceError(Exception):
    """A file that is not valid Python source text: its message and 1-based line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def decode_source(data: bytes) -> str:
    """Python source bytes to text as the interpreter decodes them (PEP 263 coding line,
    UTF-8 BOM, else UTF-8), with universal newlines; :class:`SourceError` if it cannot."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown codec in the coding line, a BOM that contradicts it
        raise SourceError(f"SyntaxError: {exc.msg}", exc.lineno or 1) from exc
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1]
        declared = (
            f"the file declares {encoding}"
            if encoding != "utf-8"
            else "no encoding is declared, so it must be UTF-8"
        )
        message = (
            f"SyntaxError: byte {byte!r} on line {line} is not valid {encoding} "
            f"({declared}; add a '# -*- coding: ... -*-' line or re-save it as UTF-8)"
        )
        raise SourceError(message, line) from exc
    if encoding == "utf-8-sig":
        text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def read_source(path: Path) -> str:
    """The text of a Python file (:class:`SourceError` if it is not valid source text)."""
    return decode_source(path.read_bytes())
