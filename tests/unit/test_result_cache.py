"""The engine's result cache: the most recently used results in memory, all on disk."""

from __future__ import annotations

from pathlib import Path

from paramlens.engine.cache import ResultCache, rows
from paramlens.worker.protocol import JobResult, LayerEntry, ModelResult


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


def big(n: int, lines: int) -> JobResult:
    """A result whose one model has ``lines`` layer lines (a big file's, by rows)."""
    entry = LayerEntry("f.py", 1, "Linear", 1, 10, ())
    model = ModelResult("M", "f.py", 1, layers=(entry,) * lines)
    return JobResult(models=(model,), notes=(f"result {n}",))


def test_memory_is_bounded_by_what_the_results_hold_not_only_their_count() -> None:
    assert rows(big(0, 99)) == 100  # the model and its lines
    cache = ResultCache(limit=64, row_limit=250)
    for n in range(4):
        cache.put(f"k{n}", big(n, 99))
    assert list(cache.memory) == ["k2", "k3"]  # two of 100 rows fit in 250, not three
    cache.put("huge", big(9, 999))  # over the bound alone: kept, as the newest always is
    assert list(cache.memory) == ["huge"]
    cache.put("small", result(5))  # the next one pushes it out
    assert list(cache.memory) == ["small"]
