"""What the server knows about each open document, kept up to date as the user types.

Pure logic (no LSP types): the last good :class:`FileReport`, where its lines are
now after edits (:class:`LineMap`, which follows insertions and deletions above a
line), whether it is stale, and what the newest analysis said. Handlers read this
synchronously, so a code lens or hover never waits on the worker.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from ..engine.engine import FileReport
from ..worker.protocol import ErrorInfo, ForwardInfo, LayerEntry, ModelResult


class LineMap:
    """Maps the 1-based lines of an analysed text to the lines of the current text.

    Each edit is kept as one step: the unchanged lines above it stay, those below it move
    by the edit's line count, and only the changed stretch in between is diffed. A
    keystroke in a 10 MB document costs a few list comparisons, not a diff of the file.
    """

    MAX_DIFF = 4_000_000  # old x new lines of a changed stretch that difflib may compare

    def __init__(self, text: str, lines: list[str] | None = None) -> None:
        self._lines = text.splitlines() if lines is None else lines
        # (lines kept above, first old line kept below, shift below, map of the middle)
        self._steps: list[tuple[int, int, int, dict[int, int]]] = []

    def update(self, new_text: str, new_lines: list[str] | None = None) -> None:
        new_lines = new_text.splitlines() if new_lines is None else new_lines
        old_lines = self._lines
        limit = min(len(old_lines), len(new_lines))
        head = _common_run(old_lines, new_lines, limit)
        tail = _common_run(old_lines[::-1], new_lines[::-1], limit - head)
        a_mid = old_lines[head : len(old_lines) - tail]
        b_mid = new_lines[head : len(new_lines) - tail]
        middle: dict[int, int] = {}
        if len(a_mid) == len(b_mid):  # lines edited in place (typing on a layer line)
            middle = {head + i: head + i for i in range(1, len(a_mid) + 1)}
        elif len(a_mid) * len(b_mid) <= self.MAX_DIFF:
            matcher = difflib.SequenceMatcher(a=a_mid, b=b_mid, autojunk=False)
            for tag, a1, a2, b1, b2 in matcher.get_opcodes():
                # unchanged lines, and lines edited in place, keep going
                if tag == "equal" or (tag == "replace" and a2 - a1 == b2 - b1):
                    for offset in range(a2 - a1):
                        middle[head + a1 + offset + 1] = head + b1 + offset + 1
        # else: a huge rewrite; its middle lines lose their figures until the next analysis
        below = len(old_lines) - tail + 1
        if head < len(old_lines) or len(old_lines) != len(new_lines):
            self._steps.append((head, below, len(new_lines) - len(old_lines), middle))
        self._lines = new_lines

    def get(self, line: int) -> int | None:
        """Where analysed ``line`` is now; None if it was deleted or edited."""
        current: int | None = line
        for head, below, shift, middle in self._steps:
            if current is None:
                return None
            if current <= head:
                continue
            current = current + shift if current >= below else middle.get(current)
        return current


def _changed_lines(old: list[str], new: list[str]) -> tuple[int, int]:
    """The 1-based lines of ``new`` an edit of ``old`` changed (the line it is at, for a
    deletion): whatever the client sends, whole texts or ranges."""
    limit = min(len(old), len(new))
    head = _common_run(old, new, limit)
    tail = _common_run(old[::-1], new[::-1], limit - head)
    return head + 1, max(head + 1, len(new) - tail)


def _common_run(a: list[str], b: list[str], limit: int) -> int:
    """How many leading lines ``a`` and ``b`` share (at most ``limit``): a binary search
    over slice comparisons, which run in C, instead of a Python loop over every line."""
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


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
    # ``text`` split once, for ranges: its lines as the editor shows them (a notebook's
    # module shows its cells as written: magics, and the lines of a cell left out)
    text_lines: list[str] = field(default_factory=list)
    analysed_lines: list[str] = field(default_factory=list)  # the text ``report`` came from
    # After an edit, the classes at the edit are rebuilt first (:meth:`accept_partial`):
    # until the rest follows, the others keep their last figures, shown stale.
    edited: tuple[int, int] | None = None  # the lines of the newest edit (current text)
    visible: tuple[int, int] | None = None  # the lines the editor last asked hints for
    pending: set[str] = field(default_factory=set)  # models of ``report`` not rebuilt yet
    stale_lines: set[int] = field(default_factory=set)  # their lines (current text)

    def __post_init__(self) -> None:
        self.text_lines = self.text_lines or self.text.splitlines()

    def edit(self, text: str, version: int | None, shown: list[str] | None = None) -> None:
        """The document's new text; ``shown``, its lines as the editor shows them when
        they are not ``text``'s own (a notebook's)."""
        text_lines = text.splitlines() if shown is None else shown
        if self.lines is not None:
            self.lines.update(text, text_lines)
        if text != self.text:
            self.stale = self.report is not None
            self.generation += 1
            self.edited = _changed_lines(self.text_lines, text_lines)
        self.text = text
        self.text_lines = text_lines
        self.version = version

    def focus(self) -> list[tuple[int, int]]:
        """Where the user is: the newest edit's lines, else the lines last shown."""
        where = self.edited or self.visible
        return [where] if where else []

    def model_stale(self, model: ModelResult) -> bool:
        return self.stale or model.name in self.pending

    def line_stale(self, line: int) -> bool:
        return self.stale or line in self.stale_lines

    def accept_partial(self, report: FileReport, generation: int) -> None:
        """Take the first models of an analysis of the text of ``generation`` (the edited
        classes): shown as final at once; the other models keep their last figures, moved
        to where their lines are now and shown stale, until :meth:`accept` takes the rest."""
        if generation != self.generation or self.report is None or self.lines is None:
            return
        if not _is_good(report, self.report):
            return
        fresh = {m.name for m in report.models}
        models = list(report.models)
        pending = set()
        for model in self.report.models:
            line = self.lines.get(model.line)
            if model.name not in fresh and line is not None:
                models.append(replace(model, line=line))
                pending.add(model.name)
        lines = dict(report.lines)
        stale_lines = set()
        for analysed, entry in self.report.lines.items():
            line = self.lines.get(analysed)
            if line is not None and line not in lines:
                lines[line] = entry
                stale_lines.add(line)
        merged = replace(report, models=tuple(models), lines=lines)
        self.latest = merged
        self.report = merged
        self.lines = LineMap(self.text, self.text_lines)
        self.analysed_lines = self.text_lines
        self.stale = False
        self.pending, self.stale_lines = pending, stale_lines

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
            self.lines = LineMap(self.text, self.text_lines)
            self.analysed_lines = self.text_lines
            self.stale = False
            self.pending, self.stale_lines = set(), set()
        else:
            self.stale = self.report is not None

    def models(self) -> Iterator[tuple[ModelResult, int]]:
        """Models of the shown report with their current class line."""
        if self.report is None or self.lines is None:
            return
        for model in self.report.models:
            line = self.lines.get(model.line)
            if line is not None and model.kind != "config":  # a config is listed on its class
                yield model, line

    def layers(self) -> Iterator[tuple[LayerEntry, int]]:
        if self.report is None or self.lines is None:
            return
        for analysed, entry in self.report.lines.items():
            line = self.lines.get(analysed)
            if line is not None:
                yield entry, line

    def unchanged_line(self, analysed: int) -> int | None:
        """Where analysed ``analysed`` is now, if its text is still the same (a column on
        it still points at the same character); None if it was deleted or edited."""
        if self.lines is None or not 0 < analysed <= len(self.analysed_lines):
            return None
        line = self.lines.get(analysed)
        if line is None or self.line_text(line) != self.analysed_lines[analysed - 1]:
            return None
        return line

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

    def forward_failures(self) -> list[tuple[ModelResult, ForwardInfo, ErrorInfo]]:
        """Models of the newest analysis that were built but whose forward() failed
        because of their code (:meth:`ForwardInfo.code_at_fault`)."""
        report = self.latest
        if report is None:
            return []
        return [
            (m, m.forward, m.forward.error)
            for m in report.models
            if m.forward is not None and m.forward.error is not None and m.forward.code_at_fault()
        ]


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


def document_key(uri: str) -> str:
    """Which open document ``uri`` names: URIs compare percent-decoded, as pygls keys its
    own copy of the texts (``file:///ws/m%6Fdel.py`` is ``file:///ws/model.py``)."""
    return unquote(uri)


class OpenDocuments(dict[str, DocumentState]):
    """The open documents by :func:`document_key`: a URI spelled otherwise opens, edits or
    closes the same document, never a second one for the same file (whose text would
    shadow the first's in every analysis of the workspace)."""

    def __getitem__(self, uri: str) -> DocumentState:
        return super().__getitem__(document_key(uri))

    def __setitem__(self, uri: str, state: DocumentState) -> None:
        super().__setitem__(document_key(uri), state)

    def __contains__(self, uri: object) -> bool:
        return isinstance(uri, str) and super().__contains__(document_key(uri))

    def get(self, uri: str, default: Any = None) -> Any:
        return super().get(document_key(uri), default)

    def pop(self, uri: str, default: Any = None) -> Any:
        return super().pop(document_key(uri), default)
