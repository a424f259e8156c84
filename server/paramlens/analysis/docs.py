"""Documentation examples as constructors: calls of workspace classes in the project's own
documentation, read and never run. The fenced Python blocks of its Markdown files (every
``README.md``, and the ``*.md`` under a ``docs/`` folder), read with markdown-it-py (the
CommonMark parser); the literal blocks of its reStructuredText (every ``README.rst``, the
``*.rst`` under a ``docs/`` folder, and its docstrings: ``Examples::`` and
``.. code-block:: python``), read by :func:`rst_chunks`; and the ``>>>`` examples of its
docstrings, read with the standard library's :class:`doctest.DocTestParser`.

A call counts when its callee resolves to a workspace class, through the block's imports
(``from vit_pytorch.cait import CaiT``) or, in a docstring, through its module, and its
arguments are literals, names the block bound to literals or to such calls
(``configuration = LlamaConfig()`` then ``LlamaModel(configuration)``), or such calls
nested (``TransformerWrapper(..., attn_layers=Decoder(dim=512, depth=12))``). Each is a
:class:`~.configs.Target` tree the engine writes as a constructor expression.

Imports markdown-it-py, :mod:`.literals`, :mod:`.model`, :mod:`.reading`
and :mod:`.workspace`."""

from __future__ import annotations

import ast
import os
import re
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .literals import Budget, NotBuilt, built_call, built_value, dotted_name, try_literal
from .model import FileInfo, Target
from .reading import read_imports, syntax_tree
from .workspace import Workspace, walk_folders

MAX_DOC_FILES = 200  # Markdown files one workspace offers at most
MAX_DOC_BYTES = 512 * 1024  # a README is small: larger Markdown is generated or data
MAX_BLOCK_CHARS = 20_000  # one code block or docstring example set
DOC_FOLDERS = frozenset({"docs", "doc"})
_PYTHON_INFO = frozenset({"", "python", "py", "python3", "py3", "pycon", "ipython", "ipython3"})


@dataclass(frozen=True)
class DocExample:
    """A call of a workspace class in the documentation: ``CaiT(image_size=256, ...)``."""

    file: str  # the Markdown or Python file (absolute)
    line: int  # of the call, 1-based
    build: Target  # the class (resolved) and its arguments: literals, Refs, Targets
    docstring: bool  # an example in a docstring, not in a Markdown or reST file
    nested: bool = False  # an argument of another example's call (``attn_layers=Decoder(...)``)


@dataclass(frozen=True)
class _Chunk:
    """Python source read from documentation, with the file line of its first line."""

    text: str
    line: int


# -- finding the blocks -----------------------------------------------------------------


_DOC_SUFFIXES = (".md", ".markdown", ".rst")


def markdown_files(root: Path) -> list[str]:
    """Every README (``.md`` or ``.rst``) of the workspace and the Markdown and reST under
    its ``docs/`` folders, in a stable order (bounded; the folders a scan skips are
    skipped)."""
    found: list[str] = []
    for dirpath, filenames in walk_folders(root):
        in_docs = any(part in DOC_FOLDERS for part in Path(dirpath).relative_to(root).parts)
        for name in filenames:
            lowered = name.lower()
            if lowered.endswith(_DOC_SUFFIXES) and (in_docs or lowered.startswith("readme.")):
                found.append(os.path.join(dirpath, name))
                if len(found) >= MAX_DOC_FILES:
                    return found
    return found


def _doctest_chunks(text: str, first_line: int) -> list[_Chunk]:
    """The ``>>>`` examples of ``text`` (a docstring or a ``pycon`` block), each with its
    file line; none when the text is not a well-formed doctest."""
    try:
        import doctest  # here: a warm run reads no documentation

        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:  # inconsistent indentation of an example
        return []
    return [_Chunk(e.source, first_line + e.lineno) for e in examples]


def markdown_chunks(text: str) -> list[list[_Chunk]]:
    """The Python blocks of a Markdown text, each as its chunks (one for a plain block,
    one per example for a ``>>>`` block)."""
    from markdown_it import MarkdownIt  # here: a warm run reads no documentation

    blocks = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type not in ("fence", "code_block") or token.map is None:
            continue
        language = token.info.strip().split(" ")[0].lower() if token.type == "fence" else ""
        if language not in _PYTHON_INFO or len(token.content) > MAX_BLOCK_CHARS:
            continue
        first = token.map[0] + (2 if token.type == "fence" else 1)  # its first content line
        if ">>> " in token.content:
            blocks.append(_doctest_chunks(token.content, first))
        else:
            blocks.append([_Chunk(token.content, first)])
    return blocks


# a directive whose content is code: docutils' ``code`` (``code-block``, ``sourcecode``) and
# Sphinx's ``testcode``, with the language as its argument
_CODE_DIRECTIVE = re.compile(r"\.\.[ \t]+(code-block|code|sourcecode|testcode)::[ \t]*(\S*)")
_OTHER_DIRECTIVE = re.compile(r"\.\.[ \t]+[\w:-]+::")
RST_LITERAL = re.compile(r"::[ \t]*$|\.\.[ \t]+(code-block|code|sourcecode|testcode)::", re.M)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_chunks(text: str, first_line: int) -> list[list[_Chunk]]:
    """The Python literal blocks of reStructuredText (a ``README.rst``, or a Python file's
    docstrings, read in its source), each with the file line of its first line: the
    indented block after a paragraph that ends with ``::`` (``Examples::``, ``as follows:
    ::``), and the content of a ``code-block``/``code``/``sourcecode``/``testcode``
    directive whose language is Python or not given. The reST rule: the block is the
    lines after a blank line that are indented more than the line that opened it, up to
    the first that is not. A block that is a ``>>>`` session is left to
    :func:`_doctest_chunks`; a block in another language (a shell line, YAML) does not
    parse as Python and is skipped when read."""
    lines = text.splitlines()
    blocks: list[list[_Chunk]] = []
    counted, at, after = 0, 0, 0  # the line at text offset ``at``; the first line unread
    for match in RST_LITERAL.finditer(text):
        counted += text.count("\n", at, match.start())
        at = match.start()
        number = counted
        if number < after or number >= len(lines):
            continue  # inside the block just read
        line = lines[number].rstrip()
        stripped = line.lstrip()
        directive = _CODE_DIRECTIVE.match(stripped)
        if directive is None and (
            not stripped.endswith("::") or _OTHER_DIRECTIVE.match(stripped) is not None
        ):
            continue  # ``.. note::``: a directive's content is not a literal block
        if directive is not None and directive.group(2).lower() not in _PYTHON_INFO:
            continue
        base = _indent(line)
        number += 1
        if directive is not None:  # its options (``:linenos:``) come before the content
            while number < len(lines) and lines[number].strip().startswith(":"):
                number += 1
        start = number
        while number < len(lines) and (not lines[number].strip() or _indent(lines[number]) > base):
            number += 1
        after = number
        body = lines[start:number]
        while body and not body[0].strip():  # the blank line that opens it
            body.pop(0)
            start += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        if code and ">>>" not in code and len(code) <= MAX_BLOCK_CHARS:
            blocks.append([_Chunk(code + "\n", first_line + start)])
    return blocks


def docstring_chunks(info: FileInfo) -> list[list[_Chunk]]:
    """The examples of each docstring of ``info`` (module, classes, functions): the reST
    literal blocks of its source (:func:`rst_chunks`: outside a string, a line ending in
    ``::`` is not Python), and the ``>>>`` examples of each docstring."""
    blocks = rst_chunks(info.text, 1) if RST_LITERAL.search(info.text) else []
    tree = syntax_tree(info) if ">>>" in info.text else None
    owners: list[_DocOwner] = [tree, *_docstring_owners(tree.body)] if tree is not None else []
    for node in owners:
        first = node.body[0] if node.body else None
        if not isinstance(first, ast.Expr) or not isinstance(first.value, ast.Constant):
            continue
        text = first.value.value
        if isinstance(text, str) and ">>>" in text and len(text) <= MAX_BLOCK_CHARS:
            chunks = _doctest_chunks(text, first.lineno)
            if chunks:
                blocks.append(chunks)
    blocks.sort(key=lambda b: b[0].line)
    return blocks


_DocOwner = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _docstring_owners(body: list[ast.stmt]) -> Iterator[_DocOwner]:
    """The classes and functions of ``body``, nested ones too (statements only: no
    expression holds a docstring)."""
    for stmt in body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield stmt
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _docstring_owners(inner)
        for handler in getattr(stmt, "handlers", ()):
            yield from _docstring_owners(handler.body)


# -- reading a block --------------------------------------------------------------------


class _Block:
    """One block read top to bottom: what its imports and assignments bind, and the calls
    of workspace classes it makes."""

    def __init__(
        self,
        file: str,
        scope: dict[str, str],
        module: str | None,
        is_class: Callable[[str], str | None],
        docstring: bool,
    ) -> None:
        self.file = file
        self.scope = scope  # local name -> qualified name (imports, the docstring's module)
        self.module = module  # a docstring's module: its other names resolve there
        self.is_class = is_class  # qualified name -> the workspace class it is, or None
        self.docstring = docstring
        self.values: dict[str, object] = {}  # names bound to literals or Targets
        self.found: list[DocExample] = []
        self.budget = Budget(20_000)

    def qualified(self, node: ast.expr) -> str | None:
        dotted = dotted_name(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.scope.get(head)
        if base is None and self.module is not None:
            base = f"{self.module}.{head}"
        if base is None:
            return None
        return f"{base}.{rest}" if rest else base

    def literal(self, node: ast.expr) -> tuple[bool, object]:
        """A literal, or a name the block bound to a value or a call."""
        if isinstance(node, ast.Name) and node.id in self.values:
            return True, self.values[node.id]
        constants = {k: v for k, v in self.values.items() if not isinstance(v, Target)}
        return try_literal(node, constants, self.scope, self.budget)

    def callee(self, func: ast.expr) -> str | None:
        callee = self.qualified(func)
        return self.is_class(callee) if callee is not None else None

    def value(self, node: ast.expr) -> object:
        """A value of the constructor expression: a literal, a Ref, a Target."""
        return built_value(node, self.literal, self.callee)

    def target(self, call: ast.Call) -> Target:
        return built_call(call, self.literal, self.callee)

    def read(self, chunk: _Chunk) -> None:
        try:
            tree = ast.parse(chunk.text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return  # prose in a code block, a shell line, a stale fragment
        offset = chunk.line - 1
        for stmt in tree.body:
            self.statement(stmt, offset)

    def statement(self, stmt: ast.stmt, offset: int) -> None:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            relative = isinstance(stmt, ast.ImportFrom) and stmt.level > 0
            if relative and self.module is None:  # only in a docstring, from its module
                return
            # read as the scan reads a module's imports, into the block's own names
            info = FileInfo(self.file, self.module or "", "", symbols=self.scope)
            read_imports([stmt], info, Path(self.file).name == "__init__.py")
            return
        inside: set[int] = set()  # calls in the arguments of a call found before
        for node in ast.walk(stmt):  # breadth first: an outer call before its arguments
            if isinstance(node, ast.Call) and self.is_class(self.qualified(node.func) or ""):
                try:
                    build = self.target(node)
                except (NotBuilt, RecursionError):
                    continue
                line = node.lineno + offset
                nested = id(node) in inside
                self.found.append(DocExample(self.file, line, build, self.docstring, nested))
                inside.update(id(n) for n in ast.walk(node) if n is not node)
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, ast.AnnAssign)
            else []
        )
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            self.values.pop(target.id, None)
            if value is not None and len(targets) == 1:
                try:
                    self.values[target.id] = self.value(value)
                except (NotBuilt, RecursionError):
                    pass


def _read_blocks(
    file: str,
    blocks: list[list[_Chunk]],
    scope: dict[str, str],
    module: str | None,
    is_class: Callable[[str], str | None],
) -> list[DocExample]:
    """Every doc example of one file's blocks. A Markdown file's imports carry over to its
    later blocks (a README imports once and goes on); what blocks bind does not."""
    found: list[DocExample] = []
    imports = dict(scope)
    for chunks in blocks:
        block = _Block(file, dict(imports), module, is_class, module is not None)
        for chunk in chunks:
            block.read(chunk)
        if module is None:
            imports.update(block.scope)
        found += block.found
    return found


# -- the workspace's examples -----------------------------------------------------------

_MARKDOWN: dict[tuple[str, int, int], list[list[_Chunk]]] = {}
_DOCSTRINGS: dict[tuple[str, str], list[list[_Chunk]]] = {}
_LOCK = threading.Lock()


def _markdown_blocks(path: str) -> list[list[_Chunk]]:
    """A Markdown file's Python blocks, read once per version of the file on disk."""
    try:
        stat = os.stat(path)
    except OSError:
        return []
    if stat.st_size > MAX_DOC_BYTES:
        return []
    key = (path, stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        known = _MARKDOWN.get(key)
    if known is None:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        known = rst_chunks(text, 1) if path.lower().endswith(".rst") else markdown_chunks(text)
        with _LOCK:
            if len(_MARKDOWN) > 1024:
                _MARKDOWN.clear()
            _MARKDOWN[key] = known
    return known


def _docstring_blocks(info: FileInfo) -> list[list[_Chunk]]:
    """A Python file's docstring examples, read once per file text."""
    key = (info.path, info.digest)
    with _LOCK:
        known = _DOCSTRINGS.get(key)
    if known is None:
        wanted = ">>>" in info.text or RST_LITERAL.search(info.text) is not None
        known = docstring_chunks(info) if wanted else []
        with _LOCK:
            if len(_DOCSTRINGS) > 8192:
                _DOCSTRINGS.clear()
            _DOCSTRINGS[key] = known
    return known


@dataclass(frozen=True)
class _Read:
    """One file's examples as read in some workspace, and the class lookups the reading
    made (qualified name -> its answer): still right in another reading of the workspace
    that answers them alike."""

    blocks: list[list[_Chunk]]  # what was read (the same object while the text is)
    scope: dict[str, str]
    module: str | None
    examples: list[DocExample]
    lookups: dict[str, str | None]


_READ: dict[str, _Read] = {}  # by file


def _examples_of(
    path: str,
    blocks: list[list[_Chunk]],
    scope: dict[str, str],
    module: str | None,
    is_class: Callable[[str], str | None],
) -> list[DocExample]:
    """:func:`_read_blocks`, kept per file while its text and the answers to its class
    lookups stay the same: an edit anywhere in a big package reads the workspace again,
    and reading every docstring example again took 0.9 s of each of transformers' jobs
    (14,600 statements in 1,200 files)."""
    with _LOCK:
        known = _READ.get(path)
    if (
        known is not None
        and known.blocks is blocks
        and (known.scope, known.module) == (scope, module)
        and all(is_class(q) == answer for q, answer in known.lookups.items())
    ):
        return known.examples
    lookups: dict[str, str | None] = {}

    def looked_up(qualname: str) -> str | None:
        if qualname not in lookups:
            lookups[qualname] = is_class(qualname)
        return lookups[qualname]

    examples = _read_blocks(path, blocks, scope, module, looked_up)
    with _LOCK:
        if len(_READ) > 8192:
            _READ.clear()
        _READ[path] = _Read(blocks, scope, module, examples, lookups)
    return examples


def doc_examples(workspace: Workspace) -> Iterator[DocExample]:
    """Every doc example of the workspace, file by file in path order (Markdown and
    docstrings alike), each file's in line order."""

    def is_class(qualname: str) -> str | None:
        resolved = workspace.resolve(qualname)
        return resolved if resolved in workspace.classes else None

    markdown = {path: None for path in markdown_files(workspace.root)}
    # by path with "/" (as_posix), whatever the platform's separator: 2,900 Path objects
    # cost transformers 36 ms a scan
    files = sorted([*markdown, *workspace.files], key=lambda p: p.replace(os.sep, "/"))
    for path in files:
        if path in markdown:
            blocks = _markdown_blocks(path)
            yield from _examples_of(path, blocks, {}, None, is_class)
            continue
        info = workspace.files[path]
        if info.path.endswith(".py"):
            blocks = _docstring_blocks(info)
            if blocks:
                yield from _examples_of(path, blocks, dict(info.symbols), info.module, is_class)
