"""Reading one file without running it: its module name, imports, constants, classes
(their constructors' parameters and declared config classes) and model factories, as a
:class:`~.model.FileInfo`. Imports :mod:`.model`, :mod:`.source`, :mod:`.notebook` and
:mod:`.literals`."""

from __future__ import annotations

import ast
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from .literals import Budget, dotted_name, try_literal
from .model import ClassInfo, FactoryInfo, FileInfo, InitParam
from .notebook import is_notebook, notebook_module
from .source import MAX_SOURCE_CHARS


def relative_path(path: str, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes, or unchanged if outside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def module_name(path: Path) -> tuple[str, Path]:
    """The dotted module name of ``path`` and the folder it is importable from. A notebook
    is a module of its own folder (a kernel's working folder), in no package."""
    if is_notebook(path):
        return notebook_module(path), path.parent
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) or path.parent.name, folder


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
        base = (dotted_name(node.value) or "").rpartition(".")[2]
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
    return dotted_name(node)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, target] if target else parts)


def _init(cls: ast.ClassDef) -> ast.FunctionDef | None:
    """The class's own ``__init__``."""
    return next(
        (s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None
    )


def _init_params(init: ast.FunctionDef | None) -> tuple[InitParam, ...] | None:
    """An ``__init__``'s parameters, self dropped; None for none, or for one that takes
    only ``*args, **kwargs`` (its parent's apply)."""
    if init is None:
        return None
    a = init.args
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


def _is_dataclass(cls: ast.ClassDef) -> bool:
    for d in cls.decorator_list:
        name = dotted_name(d.func if isinstance(d, ast.Call) else d) or ""
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


def _is_alias(stmt: ast.Assign, info: FileInfo) -> bool:
    """``Alias = Name`` (``A = a = Name``) where ``Name`` is one of the module's
    definitions or imports, read before."""
    value = dotted_name(stmt.value) if isinstance(stmt.value, (ast.Name, ast.Attribute)) else None
    return (
        value is not None
        and value.partition(".")[0] in info.symbols
        and all(isinstance(t, ast.Name) for t in stmt.targets)
    )


def qualify(info: FileInfo, node: ast.expr) -> str | None:
    """The qualified name an expression refers to in ``info``'s module, e.g. ``torch.nn.Linear``."""
    dotted = dotted_name(node)
    return qualify_dotted(info, dotted) if dotted is not None else None


def qualify_dotted(info: FileInfo, dotted: str) -> str:
    """The qualified name a dotted name (``nn.Linear``) refers to in ``info``'s module."""
    head, _, rest = dotted.partition(".")
    base = info.symbols.get(head, f"{info.module}.{head}")
    return f"{base}.{rest}" if rest else base


def _error_line(text: str, exc: SyntaxError) -> int:
    """The line of a syntax error; Python gives none for a NUL byte."""
    if exc.lineno is None and "\0" in text:
        return text.count("\n", 0, text.index("\0")) + 1
    return exc.lineno or 1


_TREES: OrderedDict[tuple[str, str], tuple[ast.Module | None, int]] = OrderedDict()
_TREES_KEPT = 32  # the last file versions read or asked about (an edited file, its neighbours)
# and at most this much source between them: a tree takes ~37 times its text (8.6 MB for the
# 234 KB of timm's vision_transformer.py), and each keystroke makes a version
_TREES_SOURCE = 1 << 20
_TREES_LOCK = threading.Lock()  # the scan reads in one thread, jobs are made in another


def syntax_tree(info: FileInfo) -> ast.Module | None:
    """``info``'s text parsed, or None if it does not parse. The scan keeps no trees, but
    the last few are kept here: after an edit, the scan, the call sites, the config
    methods and the script's models of the file each asked for its 4,900-line text parsed
    (timm's vision_transformer.py: 60 ms each, on every keystroke)."""
    key = (info.path, info.digest)
    with _TREES_LOCK:
        if key in _TREES:
            _TREES.move_to_end(key)
            return _TREES[key][0]
    tree = None
    text = info.text
    if not info.syntax_error:
        try:
            tree = ast.parse(text, info.path)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
    _keep_tree(key, tree, len(text))
    return tree


def _keep_tree(key: tuple[str, str], tree: ast.Module | None, size: int) -> None:
    """Keep ``tree`` (of ``size`` characters of source), dropping the least recently used
    beyond the count and the size kept; the newest is always kept."""
    with _TREES_LOCK:
        _TREES[key] = (tree, size)
        _TREES.move_to_end(key)
        kept = sum(size for _, size in _TREES.values())
        while len(_TREES) > 1 and (len(_TREES) > _TREES_KEPT or kept > _TREES_SOURCE):
            kept -= _TREES.popitem(last=False)[1][1]


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")


def source_lines(text: str) -> list[str]:
    """``text``'s lines as the parser counts them (``\\r\\n``, ``\\r`` or ``\\n``; not
    ``str.splitlines``'s form feeds and separators), their ends kept."""
    return _LINE.findall(text)


def source_segment(lines: list[str], node: ast.expr) -> str | None:
    """``ast.get_source_segment`` on lines split once (it splits the whole text on every
    call, a character at a time: 40 ms per call in a 4,900-line file)."""
    end_line, end_col = node.end_lineno, node.end_col_offset
    if end_line is None or end_col is None or end_line > len(lines):
        return None
    first, last = node.lineno - 1, end_line - 1
    if first == last:
        return lines[first].encode()[node.col_offset : end_col].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[:end_col].decode()
    return "".join([head, *lines[first + 1 : last], tail])


FUTURE_TOO_LATE = "SyntaxError: from __future__ imports must occur at the beginning of the file"


def misplaced_future(tree: ast.Module) -> int | None:
    """The line of a module-level ``from __future__`` import that follows other code: a
    ``SyntaxError`` when Python compiles the file (:func:`ast.parse` does not say so). A
    notebook runs such an import where it is, from that statement on
    (:mod:`.notebook`)."""
    body = tree.body
    first = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        first = int(isinstance(body[0].value.value, str))  # the docstring
    while first < len(body) and _is_future(body[first]):
        first += 1
    return next((stmt.lineno for stmt in body[first:] if _is_future(stmt)), None)


def _is_future(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__" and not stmt.level


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
    late_future = None if is_notebook(path) else misplaced_future(tree)
    if late_future is not None:  # a `# %%` cell's import too: plain Python rules
        info.syntax_error = (FUTURE_TOO_LATE, late_future)
        return info
    _keep_tree((info.path, info.digest), tree, len(text))  # an edited file is asked about next
    budget = Budget()
    is_package = path.stem == "__init__"

    read_imports(tree.body, info, is_package)
    for stmt in tree.body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef)):
            info.symbols[stmt.name] = f"{module}.{stmt.name}"
        elif isinstance(stmt, ast.Assign) and _is_alias(stmt, info):
            # Densenet169 = densenet169 = DenseNet169: other names of a class or function
            aliased = qualify(info, stmt.value)
            for target in stmt.targets:
                if isinstance(target, ast.Name) and aliased:
                    info.symbols[target.id] = aliased
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
            init = _init(stmt)
            params = _init_params(init)  # () is an __init__ of its own with no parameters
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
                passes_on=params is not None and init is not None and init.args.kwarg is not None,
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
        "register" in (dotted_name(d.func if isinstance(d, ast.Call) else d) or "").lower()
        for d in fn.decorator_list
    )
    returns = [fn.returns] if fn.returns is not None else []
    for node in _statements(fn.body):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Call):
            returns.append(node.value.func)
    returns += _returned_instance(fn)
    qualified = tuple(q for q in (qualify(info, r) for r in returns) if q)
    if not registered and not qualified:
        return None
    params = tuple(p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs])
    return FactoryInfo(fn.name, fn.lineno, params, registered, qualified)


_NOT_SIMPLE = (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)


def _returned_instance(fn: ast.FunctionDef) -> list[ast.expr]:
    """The callee of ``model = VISTA3D(...)`` in a function that ends ``return model``
    (MONAI's ``vista3d132()``): a name its body assigns once, at its top level, and
    returns, in a body of assignments and ifs (no loops, ``with`` or ``try``: not a
    script's ``main()`` that trains the model it returns)."""
    last = fn.body[-1] if fn.body else None
    if not isinstance(last, ast.Return) or not isinstance(last.value, ast.Name):
        return []
    if any(isinstance(node, _NOT_SIMPLE) for node in _statements(fn.body)):
        return []
    name = last.value.id
    assigned = [
        node
        for node in ast.walk(fn)
        if isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load)
    ]
    calls = [
        stmt.value
        for stmt in fn.body
        if isinstance(stmt, ast.Assign)
        and [t for t in stmt.targets if isinstance(t, ast.Name) and t.id == name]
        and isinstance(stmt.value, ast.Call)
    ]
    return [calls[0].func] if len(assigned) == 1 and len(calls) == 1 else []


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
