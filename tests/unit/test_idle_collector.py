"""The language server's full garbage collections wait for a pause between analyses
(lsp/idle.py): none starts by itself in the middle of one, however much it allocates."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from paramlens.lsp.idle import IdleCollector


def full_collections(during: Any) -> int:
    """How many full collections ran while ``during()`` ran."""
    seen = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(callback)
    try:
        during()
    finally:
        gc.callbacks.remove(callback)
    return len(seen)


class Node:
    def __init__(self, parent: Node | None) -> None:
        self.parent = parent
        self.children: list[Node] = []


def allocate() -> list[Node]:
    """Many survivors, as a scan or a parse makes: young collections promote them."""
    kept = []
    for _ in range(200_000):
        kept.append(Node(kept[-1] if kept else None))
    return kept


def test_no_full_collection_during_an_analysis_one_when_idle() -> None:
    thresholds = gc.get_threshold()
    assert full_collections(lambda: [allocate() for _ in range(3)]) > 0  # Python's own

    async def run() -> tuple[int, int, int]:
        collector = IdleCollector(delay_s=0.05, most=1000)
        try:
            collector.started()
            during = full_collections(lambda: [allocate() for _ in range(3)])
            collector.finished()
            before = collector.collections
            await asyncio.sleep(0.2)
            return during, before, collector.collections
        finally:
            collector.close()

    during, before, after = asyncio.run(run())
    assert during == 0
    assert (before, after) == (0, 1)
    assert gc.get_threshold() == thresholds


def test_a_server_that_never_rests_still_collects() -> None:
    async def run() -> int:
        collector = IdleCollector(delay_s=10, most=3)
        try:
            for _ in range(8):  # each edit's analysis replaces the last before it ends
                collector.started()
            return collector.collections
        finally:
            collector.close()

    assert asyncio.run(run()) == 2
