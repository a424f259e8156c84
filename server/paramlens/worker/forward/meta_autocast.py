"""``torch.autocast("meta", ...)`` inside a model's forward() (x-transformers' rotary
embeddings: ``with autocast(t.device.type, enabled=False)``) raises ``unsupported
scalarType`` on meta tensors: while a forward() runs, autocast for ``"meta"`` is
autocast for ``"cpu"``, whose state never touches meta operators.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from torch.amp import autocast_mode


@contextlib.contextmanager
def meta_autocast() -> Iterator[None]:
    original = autocast_mode.autocast.__init__

    @functools.wraps(original)
    def init(self: autocast_mode.autocast, device_type: str, *args: Any, **kwargs: Any) -> None:
        original(self, "cpu" if device_type == "meta" else device_type, *args, **kwargs)

    autocast_mode.autocast.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        autocast_mode.autocast.__init__ = original  # type: ignore[method-assign]
