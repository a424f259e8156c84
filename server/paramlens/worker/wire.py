"""JSON-lines framing between the worker's processes: one message per line.

Used by every process of the worker (the worker, zygotes, build children) to write
messages and to take complete lines out of what a pipe delivered. Standard library only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import protocol


def emit(fd: int, message: dict[str, Any]) -> None:
    """Write ``message`` as one line, all of it (a pipe may take it in parts)."""
    view = memoryview((protocol.dumps(message) + "\n").encode())
    while view:
        view = view[os.write(fd, view) :]


def read_messages(buffer: bytearray, chunk: bytes) -> list[dict[str, Any]]:
    """Append ``chunk`` to ``buffer``; take out and decode every complete JSON line."""
    buffer += chunk
    *lines, rest = buffer.split(b"\n")
    buffer[:] = rest
    return [json.loads(line) for line in lines if line.strip()]
