"""What the server knows about each open document, kept up to date as the user types.

Pure logic (no LSP types): the last good :class:`FileReport`, where its lines are
now after edits (:class:`LineMap`, which follows insertions and deletions above a
line), whether it is stale, and what the newest analysis said. Handlers read this
synchronously, so a code lens or hover never waits on the worker.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..engine import FileReport
from ..worker.protocol import ErrorInfo, LayerEntry, ModelResult


class LineMap:
    """Maps the 1-based lines of an analysed text to the lines of the current text."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._map: dict[int, int] | None = None  # None: identity

    def update(self, new_text: str) -> None:
        new_lines = new_text.splitlines()
        matcher = difflib.SequenceMatcher(a=self._lines, b=new_lines, autojunk=False)
        step: dict[int, int] = {}
        for tag, a1, a2, b1, b2 in matcher.get_opcodes():
            # unchanged lines, and lines edited in place (typing on a layer line), keep going
            if tag == "equal" or (tag == "replace" and a2 - a1 == b2 - b1):
                for offset in range(a2 - a1):
                    step[a1 + offset + 1] = b1 + offset + 1
        self._map = (
            step
            if self._map is None
            else {orig: step[now] for orig, now in self._map.items() if now in step}
        )
        self._lines = new_lines

    def get(self, line: int) -> int | None:
        """Where analysed ``line`` is now; None if it was deleted or edited."""
        return line if self._map is None else self._map.get(line)


@dataclass
class DocumentState:
    uri: str
    path: str
    text: str
    version: int | None = None
    report: FileReport | None = None  # the last good analysis
    lines: LineMap | None = None
    stale: bool = False
    latest: FileReport | None = None  # the newest analysis, good or not
    generation: int = 0  # bumps on every edit: results for older text are stale
    text_lines: list[str] = field(default_factory=list)  # ``text`` split once, for ranges

    def __post_init__(self) -> None:
        self.text_lines = self.text.splitlines()

    def edit(self, text: str, version: int | None) -> None:
        if self.lines is not None:
            self.lines.update(text)
        if text != self.text:
            self.stale = self.report is not None
            self.generation += 1
        self.text = text
        self.text_lines = text.splitlines()
        self.version = version

    def line_text(self, line: int) -> str:
        """The current text of 1-based ``line`` ("" past the end)."""
        return self.text_lines[line - 1] if 0 < line <= len(self.text_lines) else ""

    def accept(self, report: FileReport, generation: int) -> None:
        """Take a finished analysis of the text of ``generation``."""
        self.latest = report
        if generation != self.generation:
            return  # the user typed meanwhile; keep showing what we have, stale
        if _is_good(report, self.report):
            self.report = report
            self.lines = LineMap(self.text)
            self.stale = False
        else:
            self.stale = self.report is not None

    def models(self) -> Iterator[tuple[ModelResult, int]]:
        """Models of the shown report with their current class line."""
        if self.report is None or self.lines is None:
            return
        for model in self.report.models:
            line = self.lines.get(model.line)
            if line is not None:
                yield model, line

    def layers(self) -> Iterator[tuple[LayerEntry, int]]:
        if self.report is None or self.lines is None:
            return
        for analysed, entry in self.report.lines.items():
            line = self.lines.get(analysed)
            if line is not None:
                yield entry, line

    def layer_at(self, line: int) -> LayerEntry | None:
        return next((entry for entry, now in self.layers() if now == line), None)

    def model_at(self, line: int) -> ModelResult | None:
        return next((model for model, now in self.models() if now == line), None)

    def model_named(self, name: str) -> ModelResult | None:
        source = self.report or self.latest
        if source is None:
            return None
        return next((m for m in source.models if m.name == name), None)

    def enclosing_model(self, line: int) -> ModelResult | None:
        """The model whose class line is the nearest at or above ``line``."""
        best = None
        for model, now in self.models():
            if now <= line and (best is None or now > best[1]):
                best = (model, now)
        return best[0] if best else None

    def errors(self) -> list[tuple[ModelResult | None, ErrorInfo]]:
        """What the newest analysis could not do, for diagnostics."""
        report = self.latest
        if report is None:
            return []
        found: list[tuple[ModelResult | None, ErrorInfo]] = []
        if report.syntax_error is not None:
            found.append((None, report.syntax_error))
        found += [(m, m.error) for m in report.models if m.error is not None]
        return found


def _is_good(new: FileReport, old: FileReport | None) -> bool:
    """Replace what is shown unless the new result lost something that used to build."""
    if new.syntax_error is not None:
        return False
    if old is None:
        return True
    built_before = {m.name for m in old.models if m.error is None}
    broken_now = {
        m.name for m in new.models if m.error is not None and m.error.kind != "needs-args"
    }
    return not (built_before & broken_now)
