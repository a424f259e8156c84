"""Numbers, sizes and shapes as every output writes them (lenses, hovers, tables).

Imports nothing of paramlens: the rest of :mod:`paramlens.render` builds on it.
"""

from __future__ import annotations

from collections.abc import Sequence

EXACT_BELOW = 10_000_000
SEP = " · "


def format_count(n: int) -> str:
    """``669,706`` up to 10 M, then ``124.4M``, ``70.55B``, ``1.20T``."""
    if n < EXACT_BELOW:
        return f"{n:,}"
    if n < 10**9:
        return f"{n / 1e6:.1f}M"
    if n < 10**12:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e12:.2f}T"


def format_bytes(n: int) -> str:
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_macs(n: int) -> str:
    """``11.99M`` multiply-adds, as torchinfo rounds them."""
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def share(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


OPTIMIZER_NAMES = {"adamw": "AdamW", "adam": "Adam", "sgd-momentum": "SGD+momentum", "sgd": "SGD"}
