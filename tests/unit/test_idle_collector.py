"""The language server's full garbage collections wait for a pause between analyses
(lsp/idle.py): none starts by itself in the middle of one, however much it allocates."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from typing import Any

import pytest
from paramlens.lsp.idle import IdleCollector, malloc_trim


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


RELEASE_CHECK = """
import asyncio, re
from paramlens.lsp.idle import IdleCollector

def rss_mb():
    text = open("/proc/self/status").read()
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", text).group(1)) / 1024

async def main():
    collector = IdleCollector(delay_s=0.01)
    collector.started()
    blocks = [bytes(2000) for _ in range(100_000)]  # 200 MB from malloc, not pymalloc
    last = bytes(2000)  # after them: the heap's top stays in use, so free() cannot shrink it
    del blocks
    before = rss_mb()
    collector.finished()
    await asyncio.sleep(0.2)
    collector.close()
    print(round(before), round(rss_mb()), collector.collections, len(last))

asyncio.run(main())
"""


@pytest.mark.skipif(malloc_trim() is None, reason="glibc's malloc_trim only")
def test_memory_freed_before_a_pause_goes_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", RELEASE_CHECK], capture_output=True, text=True, check=True
    ).stdout
    before, after, collections, _ = map(int, out.split())
    assert collections == 1
    assert before > 150  # glibc kept the 200 MB freed below the heap's top
    assert after < before - 150, (before, after)
