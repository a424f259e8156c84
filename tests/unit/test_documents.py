"""Where analysed lines are after edits (LineMap), cheaply even in huge documents."""

from __future__ import annotations

import time

from paramlens.lsp.documents import LineMap


def test_lines_follow_insertions_deletions_and_in_place_edits() -> None:
    lines = LineMap("a\nb\nc\nd\ne\n")
    lines.update("new\na\nb\nc\nd\ne\n")  # a line inserted above everything
    assert [lines.get(n) for n in range(1, 6)] == [2, 3, 4, 5, 6]
    lines.update("new\na\nB!\nc\ne\n")  # b edited in place, d deleted
    assert [lines.get(n) for n in range(1, 6)] == [2, 3, 4, None, 5]


def test_keystrokes_in_a_huge_document_are_not_diffed_line_by_line() -> None:
    text = "".join(f"value_{i} = {i}\n" for i in range(300_000))
    lines = LineMap(text)
    middle = text.index("value_150000 ")
    started = time.perf_counter()
    for _ in range(5):
        text = text[:middle] + "#" + text[middle:]
        lines.update(text)
    assert time.perf_counter() - started < 4  # a full diff took 18 s here
    assert lines.get(150_001) == 150_001 and lines.get(300_000) == 300_000
