"""The engine's result cache: the most recently used results in memory, all on disk."""

from __future__ import annotations

from pathlib import Path

from paramlens.engine.cache import ResultCache
from paramlens.worker.protocol import JobResult


def result(n: int) -> JobResult:
    return JobResult(models=(), notes=(f"result {n}",))


def test_memory_keeps_the_most_recently_used_results_and_the_folder_keeps_all(
    tmp_path: Path,
) -> None:
    # every edit of a file is a new key: a long session must not keep them all in memory
    cache = ResultCache(folder=tmp_path, limit=3)
    for n in range(5):
        cache.put(f"k{n}", result(n))
    assert list(cache.memory) == ["k2", "k3", "k4"]
    assert cache.get("k2") == result(2)  # used: now the most recent
    cache.put("k5", result(5))
    assert list(cache.memory) == ["k4", "k2", "k5"]
    again = cache.get("k0")  # evicted from memory, read back from the folder
    assert again == result(0) and list(cache.memory) == ["k2", "k5", "k0"]


def test_without_a_folder_an_evicted_result_is_gone() -> None:
    cache = ResultCache(limit=2)
    for n in range(3):
        cache.put(f"k{n}", result(n))
    assert cache.get("k0") is None and cache.get("k2") == result(2)
