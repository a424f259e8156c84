"""A Jupyter notebook as one Python module: its code cells, in order, as one source text,
with a map from that text's lines back to (cell, line in the cell).

The module text has exactly one line per line of each code cell, so that a line of the
module is a line of a cell and nothing else: what IPython would run that Python cannot
(``%matplotlib inline``, ``!pip install``, ``files = !ls``, ``obj?``, a ``%%time``
line) becomes an empty line (``pass`` where indented, to keep the block); a cell whose
magic runs another language (``%%bash``, ``%%writefile``, ``%%html``) is left out whole,
its lines empty; a cell that does not compile is left out the same way, with its error
kept for that cell, so the other cells still form a module (the file's syntax error would
otherwise take every figure of the notebook). A ``from __future__`` import in a later cell
(or after other code in its cell) stays where it is: a kernel compiles each statement with
the future flags of those run before it, and so does the worker's loader, one top-level
statement at a time; it applies from there on. What the module *runs* is then decided as
for any ``.py`` file: the worker's loader keeps imports, definitions and declarations,
and skips loops, ``with`` blocks and bare calls.

Outputs are never looked at: the JSON is decoded by :func:`json.loads` (C), and only the
``source`` of each code cell is kept from it.

Pure: the standard library and :mod:`.source`, nothing else of paramlens."""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .source import SourceError, decode_source

NOTEBOOK_SUFFIX = ".ipynb"

# A cell magic whose body is Python: the body is kept (what a kernel would run), its
# first line left out. Any other cell magic runs something else: the cell is left out.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3"})

# Lines that can hold something IPython transforms: only these cells are scanned closely.
_MAYBE_MAGIC = re.compile(r"^[ \t]*[%!?]|\?[ \t]*$|=[ \t]*[%!]", re.MULTILINE)
# `files = !ls`, `t = %timeit -o f()`: an assignment from a magic or a shell escape
_ASSIGNED_MAGIC = re.compile(r"^[\w.]+(?:[ \t]*,[ \t]*[\w.]+)*[ \t]*=[ \t]*[%!]")
# `torch.nn.Linear?`, `??model`, `model.forward??`: IPython's help
_HELP = re.compile(r"^\?{0,2}[\w.\[\]()'\"]+\?{0,2}$")


def is_notebook(path: str | Path) -> bool:
    return str(path).endswith(NOTEBOOK_SUFFIX)


def notebook_module(path: str | Path) -> str:
    """The module name a notebook's code runs as: its file name made an identifier, with
    ``_ipynb`` so that it never names a ``.py`` module beside it (``mnist.ipynb`` and
    ``mnist.py`` often sit together). No dot: a notebook belongs to no package."""
    stem = Path(path).name.removesuffix(NOTEBOOK_SUFFIX)
    name = re.sub(r"\W", "_", stem)
    return f"{'_' if name[:1].isdigit() else ''}{name}_ipynb"


@dataclass(frozen=True)
class CellSpan:
    """Where one code cell's lines are in the module text."""

    number: int  # 1-based among the code cells: the n of ``# In [n]``
    first_line: int  # 1-based line of the module where the cell's first line is
    line_count: int
    index: int = -1  # position among all the notebook's cells (markdown ones too), 0-based


@dataclass(frozen=True)
class CellError:
    """A code cell left out of the module because it does not compile."""

    cell: int  # its number
    line: int  # 1-based, within the cell
    module_line: int  # the same line in the module text
    message: str


@dataclass(frozen=True)
class NotebookSource:
    text: str  # the module: one line per line of each code cell
    cells: tuple[CellSpan, ...]
    errors: tuple[CellError, ...] = ()
    written: tuple[str, ...] = ()  # each code cell's text as written (magics and all)

    def locate(self, line: int) -> tuple[int, int] | None:
        """(cell number, 1-based line in the cell) of 1-based module ``line``."""
        cell = self.cell_at(line)
        return None if cell is None else (cell.number, line - cell.first_line + 1)

    def cell_at(self, line: int) -> CellSpan | None:
        low, high = 0, len(self.cells)
        while low < high:  # the last cell starting at or above the line
            mid = (low + high) // 2
            if self.cells[mid].first_line <= line:
                low = mid + 1
            else:
                high = mid
        if low == 0:
            return None
        cell = self.cells[low - 1]
        return cell if line < cell.first_line + cell.line_count else None

    def shown_lines(self) -> list[str]:
        """The module's lines as the notebook shows them: each code cell's as written
        (magics, and the lines of cells left out, included), one per line of :attr:`text`."""
        return [line for cell in self.written for line in split_lines(cell)]

    def module_line(self, cell: int, line: int) -> int:
        """The module line of 1-based ``line`` of cell number ``cell``."""
        return self.cells[cell - 1].first_line + line - 1


class NotebookError(SourceError):
    """A notebook file that cannot be read as one (not JSON, not nbformat)."""


def split_lines(text: str) -> list[str]:
    """A cell's lines as editors count them (``\\n``, ``\\r\\n``, ``\\r``); a final line
    break ends the last line rather than starting an empty one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def notebook_source(cells: Sequence[str], indexes: Sequence[int] | None = None) -> NotebookSource:
    """The module of code cells ``cells`` (their texts, in order); ``indexes``, each one's
    position among all the notebook's cells."""
    lines: list[str] = []
    spans: list[CellSpan] = []
    errors: list[CellError] = []
    for number, text in enumerate(cells, start=1):
        first = len(lines) + 1
        code, error = _cell_code(text)
        lines += code
        index = indexes[number - 1] if indexes is not None else number - 1
        spans.append(CellSpan(number, first, len(code), index))
        if error is not None:
            message, line = error
            errors.append(CellError(number, line, first + line - 1, message))
    text = "\n".join(lines) + ("\n" if lines else "")
    return NotebookSource(text, tuple(spans), tuple(errors), tuple(cells))


@functools.lru_cache(maxsize=8192)  # per keystroke, only the cell edited is new
def _cell_code(text: str) -> tuple[list[str], tuple[str, int] | None]:
    """The cell's lines as module lines, and its error ``(message, line)`` if left out."""
    lines = split_lines(text)
    code = _without_magics(lines) if _MAYBE_MAGIC.search(text) else lines
    if code is None:  # a cell magic of another language: nothing of it runs as Python
        return [""] * len(lines), None
    source = "\n".join(code) + "\n"
    try:
        compile(source, "<cell>", "exec", dont_inherit=True)
    except SyntaxError as error:
        exc = _kernel_error(source) if "__future__" in source else error
        if exc is None:
            return code, None  # its `from __future__` import follows other code
        blank = [""] * len(lines)
        try:  # `await fetch()` at a cell's top level runs in IPython: a job, skipped
            compile(source, "<cell>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            return blank, None
        except SyntaxError:
            pass
        line = min(max(exc.lineno or 1, 1), max(len(lines), 1))
        return blank, (f"{type(exc).__name__}: {exc.msg}", line)
    except (ValueError, RecursionError, MemoryError) as exc:  # a NUL byte, deep nesting
        return [""] * len(lines), (f"SyntaxError: {exc}", 1)
    return code, None


def _kernel_error(source: str) -> SyntaxError | None:
    """The error IPython gives the cell, which it compiles a statement at a time: a
    ``from __future__`` import after other code, which a file may not have, is no error
    in a cell (it applies from that statement on, in this cell and the next ones, as the
    worker's loader runs it); an unknown feature is."""
    try:
        for stmt in ast.parse(source, "<cell>").body:
            compile(ast.Module([stmt], []), "<cell>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxError(str(exc))
    return None


def _without_magics(lines: list[str]) -> list[str] | None:
    """The lines with IPython's syntax left out (None: a cell of another language)."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(None, 1)
        if not magic or magic[0] not in PYTHON_CELL_MAGICS:
            return None
        lines = [*lines[:first], "", *lines[first + 1 :]]
    code: list[str] = []
    state = _Scanner()
    for line in lines:
        if state.at_statement_start() and _is_ipython_line(line.strip()):
            indent = line[: len(line) - len(line.lstrip())]
            code.append(f"{indent}pass" if indent else "")
            continue
        code.append(line)
        state.feed(line)
    return code


def _is_ipython_line(stripped: str) -> bool:
    if not stripped or stripped.startswith("#"):
        return False
    if stripped[0] in "%!":
        return True
    if _ASSIGNED_MAGIC.match(stripped):
        return True
    return "?" in stripped and _HELP.match(stripped) is not None


class _Scanner:
    """Whether the next line starts a statement: not inside brackets, a string, or after
    a backslash. Enough of Python's tokens for that (a ``%`` line inside brackets is an
    operator, not a magic)."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote = ""  # the open string's quote ("'", '"', "'''", '"""'), if any
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and not self.quote and not self.continued

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        while i < n:
            if self.quote:
                end = line.find(self.quote, i)
                while end > 0 and _escaped(line, end):
                    end = line.find(self.quote, end + 1)
                if end < 0:
                    if len(self.quote) == 1 and not line.endswith("\\"):
                        self.quote = ""  # an unterminated string: Python says so itself
                    i = n
                    break
                i = end + len(self.quote)
                self.quote = ""
                continue
            char = line[i]
            if char == "#":
                break
            if char in "'\"":
                triple = line[i : i + 3]
                self.quote = triple if triple in ("'''", '"""') else char
                i += len(self.quote)
                continue
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(self.depth - 1, 0)
            i += 1
        self.continued = not self.quote and line.endswith("\\")


def _escaped(line: str, at: int) -> bool:
    backslashes = len(line[:at]) - len(line[:at].rstrip("\\"))
    return backslashes % 2 == 1


# -- the .ipynb file -------------------------------------------------------------


def read_cells(data: bytes) -> tuple[list[str], list[int]]:
    """The code cells' texts of an ``.ipynb`` file, and each one's index among all cells;
    :class:`NotebookError` (on the JSON's line) if it is not a notebook. A notebook whose
    kernel is not Python has no code cells for us."""
    try:
        notebook = json.loads(decode_source_json(data))
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not a valid notebook (invalid JSON: {exc.msg})", exc.lineno) from exc
    except RecursionError as exc:
        raise NotebookError("not a valid notebook (its JSON is too deeply nested)", 1) from exc
    if not isinstance(notebook, dict):
        raise NotebookError("not a valid notebook (the JSON is not an object)", 1)
    cells = notebook.get("cells")
    if cells is None and isinstance(notebook.get("worksheets"), list):  # nbformat 3
        sheets = notebook["worksheets"]
        cells = [c for s in sheets if isinstance(s, dict) for c in s.get("cells") or []]
    if not isinstance(cells, list):
        raise NotebookError("not a valid notebook (no list of cells)", 1)
    if not _is_python(notebook.get("metadata")):
        return [], []
    texts: list[str] = []
    indexes: list[int] = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))  # nbformat 3 says "input"
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        texts.append(source if isinstance(source, str) else "")
        indexes.append(index)
    return texts, indexes


def decode_source_json(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise NotebookError("not a valid notebook (not UTF-8 text)", line) from exc


def _is_python(metadata: object) -> bool:
    """Unless the notebook says its language is another (R, Julia...)."""
    if not isinstance(metadata, dict):
        return True
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        value = metadata.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str):
            return value[field].lower() in ("python", "python3", "ipython", "")
    return True


def read_notebook(data: bytes) -> NotebookSource:
    """The module of an ``.ipynb`` file's bytes (:class:`NotebookError` if not one)."""
    return notebook_source(*read_cells(data))


def load_notebook(path: Path) -> NotebookSource:
    """The notebook at ``path``, read once per version of the file (the scan and the
    command line's output both need it); :class:`NotebookError`, :class:`OSError`."""
    stat = path.stat()
    return _load_notebook(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_notebook(path: str, mtime_ns: int, size: int) -> NotebookSource:
    with open(path, "rb") as f:
        return read_notebook(f.read())


def read_module_source(path: Path) -> str:
    """The Python text of ``path``: a ``.py`` file's, or a notebook's module text; a
    :class:`~.source.SourceError` if there is none."""
    if is_notebook(path):
        return load_notebook(path).text
    return decode_source(path.read_bytes())
