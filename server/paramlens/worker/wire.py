"""JSON-lines framing between the worker's processes: one message per line.

Used by every process of the worker (the worker, zygotes, build children) to write
messages and to take complete lines out of what a pipe delivered. Standard library only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import protocol


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def emit(fd: int, message: dict[str, Any]) -> None:
    write_all(fd, (protocol.dumps(message) + "\n").encode())


def read_messages(buffer: bytearray, chunk: bytes) -> list[dict[str, Any]]:
    """Append ``chunk`` to ``buffer``; take out and decode every complete JSON line."""
    buffer += chunk
    *lines, rest = buffer.split(b"\n")
    buffer[:] = rest
    return [json.loads(line) for line in lines if line.strip()]
