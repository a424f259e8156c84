"""Find ``nn.Module`` subclasses in a workspace by reading, never running, its files.

Pure server-side logic on the standard library's ``ast``: which classes are
modules (whatever the import style, and through subclasses of other workspace
classes in other files and packages), what their constructors need, which
constants and call sites could supply it, and which workspace files each file
imports (for cache keys and for building the models that use a class).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import io
import os
import re
import time
import tokenize
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "env",
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        "site-packages",
    }
)
_NOT_MODULES = frozenset({"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"})
# nn.Module subclasses of installed libraries that projects build their models on, by the
# names they are imported under (the scan reads the workspace only, not site-packages)
LIBRARY_MODULES = frozenset(
    {
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "lightning.pytorch.core.module.LightningModule",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.module.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
    }
)
CONFIG_PARAM_NAMES = frozenset({"config", "cfg", "conf", "args", "params", "hparams", "hp", "opts"})
CONFIG_SUFFIXES = ("config", "cfg", "args", "params", "hparams", "options", "settings")


@dataclass(frozen=True)
class InitParam:
    name: str
    annotation: str | None  # dotted name of the annotation, if it is a plain name
    required: bool


@dataclass(frozen=True)
class ClassInfo:
    name: str
    qualname: str  # module.Class
    file: str
    line: int
    end_line: int
    bases: tuple[str, ...]  # qualified names, as far as they resolve
    params: tuple[InitParam, ...] | None  # None: the class defines no __init__
    is_dataclass: bool
    # its config class, as transformers' models declare it: `config: LlamaConfig` (or
    # `config_class = LlamaConfig`) in the class body, qualified
    config_class: str | None = None


@dataclass(frozen=True)
class FactoryInfo:
    """A module-level function with no required parameters that may return a model."""

    name: str
    line: int
    params: tuple[str, ...]  # names of its parameters
    registered: bool  # decorated like a model registry entry (@register_model)
    returns: tuple[str, ...]  # qualified names it returns: annotation, `return Cls(...)`


@dataclass(frozen=True)
class Ref:
    """A call-site argument naming a class or function, e.g. ``BasicBlock`` or ``nn.GELU``."""

    local: str  # the name the expression starts with
    target: str  # what that name is bound to, qualified: "pkg.blocks.BasicBlock", "torch.nn"
    text: str  # the expression as written

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class CallSite:
    target: str  # qualified name of the callee
    file: str
    line: int
    args: tuple[object, ...]  # literal values and Refs
    kwargs: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class ModelCall:
    """A call of a model with literal tensors: ``net(torch.randn(64, 1, 28, 28))``, or
    ``x = torch.randn(...)`` then ``net(x)`` in the same function (read, never run)."""

    target: str  # qualified name of the model's class
    file: str
    line: int
    input: str  # the input as forward()'s example input: an expression, tuple or dict


_C = TypeVar("_C", "CallSite", "ModelCall")


@dataclass
class FileInfo:
    path: str
    module: str
    root: str  # the folder to put on sys.path so that ``module`` imports
    symbols: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    constants: dict[str, object] = field(default_factory=dict)
    # The text, kept to find call sites lazily (rarely needed, costly to collect); None once
    # persisted without it (the scan store keeps no copy of the sources): read from disk again.
    source: str | None = None
    imports: set[str] = field(default_factory=set)  # qualified names of imported modules
    syntax_error: tuple[str, int] | None = None
    factories: dict[str, FactoryInfo] = field(default_factory=dict)
    digest: str = ""  # of the text: what cache keys use (the text itself may not be loaded)
    _call_sites: list[CallSite] | None = None  # parsed on first use, then kept
    _model_calls: list[ModelCall] | None = None
    _words: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.digest and self.source is not None:
            self.digest = content_digest(self.source)

    @property
    def text(self) -> str:
        if self.source is None:
            try:
                self.source = read_source(Path(self.path))
            except (OSError, SourceError):
                self.source = ""
        return self.source

    def without_text(self) -> FileInfo:
        """This entry as persisted: its text stays on disk (the digest says which it was)."""
        return dataclasses.replace(self, source=None)

    def call_sites_known(self) -> bool:
        return self._call_sites is not None

    def words(self) -> frozenset[str]:
        """Every identifier in the text: which files could mention a name, cheaply."""
        if self._words is None:  # a file that does not parse has no call sites to offer
            self._words = frozenset() if self.syntax_error else frozenset(_WORD.findall(self.text))
        return self._words


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes, or unchanged if outside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def module_name(path: Path) -> tuple[str, Path]:
    """The dotted module name of ``path`` and the folder it is importable from."""
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) or path.parent.name, folder


def iter_python_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    """The Python files of ``folder``, in a stable order: with its subfolders' (but not the
    usual environment and build folders), or (``recursive`` False) its own only."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = (
            sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            if recursive
            else []
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


MAX_FILES = 5_000  # Python files one scan reads (config's max-files)
SCAN_SECONDS = 60.0  # wall-clock time one scan spends listing and reading them


@dataclass(frozen=True)
class ScanLimits:
    """How much of a folder one scan reads: a folder that is no project (the home folder,
    ``/``, a checkout of many projects) must not be read for minutes."""

    max_files: int = MAX_FILES
    seconds: float = SCAN_SECONDS
    recursive: bool = True  # False: a loose folder, its own files only
    clock: Callable[[], float] = time.monotonic  # tests give a deterministic one
    stop: Callable[[], bool] = lambda: False  # True once nobody waits for the scan any more


def list_python_files(root: Path, limits: ScanLimits) -> tuple[list[Path], str | None]:
    """The Python files a scan of ``root`` reads, and why the list stopped short (a message
    for the user saying how to widen it), if it did."""
    started = limits.clock()
    found: list[Path] = []
    for path in iter_python_files(root, limits.recursive):
        if limits.stop():
            return found, None
        if len(found) >= limits.max_files:
            return found, files_cut_short(root, limits.max_files)
        if limits.clock() - started > limits.seconds:
            return found, time_cut_short(root, limits.seconds, len(found))
        found.append(path)
    return found, None


def files_cut_short(root: Path, max_files: int) -> str:
    return (
        f"paramlens read the first {max_files:,} Python files under {root} and stopped; "
        "set max-files in [tool.paramlens] (paramlens.maxFiles in an editor) to read more, "
        "or add a pyproject.toml to mark the project"
    )


def time_cut_short(root: Path, seconds: float, read: int) -> str:
    return (
        f"paramlens read Python files under {root} for {seconds:g} s ({read:,} of them) and "
        "stopped; add a pyproject.toml to mark the project, or open a smaller folder"
    )


# -- evaluating literals --------------------------------------------------------
#
# Folding runs in the server process on any file of the workspace, so every step is
# bounded: a hostile or generated file (a 5,000-term sum, ``[0] * 2**40``, towers of
# powers) costs at most a few thousand steps and gives up, never a MemoryError, a
# RecursionError or seconds of CPU. Model dimensions are far inside these limits.

MAX_DEPTH = 50  # nesting of one expression
MAX_ITEMS = 10_000  # elements of a list, tuple or dict, characters of a string
MAX_INT_BITS = 256  # magnitude of an integer (2**256: no layer is wider)
FILE_BUDGET = 200_000  # expression nodes folded per file, all expressions together


class _NotLiteral(Exception):
    pass


def _fail() -> object:
    raise _NotLiteral


class Budget:
    """How many expression nodes may still be folded (shared by a file's expressions)."""

    def __init__(self, steps: int = FILE_BUDGET) -> None:
        self.steps = steps

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise _NotLiteral


def _size(value: object) -> int:
    """A cheap upper bound on the memory ``value`` represents, in items."""
    if isinstance(value, (str, bytes, list, tuple, dict)):
        return len(value)
    return 1


def _bits(value: object) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _binop(op: ast.operator, a: object, b: object) -> object:
    """``a op b``, refused before computing anything too large."""
    if isinstance(op, ast.Pow):
        if not isinstance(b, (int, float)) or abs(b) >= 64:
            raise _NotLiteral
        if isinstance(a, int) and isinstance(b, int) and _bits(a) * b > MAX_INT_BITS:
            raise _NotLiteral
        return a**b  # type: ignore[operator]
    if isinstance(op, ast.Mult):
        for seq, n in ((a, b), (b, a)):
            repeated = isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int)
            if repeated and _size(seq) * max(n, 0) > MAX_ITEMS:  # type: ignore[call-overload]
                raise _NotLiteral
        if _bits(a) + _bits(b) > MAX_INT_BITS:
            raise _NotLiteral
        return a * b  # type: ignore[operator]
    if isinstance(op, ast.Add):
        if _size(a) + _size(b) > MAX_ITEMS:
            raise _NotLiteral
        return a + b  # type: ignore[operator]
    if isinstance(op, ast.Sub):
        return a - b  # type: ignore[operator]
    if isinstance(op, ast.Div):
        return a / b  # type: ignore[operator]
    if isinstance(op, ast.FloorDiv):
        return a // b  # type: ignore[operator]
    if isinstance(op, ast.Mod) and not isinstance(a, (str, bytes)):  # no %-formatting
        return a % b  # type: ignore[operator]
    raise _NotLiteral


def literal(
    node: ast.expr,
    constants: Mapping[str, object],
    refs: Mapping[str, str] | None = None,
    budget: Budget | None = None,
    depth: int = 0,
) -> object:
    """The value of a literal expression, allowing arithmetic and module constants.

    With ``refs`` (module-level names -> what they are bound to), a name of a class or
    function, or an attribute of one (``nn.GELU``), is a :class:`Ref`. The work is
    bounded (see ``MAX_*``); beyond the bounds the expression is not a literal.
    """
    budget = budget if budget is not None else Budget()
    budget.spend()
    if depth > MAX_DEPTH:
        raise _NotLiteral
    depth += 1
    if isinstance(node, ast.Constant):
        if _size(node.value) > MAX_ITEMS or _bits(node.value) > MAX_INT_BITS:
            raise _NotLiteral
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if refs is not None and isinstance(node, (ast.Name, ast.Attribute)):
        dotted = _dotted(node)
        head = (dotted or "").partition(".")[0]
        if dotted and head in refs:
            return Ref(head, refs[head], dotted)
    if isinstance(node, (ast.Tuple, ast.List)):
        if len(node.elts) > MAX_ITEMS:
            raise _NotLiteral
        values = [literal(e, constants, refs, budget, depth) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = literal(node.operand, constants, None, budget, depth)
        if isinstance(value, (int, float)):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = literal(node.left, constants, None, budget, depth)
        right = literal(node.right, constants, None, budget, depth)
        try:
            return _binop(node.op, left, right)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise _NotLiteral from exc
    if isinstance(node, ast.Dict):
        if len(node.keys) > MAX_ITEMS:
            raise _NotLiteral
        keys = [
            literal(k, constants, None, budget, depth) if k is not None else _fail()
            for k in node.keys
        ]
        values = [literal(v, constants, refs, budget, depth) for v in node.values]
        try:
            return dict(zip(keys, values))
        except TypeError as exc:  # an unhashable key
            raise _NotLiteral from exc
    raise _NotLiteral


def try_literal(
    node: ast.expr,
    constants: Mapping[str, object],
    refs: Mapping[str, str] | None = None,
    budget: Budget | None = None,
) -> tuple[bool, object]:
    try:
        return True, literal(node, constants, refs, budget)
    except (_NotLiteral, RecursionError, MemoryError):
        return False, None


def refs_in(value: object) -> Iterator[Ref]:
    """Every :class:`Ref` inside a literal value."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from refs_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from refs_in(item)


# -- reading one file -----------------------------------------------------------


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value  # a string annotation
    if isinstance(node, ast.Subscript):  # Optional[Config] -> Config
        return _dotted(node.slice)
    return None


_SEQUENCES = {"Sequence", "List", "list", "Tuple", "tuple", "Iterable", "MutableSequence"}


def _annotation(node: ast.expr | None) -> str | None:
    """What a parameter's annotation says, for choosing its value: a dotted class name
    (``Optional[LlamaConfig]``, ``A | B`` and ``Union[A, B]`` give the first that is not
    None), or ``Sequence`` for ``Sequence[int]``, ``tuple[int, ...]``, ``list[int]``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a string annotation: "Optional[Config]"
            return _annotation(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    members: list[ast.expr] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        members = [node.left, node.right]
    elif isinstance(node, ast.Subscript):
        base = (_dotted(node.value) or "").rpartition(".")[2]
        if base in _SEQUENCES:
            return "Sequence"
        inner = node.slice
        members = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if base != "Union":  # Optional[X], Annotated[X, ...], Type[X]: X
            members = members[:1]
    if members:
        for member in members:
            if not (isinstance(member, ast.Constant) and member.value is None):
                return _annotation(member)
        return None
    return _dotted(node)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, target] if target else parts)


def _init_params(cls: ast.ClassDef) -> tuple[InitParam, ...] | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
            a = stmt.args
            positional = [*a.posonlyargs, *a.args][1:]  # drop self
            if not positional and not a.kwonlyargs and (a.vararg or a.kwarg):
                return None  # (self, *args, **kwargs): the parent's signature applies
            n_defaults = len(a.defaults)
            params = [
                InitParam(
                    p.arg,
                    _annotation(p.annotation),
                    i < len(positional) - n_defaults,
                )
                for i, p in enumerate(positional)
            ]
            params += [
                InitParam(p.arg, _annotation(p.annotation), d is None)
                for p, d in zip(a.kwonlyargs, a.kw_defaults)
            ]
            return tuple(params)
    return None


def _is_dataclass(cls: ast.ClassDef) -> bool:
    for d in cls.decorator_list:
        name = _dotted(d.func if isinstance(d, ast.Call) else d) or ""
        if name.rpartition(".")[2] == "dataclass":
            return True
    return False


def _dataclass_fields_defaulted(cls: ast.ClassDef) -> bool:
    return all(
        s.value is not None
        for s in cls.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and "ClassVar" not in ast.unparse(s.annotation)
    )


def _dataclass_params(cls: ast.ClassDef) -> tuple[InitParam, ...] | None:
    """The generated ``__init__`` of a dataclass: its fields, required when undefaulted."""
    if not _is_dataclass(cls):
        return None
    return tuple(
        InitParam(s.target.id, _annotation(s.annotation), s.value is None)
        for s in cls.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and "ClassVar" not in ast.unparse(s.annotation)
    )


def _declared_config(info: FileInfo, cls: ast.ClassDef) -> str | None:
    """``config: LlamaConfig`` or ``config_class = LlamaConfig`` in the class body."""
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id == "config" and stmt.value is None:
                annotation = stmt.annotation
                if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                    annotation = ast.Name(annotation.value)  # `config: "LlamaConfig"`
                return qualify(info, annotation)
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id == "config_class":
                return qualify(info, stmt.value)
    return None


def qualify(info: FileInfo, node: ast.expr) -> str | None:
    """The qualified name an expression refers to in ``info``'s module, e.g. ``torch.nn.Linear``."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    base = info.symbols.get(head, f"{info.module}.{head}")
    return f"{base}.{rest}" if rest else base


# Parsing holds the interpreter lock: a 1 MB file takes 1-2 s here, during which the
# language server answers nothing. Larger files are generated code, not model definitions.
MAX_SOURCE_CHARS = 2**20


class SourceError(Exception):
    """A file that is not valid Python source text: its message and 1-based line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def decode_source(data: bytes) -> str:
    """Python source bytes to text as the interpreter decodes them (PEP 263 coding line,
    UTF-8 BOM, else UTF-8), with universal newlines; :class:`SourceError` if it cannot."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown codec in the coding line, a BOM that contradicts it
        raise SourceError(f"SyntaxError: {exc.msg}", exc.lineno or 1) from exc
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1]
        declared = (
            f"the file declares {encoding}"
            if encoding != "utf-8"
            else "no encoding is declared, so it must be UTF-8"
        )
        message = (
            f"SyntaxError: byte {byte!r} on line {line} is not valid {encoding} "
            f"({declared}; add a '# -*- coding: ... -*-' line or re-save it as UTF-8)"
        )
        raise SourceError(message, line) from exc
    if encoding == "utf-8-sig":
        text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def content_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def read_source(path: Path) -> str:
    """The text of a Python file (:class:`SourceError` if it is not valid source text)."""
    return decode_source(path.read_bytes())


def _error_line(text: str, exc: SyntaxError) -> int:
    """The line of a syntax error; Python gives none for a NUL byte."""
    if exc.lineno is None and "\0" in text:
        return text.count("\n", 0, text.index("\0")) + 1
    return exc.lineno or 1


def read_file(path: Path, text: str) -> FileInfo:
    module, root = module_name(path)
    info = FileInfo(str(path), module, str(root), source=text)
    if len(text) > MAX_SOURCE_CHARS:
        size = f"{len(text) / 2**20:.1f} MB"
        info.syntax_error = (
            f"paramlens skips files over {MAX_SOURCE_CHARS // 2**20} MB (this one: {size})",
            1,
        )
        return info
    try:
        tree = ast.parse(text, str(path))
    except SyntaxError as exc:
        info.syntax_error = (f"{type(exc).__name__}: {exc.msg}", _error_line(text, exc))
        return info
    except (RecursionError, MemoryError) as exc:  # Python itself could not compile it either
        info.syntax_error = (f"{type(exc).__name__}: the file is too deeply nested to parse", 1)
        return info
    budget = Budget()
    is_package = path.stem == "__init__"

    read_imports(tree.body, info, is_package)
    for stmt in tree.body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef)):
            info.symbols[stmt.name] = f"{module}.{stmt.name}"
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                ok, value = try_literal(stmt.value, info.constants, None, budget)
                if ok:
                    info.constants[target.id] = value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            ok, value = try_literal(stmt.value, info.constants, None, budget)
            if ok:
                info.constants[stmt.target.id] = value

    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            params = _init_params(stmt)  # () is an __init__ of its own with no parameters
            info.classes[stmt.name] = ClassInfo(
                name=stmt.name,
                qualname=f"{module}.{stmt.name}",
                file=str(path),
                line=stmt.lineno,
                end_line=stmt.end_lineno or stmt.lineno,
                bases=tuple(q for q in (qualify(info, b) for b in stmt.bases) if q),
                params=params if params is not None else _dataclass_params(stmt),
                is_dataclass=_is_dataclass(stmt) and _dataclass_fields_defaulted(stmt),
                config_class=_declared_config(info, stmt),
            )
        elif isinstance(stmt, ast.FunctionDef) and (factory := _factory(info, stmt)):
            info.factories[stmt.name] = factory
    return info


def read_imports(body: list[ast.stmt], info: FileInfo, is_package: bool) -> list[str]:
    """Fill ``info.symbols`` and ``info.imports`` from the import statements of a module's
    ``body`` (those under ``if``/``try`` included); return the modules star-imported."""
    stars: list[str] = []
    for node in _statements(body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    info.symbols[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    info.symbols[top] = top
                info.imports.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(info.module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            info.imports.add(base)
            for alias in node.names:
                if alias.name == "*":
                    stars.append(base)
                else:
                    info.symbols[alias.asname or alias.name] = f"{base}.{alias.name}"
                    info.imports.add(f"{base}.{alias.name}")
    return stars


def _factory(info: FileInfo, fn: ast.FunctionDef) -> FactoryInfo | None:
    """``fn`` if it is public, needs no arguments and could return a model."""
    a = fn.args
    if fn.name.startswith("_") or len(a.defaults) < len(a.posonlyargs) + len(a.args):
        return None
    if any(d is None for d in a.kw_defaults):
        return None
    registered = any(
        "register" in (_dotted(d.func if isinstance(d, ast.Call) else d) or "").lower()
        for d in fn.decorator_list
    )
    returns = [fn.returns] if fn.returns is not None else []
    for node in _statements(fn.body):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Call):
            returns.append(node.value.func)
    qualified = tuple(q for q in (qualify(info, r) for r in returns) if q)
    if not registered and not qualified:
        return None
    params = tuple(p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs])
    return FactoryInfo(fn.name, fn.lineno, params, registered, qualified)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included, without descending into expressions."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, name, []))
        for handler in getattr(stmt, "handlers", []):
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", []):
            yield from _statements(case.body)


def call_sites(info: FileInfo) -> list[CallSite]:
    """Calls in ``info`` whose arguments are literals, module constants or names of classes
    and functions (parsed once per file text, then kept)."""
    if info._call_sites is None:
        info._call_sites = _find_call_sites(info)
    return info._call_sites


def _parse(info: FileInfo) -> ast.Module | None:
    """``info``'s text parsed again (the scan keeps no trees), or None if it does not parse."""
    try:
        return ast.parse(info.text, info.path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _find_call_sites(info: FileInfo) -> list[CallSite]:
    tree = _parse(info)
    if tree is None:
        return []
    path = info.path
    refs = info.symbols
    budget = Budget()

    found: list[CallSite] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        callee = qualify(info, call.func)
        if callee is None or any(isinstance(a, ast.Starred) for a in call.args):
            continue
        values = [try_literal(a, info.constants, refs, budget) for a in call.args]
        kwvalues = [
            (k.arg, try_literal(k.value, info.constants, refs, budget)) for k in call.keywords
        ]
        if all(ok for ok, _ in values) and all(k and ok for k, (ok, _) in kwvalues):
            kwargs = tuple((k, v) for k, (_, v) in kwvalues if k)
            args = tuple(v for _, v in values)
            found.append(CallSite(callee, path, call.lineno, args, kwargs))
    return found


_TENSOR_FACTORIES = frozenset(
    {"randn", "rand", "zeros", "ones", "empty", "randint", "full", "arange", "randn_like"}
)
_MODEL_METHODS = frozenset({"to", "cuda", "cpu", "eval", "train", "float", "half", "double"})


def _without_moves(node: ast.expr) -> ast.expr:
    """``Net().to(device).eval()`` -> ``Net()``: where a value lives does not change it."""
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _MODEL_METHODS
    ):
        node = node.func.value
    return node


def _tensor_input(node: ast.expr, info: FileInfo, tensors: Mapping[str, str]) -> str | None:
    """``torch.randn(64, 1, 28, 28)`` with its sizes folded to literals (a batch size that
    is a module constant included), or a name bound to one; None for anything else."""
    node = _without_moves(node)
    if isinstance(node, ast.Name):
        return tensors.get(node.id)
    if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    callee = qualify(info, node.func) or ""
    head, _, name = callee.rpartition(".")
    if head != "torch" or name not in _TENSOR_FACTORIES:
        return None
    parts = []
    for arg in node.args:
        ok, value = try_literal(arg, info.constants)
        if not ok or not isinstance(value, (int, float, tuple, list)):
            return None
        parts.append(repr(value))
    for keyword in node.keywords:
        if keyword.arg in ("device", "requires_grad", "pin_memory"):
            continue  # where and how it lives does not change its shape
        dtype = _dotted(keyword.value) or ""
        if keyword.arg != "dtype" or not dtype.startswith("torch."):
            return None
        parts.append(f"dtype={dtype}")
    return f"torch.{name}({', '.join(parts)})"


def model_calls(info: FileInfo) -> list[ModelCall]:
    """Calls of models with literal tensors in ``info`` (parsed once per file text)."""
    if info._model_calls is None:
        info._model_calls = _find_model_calls(info)
    return info._model_calls


def _find_model_calls(info: FileInfo) -> list[ModelCall]:
    tree = _parse(info)
    if tree is None:
        return []
    scopes: list[ast.AST] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    found: list[ModelCall] = []
    for scope in scopes:
        models: dict[str, str] = {}  # local name -> qualified name of the class it holds
        tensors: dict[str, str] = {}  # local name -> the tensor expression it holds
        assert isinstance(scope, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef))
        scoped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        body = [st for st in scope.body if not isinstance(st, scoped)]  # each its own scope
        nodes = [n for stmt in body for n in ast.walk(stmt)]
        nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    value = _without_moves(node.value)
                    tensor = _tensor_input(value, info, tensors)
                    if tensor is not None:
                        tensors[target.id] = tensor
                    elif isinstance(value, ast.Call) and (callee := qualify(info, value.func)):
                        models[target.id] = callee
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr == "forward":
                    func = func.value
                if isinstance(func, ast.Name) and func.id in models:
                    target_class = models[func.id]
                elif isinstance(func, ast.Call) and (callee := qualify(info, func.func)):
                    target_class = callee  # Net()(x)
                else:
                    continue
                args = [_tensor_input(a, info, tensors) for a in node.args]
                kwargs = [(k.arg, _tensor_input(k.value, info, tensors)) for k in node.keywords]
                if (not args and not kwargs) or None in args or any(v is None for _, v in kwargs):
                    continue
                if kwargs and (args or any(k is None for k, _ in kwargs)):
                    continue  # positional and keyword inputs together: not expressible
                if kwargs:
                    expression = "{" + ", ".join(f"{k!r}: {v}" for k, v in kwargs) + "}"
                elif len(args) == 1:
                    expression = str(args[0])
                else:
                    expression = "(" + ", ".join(str(a) for a in args) + ")"
                found.append(ModelCall(target_class, info.path, node.lineno, expression))
    return found


# -- the workspace --------------------------------------------------------------


def is_torch_module(qualname: str) -> bool:
    if not qualname.startswith("torch.nn."):
        return False
    last = qualname.rpartition(".")[2]
    return last[:1].isupper() and last not in _NOT_MODULES


class LibraryModels(Protocol):
    """Which classes of installed libraries are models (see :mod:`paramlens.libraries`)."""

    def is_module(self, qualname: str) -> bool: ...


class Workspace:
    """Every Python file of a folder, read with ``ast``; answers questions across files."""

    def __init__(
        self,
        root: Path,
        files: Iterable[FileInfo],
        libraries: LibraryModels | None = None,
        cut_short: str | None = None,
    ) -> None:
        self.root = root
        self.cut_short = cut_short  # why files were left unread, for the user; None if none
        self.files: dict[str, FileInfo] = {f.path: f for f in files}
        self.by_module: dict[str, FileInfo] = {}
        for f in self.files.values():
            self.by_module.setdefault(f.module, f)
        self.libraries = libraries
        self._packages = {m.partition(".")[0] for m in self.by_module}
        self.classes: dict[str, ClassInfo] = {
            c.qualname: c for f in self.files.values() for c in f.classes.values()
        }
        self.module_classes = self._find_module_classes()
        self._direct: dict[str, frozenset[str]] = {}  # path -> files it imports directly
        self._importers: dict[str, list[str]] | None = None

    def resolve(self, qualname: str) -> str:
        """Follow re-exports (``from .layers import Block`` in ``__init__``) to a definition."""
        for _ in range(8):
            if qualname in self.classes:
                return qualname
            module, _, name = qualname.rpartition(".")
            info = self.by_module.get(module)
            if info is None or name not in info.symbols or info.symbols[name] == qualname:
                return qualname
            qualname = info.symbols[name]
        return qualname

    def _find_module_classes(self) -> set[str]:
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for cls in self.classes.values():
                if cls.qualname in found:
                    continue
                if any(self._is_module_base(b, found) for b in cls.bases):
                    found.add(cls.qualname)
                    changed = True
        return found

    def _is_module_base(self, base: str, found: set[str]) -> bool:
        """torch's modules, workspace classes found to be modules, and the installed
        libraries' models (when the workspace is not that library itself)."""
        if is_torch_module(base):
            return True
        resolved = self.resolve(base)
        if resolved in self.classes:
            return resolved in found
        if resolved in LIBRARY_MODULES:
            return True
        return (
            self.libraries is not None
            and resolved.partition(".")[0] not in self._packages
            and self.libraries.is_module(resolved)
        )

    def models_in(self, path: str) -> list[ClassInfo]:
        info = self.files.get(path)
        if info is None:
            return []
        classes = [c for c in info.classes.values() if c.qualname in self.module_classes]
        return sorted(classes, key=lambda c: c.line)

    def init_params(self, cls: ClassInfo) -> tuple[InitParam, ...] | None:
        """The constructor's parameters, inherited from workspace bases if not defined."""
        owner = self.init_owner(cls)
        return owner.params if owner is not None else ()

    def init_owner(self, cls: ClassInfo) -> ClassInfo | None:
        """The workspace class whose ``__init__`` ``cls`` runs (itself, or a base)."""
        return next((c for c in self._lineage(cls) if c.params is not None), None)

    def _lineage(self, cls: ClassInfo) -> Iterator[ClassInfo]:
        """``cls``, then its first workspace base, and so on (at most 16)."""
        current: ClassInfo | None = cls
        for _ in range(16):
            if current is None:
                return
            yield current
            current = next(
                (self.classes[q] for q in map(self.resolve, current.bases) if q in self.classes),
                None,
            )

    def declared_config(self, cls: ClassInfo) -> str | None:
        """The config class ``cls`` or a workspace base declares in its body, unless a class
        below that one defines ``__init__`` (its own annotation says more): transformers'
        ``CLIPPreTrainedModel`` has ``config: CLIPConfig`` and no ``__init__``, and
        ``PreTrainedModel.__init__`` annotates ``config`` with the base ``PreTrainedConfig``."""
        for current in self._lineage(cls):
            if current.config_class:
                return current.config_class
            if current.params is not None:
                return None
        return None

    def file_of_module(self, module: str) -> FileInfo | None:
        while module:
            if module in self.by_module:
                return self.by_module[module]
            module = module.rpartition(".")[0]
        return None

    def imported_files(self, path: str) -> set[str]:
        """Workspace files ``path`` imports, directly or not (itself excluded)."""
        found: set[str] = set()
        stack = [path]
        while stack:
            for target in self._direct_imports(stack.pop()):
                if target not in found and target != path:
                    found.add(target)
                    stack.append(target)
        return found

    def importers(self, path: str) -> list[str]:
        """Workspace files that import ``path`` directly."""
        if self._importers is None:  # filled, then published: a thread may be reading it
            importers: dict[str, list[str]] = {}
            for p in sorted(self.files):
                for target in self._direct_imports(p):
                    if target != p:
                        importers.setdefault(target, []).append(p)
            self._importers = importers
        return self._importers.get(path, [])

    def _direct_imports(self, path: str) -> frozenset[str]:
        known = self._direct.get(path)
        if known is None:
            info = self.files.get(path)
            modules = info.imports if info is not None else ()
            known = frozenset(t.path for m in modules if (t := self.file_of_module(m)) is not None)
            self._direct[path] = known
        return known

    def call_sites(self, qualname: str) -> list[CallSite]:
        """Literal-argument calls of a class anywhere in the workspace (parsed on demand)."""
        return self._calls_of(qualname, call_sites)

    def model_calls(self, qualname: str) -> list[ModelCall]:
        """Calls of a model with literal tensors anywhere in the workspace (on demand)."""
        return self._calls_of(qualname, model_calls)

    def _calls_of(self, qualname: str, find: Callable[[FileInfo], list[_C]]) -> list[_C]:
        name = qualname.rpartition(".")[2]  # only files that mention it are parsed
        return [
            call
            for f in self.files.values()
            if name in f.words()
            for call in find(f)
            if self.resolve(call.target) == qualname
        ]

    def factories_in(self, path: str) -> list[FactoryInfo]:
        """Functions of ``path`` that build a model with no arguments (resnet18, vit_base...)."""
        info = self.files.get(path)
        if info is None:
            return []
        return [
            f
            for f in info.factories.values()
            if f.registered
            or any(self.resolve(r) in self.module_classes or is_torch_module(r) for r in f.returns)
        ]


ScanCache = dict[str, tuple[object, str, FileInfo]]  # path -> (stat or text key, text, info)


def scan(
    root: Path,
    texts: Mapping[str, str] | None = None,
    cache: ScanCache | None = None,
    libraries: LibraryModels | None = None,
    limits: ScanLimits | None = None,
    include: Iterable[str] = (),
) -> Workspace:
    """Read the Python files under ``root``; ``texts`` overrides the disk (unsaved buffers).

    With a ``cache``, a file whose size and mtime did not change is not read again. With
    ``libraries``, classes built on an installed library's models are models too. Within
    ``limits`` (files, time): the open buffers and the files of ``include`` (the one asked
    about) first, whatever the limits; the workspace says if the rest was cut short.
    """
    texts = texts or {}
    cache = {} if cache is None else cache
    limits = limits or ScanLimits()
    started = limits.clock()
    infos: list[FileInfo] = []
    listed, cut_short = list_python_files(root, limits)

    def inside(path: str) -> bool:
        return Path(path).is_relative_to(root) if limits.recursive else Path(path).parent == root

    first = sorted({p for p in [*texts, *include] if inside(p)})
    rest = sorted({str(p) for p in listed} - set(first))
    for number, path in enumerate([*first, *rest]):
        if number >= len(first):
            if limits.stop():
                break
            if limits.clock() - started > limits.seconds:
                cut_short = cut_short or time_cut_short(root, limits.seconds, len(infos))
                break
        text = texts.get(path)
        key: object
        if text is None:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            key = (stat.st_mtime_ns, stat.st_size)
            if path in cache and cache[path][0] == key:
                infos.append(cache[path][2])
                continue
            try:
                text = read_source(Path(path))
            except OSError:
                continue
            except SourceError as exc:  # reported on the file, never skipped silently
                info = FileInfo(path, *_module_and_root(Path(path)))
                info.syntax_error = (exc.message, exc.line)
                cache[path] = (key, "", info)
                infos.append(info)
                continue
        else:
            key = text
            known = cache.get(path)
            # an unsaved buffer equal to what was read before (the persisted scan keeps the
            # digest, not the text: a file opened unchanged is not parsed again)
            if known is not None and (known[1] == text or known[2].digest == content_digest(text)):
                infos.append(known[2])
                continue
        info = _read_file_isolated(Path(path), text)
        cache[path] = (key, text, info)
        infos.append(info)
    infos.sort(key=lambda info: info.path)  # the order they were always read in
    return Workspace(root, infos, libraries, cut_short)


def _module_and_root(path: Path) -> tuple[str, str]:
    module, root = module_name(path)
    return module, str(root)


def _read_file_isolated(path: Path, text: str) -> FileInfo:
    """:func:`read_file`, with whatever goes wrong confined to this one file."""
    try:
        return read_file(path, text)
    except Exception as exc:  # a bug of ours must not take the other files' lenses
        info = FileInfo(str(path), *_module_and_root(path), source=text)
        info.syntax_error = (f"paramlens could not read this file: {type(exc).__name__}: {exc}", 1)
        return info
