"""Import workspace files as Python does, without their script part, inside the worker.

Runs in the user's interpreter (standard library only). A user's model file often
ends with a training loop or ``model = Net(); model.fit(...)``; importing it must
not run that, yet real packages compute at import time (timm's ``to_2tuple =
_ntuple(2)``, ``args = parser.parse_args()``) and later statements need those names.

So what is skipped is decided by what makes a file a *script*, not by a list of
callees: the ``if __name__ == "__main__":`` block, top-level loops (except those that
only fill module tables), ``with`` blocks, and bare calls that run a job (``main()``,
``trainer.fit()``; registrations such as ``register_model(...)`` or
``__all__.append(...)`` are kept). Everything else runs,
one top-level statement at a time:

- a statement that raises (or exits) does not sink the file: the names it would
  have bound become :class:`Unavailable` placeholders, so a later *use* raises a
  clear ``NameError`` naming that line and why it failed;
- a statement other than an import gets a short time budget of its own;
- statements run inside a caller-supplied context (the worker passes
  ``torch.device("meta")``), so a module-level ``model = Net()`` allocates no weights.

:class:`WorkspaceFinder` applies this to every module imported from the workspace,
so ``from .layers import Block`` works, and serves unsaved editor buffers.
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import signal
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from .protocol import exception_line

STATEMENT_BUDGET_S = 3.0  # a module-level statement that is not an import
_MAX_FAILURES_KEPT = 50

# Bare module-level calls that declare rather than run a job: kept. Matched on the
# callee's last name (and any ``add_*``, ``set_*``, ``*register*``).
_DECLARING_CALLS = frozenset(
    {
        "append",
        "extend",
        "update",
        "add",
        "insert",
        "setdefault",
        "filterwarnings",
        "simplefilter",
        "setLevel",
        "addHandler",
        "wrap",
        "manual_seed",
        "seed",
        "set_printoptions",
        "set_default_dtype",
        "use_deterministic_algorithms",
    }
)


def _callee_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_main_guard(test: ast.expr) -> bool:
    names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    consts = {n.value for n in ast.walk(test) if isinstance(n, ast.Constant)}
    return "__name__" in names and "__main__" in consts


def _declares(call: ast.Call) -> bool:
    name = _callee_name(call.func)
    return (
        name in _DECLARING_CALLS
        or "register" in name.lower()
        or name.startswith(("add_", "set_"))  # parser.add_argument(...), torch.set_..._dtype
    )


# Calls that mark a loop as a job (a training or evaluation loop), whatever else it does.
_JOB_CALLS = frozenset(
    {
        "train",
        "fit",
        "step",
        "backward",
        "zero_grad",
        "evaluate",
        "eval",
        "validate",
        "test",
        "save",
        "load",
        "print",
        "sleep",
        "run",
        "main",
        "show",
        "savefig",
        "write",
        "download",
        "open",
    }
)


def _fills_tables(loop: ast.For) -> bool:
    """A top-level ``for`` that only fills module tables (timm's ``for k in (...):
    model_cfgs[k + '_gap'] = replace(...)``): assignments and declaring calls, no job."""
    if loop.orelse or not any(isinstance(s, (ast.Assign, ast.Expr)) for s in ast.walk(loop)):
        return False
    for node in ast.walk(loop):
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name in _JOB_CALLS or name.startswith(("train", "eval", "test")):
                return False
        elif isinstance(node, (ast.While, ast.With, ast.Return, ast.Yield, ast.Await)):
            return False

    def declarative(body: list[ast.stmt]) -> bool:
        for stmt in body:
            if isinstance(stmt, ast.If):
                if not (declarative(stmt.body) and declarative(stmt.orelse)):
                    return False
            elif isinstance(stmt, ast.Expr):
                if not (isinstance(stmt.value, ast.Call) and _declares(stmt.value)):
                    return False
            elif not isinstance(
                stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Pass, ast.Continue)
            ):
                return False
        return True

    return declarative(loop.body)


# Context managers that wrap definitions, not a job: monai defines its TorchScript
# interfaces under ``with warnings.catch_warnings():``.
_DEFINING_CONTEXTS = frozenset({"catch_warnings", "suppress", "no_grad", "inference_mode"})


def _wraps_definitions(stmt: ast.With) -> bool:
    return all(
        isinstance(item.context_expr, ast.Call)
        and _callee_name(item.context_expr.func) in _DEFINING_CONTEXTS
        for item in stmt.items
    )


def _is_script(stmt: ast.stmt) -> bool:
    """A statement that runs a job rather than defines something."""
    if isinstance(stmt, ast.For) and _fills_tables(stmt):
        return False
    if isinstance(stmt, ast.With) and _wraps_definitions(stmt):
        return False  # its body is filtered like an if's
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
        return True
    if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
        return True
    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Constant):
            return False  # a docstring
        return not (isinstance(value, ast.Call) and _declares(value))
    return False


def _filter(body: list[ast.stmt], skipped: list[int], allow_empty: bool) -> list[ast.stmt]:
    kept = []
    for stmt in body:
        if _is_script(stmt):
            skipped.append(stmt.lineno)
            continue
        if isinstance(stmt, ast.With):
            stmt.body = _filter(stmt.body, skipped, allow_empty=False)
        elif isinstance(stmt, ast.If):
            stmt.body = _filter(stmt.body, skipped, allow_empty=False)
            stmt.orelse = _filter(stmt.orelse, skipped, allow_empty=True)
        elif isinstance(stmt, ast.Try):
            stmt.body = _filter(stmt.body, skipped, allow_empty=False)
            for handler in stmt.handlers:
                handler.body = _filter(handler.body, skipped, allow_empty=False)
            stmt.orelse = _filter(stmt.orelse, skipped, allow_empty=True)
            stmt.finalbody = _filter(stmt.finalbody, skipped, allow_empty=True)
        kept.append(stmt)
    if not kept and body and not allow_empty:
        kept = [ast.copy_location(ast.Pass(), body[0])]
    return kept


def definitions_only(tree: ast.Module) -> tuple[ast.Module, list[int]]:
    """The module without its script part, and the lines of the statements dropped."""
    skipped: list[int] = []
    tree.body = _filter(tree.body, skipped, allow_empty=True)
    return tree, skipped


# -- splitting a module into its top-level statements, cheaply ----------------------
#
# ``ast.parse`` of a whole package is most of the cost of importing it (timm: 2 of 5 s),
# and nearly all of that is function and class bodies, which need no inspection: a
# ``def`` or ``class`` is always kept. So a module is cut at the lines where a statement
# can start (code in column 0), each piece is compiled on its own (the C compiler is
# fast), and a piece that does not compile alone (the cut fell inside a string or
# brackets) is joined to the next. Only pieces that are neither definitions nor imports
# are parsed into a tree and filtered as before.

_CONTINUATIONS = ("else", "elif", "except", "finally")
_MAX_REWORK = 4  # compiling more than this many times the source: parse it whole instead


def future_flags(body: Iterable[ast.stmt]) -> int:
    flags = 0
    for stmt in body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            for alias in stmt.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


@dataclass
class Chunk:
    """One or more whole top-level statements, ``text`` padded to their line numbers."""

    line: int
    text: str
    path: str
    flags: int
    code: types.CodeType | None  # compiled: a definition or an import
    parsed: ast.Module | None = None
    is_import: bool = False

    def tree(self) -> ast.Module:
        if self.parsed is None:
            self.parsed = ast.parse(self.text, self.path)
        return self.parsed

    def bound_names(self) -> list[str]:
        return [name for stmt in self.tree().body for name in _bound_names(stmt)]


def _kind(first_line: str) -> str:
    word = first_line.split(None, 1)[0] if first_line.strip() else ""
    if word.startswith("@") or word in ("def", "class", "async"):
        return "definition"  # `async` at column 0: `async def` (async for/with: a SyntaxError)
    if word in ("import", "from") and not first_line.startswith("from __future__"):
        return "import"
    return "other"


def _starts(lines: list[str]) -> list[int] | None:
    """Indexes of the lines where a top-level statement may start; None if the module
    starts indented (Python's own error is wanted then)."""
    starts: list[int] = []
    for index, line in enumerate(lines):
        head = line[:1]
        if not head or head in "#\n)]}":
            continue
        if head in " \t":
            if not starts and line.strip() and not line.lstrip().startswith("#"):
                return None
            continue
        word = line.split(None, 1)[0].rstrip(":")
        if word not in _CONTINUATIONS:
            starts.append(index)
    return starts


def split_top_level(source: str, path: str) -> list[Chunk] | None:
    """The module's top-level statements in order, definitions and imports compiled; None
    when it cannot be split cheaply (then :func:`ast.parse` of the whole, which also
    reports a syntax error as Python does)."""
    lines = source.split("\n")
    starts = _starts(lines)
    if starts is None:
        return None
    starts.append(len(lines))
    chunks: list[Chunk] = []
    flags = 0
    budget = _MAX_REWORK * len(source) + 10_000
    begin = 0  # index into starts
    while begin < len(starts) - 1:
        first = starts[begin]
        kind = _kind(lines[first])
        end = begin + 1
        while True:
            body = "\n".join(lines[first : starts[end]])
            text = "\n" * first + body
            budget -= len(body)
            if budget < 0:
                return None
            try:
                if kind == "other" or (kind == "import" and ";" in body):
                    chunk = Chunk(first + 1, text, path, flags, None, ast.parse(text, path))
                    flags |= future_flags(chunk.tree().body)
                else:
                    code = compile(text, path, "exec", flags=flags, dont_inherit=True)
                    chunk = Chunk(first + 1, text, path, flags, code, is_import=kind == "import")
                break
            except SyntaxError:
                if end == len(starts) - 1:
                    return None  # a real syntax error
                end += 1
        chunks.append(chunk)
        begin = end
    return chunks


# -- running a module one statement at a time ------------------------------------


class UnavailableNameError(NameError):
    pass


class Unavailable:
    """Stands for a name whose module-level statement failed; any use says why."""

    def __init__(self, name: str, file: str, line: int, reason: str) -> None:
        self._paramlens_why = (
            f"{name} is unavailable: the statement at {os.path.basename(file)}:{line} "
            f"that defines it failed when paramlens imported the file ({reason})"
        )

    def _fail(self, *args: object, **kwargs: object) -> Any:
        raise UnavailableNameError(self._paramlens_why)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        self._fail()

    def __repr__(self) -> str:
        return f"<unavailable: {self._paramlens_why}>"

    __call__ = __bool__ = __iter__ = __len__ = __getitem__ = __mro_entries__ = _fail
    __add__ = __radd__ = __sub__ = __mul__ = __rmul__ = __truediv__ = __floordiv__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __enter__ = __index__ = _fail
    __int__ = __float__ = __or__ = __ror__ = _fail


def why_unavailable(value: object) -> str | None:
    """What an :class:`Unavailable` says when used (None for any other value): for C code,
    which refuses it by its type without using it."""
    return value._paramlens_why if isinstance(value, Unavailable) else None


def _bound_names(stmt: ast.stmt) -> Iterator[str]:
    """Names a top-level statement binds in its module (nested blocks included)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield stmt.name
        return
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        for alias in stmt.names:
            if alias.name != "*":
                yield alias.asname or alias.name.split(".")[0]
        return
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                yield node.id
    for block in ("body", "orelse", "finalbody"):
        for inner in getattr(stmt, block, []) if isinstance(stmt, (ast.If, ast.Try)) else []:
            yield from _bound_names(inner)
    for handler in getattr(stmt, "handlers", []):
        for inner in handler.body:
            yield from _bound_names(inner)


_TEST = "__paramlens_if__"  # where a module-level ``if``'s test is kept while it runs


def _imports_in(tree: Callable[[], ast.Module]) -> list[ast.stmt]:
    """The import statements of a top-level statement, those in its ``if``/``try``
    blocks included (not those inside functions or classes: they run when called)."""
    found: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree().body)
    while pending:
        stmt = pending.pop(0)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            found.append(stmt)
        elif isinstance(stmt, (ast.If, ast.Try)):
            pending += stmt.body + stmt.orelse + getattr(stmt, "finalbody", [])
            for handler in getattr(stmt, "handlers", []):
                pending += handler.body
    return found


@dataclass(frozen=True)
class Failure:
    file: str
    line: int
    message: str


class ModuleRunner:
    """Runs modules statement by statement; shared by every workspace module of a job."""

    def __init__(
        self, statement_context: Callable[[], AbstractContextManager[object]] | None = None
    ) -> None:
        self.statement_context = statement_context or contextlib.nullcontext
        self.failures: list[Failure] = []
        self.importing: list[str] = []  # the workspace files being run, innermost last
        # What re-running an edited module in place needs (:mod:`.reload`): each module's
        # top-level import statements (parsed only when asked for), by file, and the
        # modules in the order they finished running (a module after those it imports).
        self.imports: dict[str, list[Callable[[], list[ast.stmt]]]] = {}
        self.finished: list[str] = []
        self._sources: dict[str, str] = {}

    def source_of(self, path: str) -> str:
        """The text of a workspace file this runner ran (or is running)."""
        return self._sources.get(path, "")

    def run(self, source: str, path: str, namespace: dict[str, Any]) -> None:
        self.importing.append(path)  # a timeout names the file it stopped (10 MB of source)
        self.imports[path] = []
        self._sources[path] = source
        try:
            self._run(source, path, namespace)
        finally:
            self.importing.pop()
        name = namespace.get("__name__")
        if isinstance(name, str):
            self.finished.append(name)

    def import_statements(self, path: str) -> list[ast.stmt]:
        """The top-level imports of ``path`` as last run (inside ``if``/``try`` too)."""
        return [stmt for parsed in self.imports.get(path, ()) for stmt in parsed()]

    def _run(self, source: str, path: str, namespace: dict[str, Any]) -> None:
        chunks = split_top_level(source, path)
        if chunks is None:  # not cleanly split (or not valid Python): the whole tree
            self._run_tree(ast.parse(source, path), path, namespace)
            return
        for chunk in chunks:
            if chunk.code is None:  # anything but a definition or an import: filtered
                self._run_tree(chunk.tree(), path, namespace, chunk.flags)
                continue
            if chunk.is_import:
                self.imports[path].append(functools.partial(_imports_in, chunk.tree))
            self._run_statement(
                chunk.code, path, namespace, chunk.line, chunk.is_import, chunk.bound_names
            )

    def _run_tree(
        self, tree: ast.Module, path: str, namespace: dict[str, Any], flags: int = 0
    ) -> None:
        tree, _ = definitions_only(tree)
        self._run_body(tree.body, path, namespace, flags)

    def _run_body(
        self,
        body: list[ast.stmt],
        path: str,
        namespace: dict[str, Any],
        flags: int,
        top: bool = True,
    ) -> None:
        for stmt in body:
            if top:  # from a `from __future__` import on (a notebook's may follow other code)
                flags |= future_flags([stmt])
            if top and isinstance(stmt, (ast.Import, ast.ImportFrom, ast.If, ast.Try)):
                found = _imports_in(functools.partial(ast.Module, [stmt], []))
                self.imports.setdefault(path, []).append(functools.partial(list, found))
            if isinstance(stmt, ast.If):
                self._run_if(stmt, path, namespace, flags)
                continue
            code = compile(ast.Module([stmt], []), path, "exec", flags=flags, dont_inherit=True)
            is_import = isinstance(stmt, (ast.Import, ast.ImportFrom))
            names = functools.partial(_bound_names, stmt)
            self._run_statement(code, path, namespace, stmt.lineno, is_import, names)

    def _run_if(self, stmt: ast.If, path: str, namespace: dict[str, Any], flags: int) -> None:
        """An ``if`` at module level: its test, then the branch taken one statement at a
        time, so that a failing statement there does not take the others' names with it
        (DCGAN's ``dataset = dset.ImageFolder(...)`` fails without data; the ``nc = 3``
        after it is what the model needs)."""
        truth = ast.Call(ast.Name("bool", ast.Load()), [stmt.test], [])
        test = ast.Assign([ast.Name(_TEST, ast.Store())], truth)
        ast.copy_location(test, stmt)
        ast.fix_missing_locations(test)
        code = compile(ast.Module([test], []), path, "exec", flags=flags, dont_inherit=True)
        names = functools.partial(_bound_names, stmt)
        namespace.pop(_TEST, None)
        self._run_statement(code, path, namespace, stmt.lineno, False, names)
        taken = namespace.pop(_TEST, None)
        if taken is True:  # its imports were noted with the whole statement
            self._run_body(stmt.body, path, namespace, flags, top=False)
        elif taken is False:
            self._run_body(stmt.orelse, path, namespace, flags, top=False)

    def _run_statement(
        self,
        code: types.CodeType,
        path: str,
        namespace: dict[str, Any],
        line: int,
        is_import: bool,
        bound_names: Callable[[], Iterable[str]],
    ) -> None:
        outer_remaining = signal.getitimer(signal.ITIMER_REAL)[0] if has_itimer() else 0.0
        outer_deadline = time.monotonic() + outer_remaining if outer_remaining else None
        budget = None if is_import else STATEMENT_BUDGET_S
        started = time.monotonic()
        if budget is not None and has_itimer():
            signal.setitimer(signal.ITIMER_REAL, min(budget, outer_remaining or budget))
        deadline_passed = False
        try:
            if is_import:
                exec(code, namespace)
            else:
                with self.statement_context():
                    exec(code, namespace)
        except BaseException as exc:
            now = time.monotonic()
            whole_import = outer_deadline is not None and now >= outer_deadline - 0.05
            own_budget = budget is not None and now >= started + budget - 0.05
            timer = outer_deadline is not None
            if (
                isinstance(exc, TimeoutError)
                and not own_budget
                and (whole_import or (is_import and timer))
            ):
                # the whole import ran out of time (an import statement has no budget of its
                # own: the imported module's statements have theirs): no module of
                # placeholders may be left behind
                deadline_passed = True
                raise
            if isinstance(exc, TimeoutError) and own_budget:
                reason = f"it ran longer than {budget:g} s"
            else:
                reason = exception_line(exc, 200)
            self._poison(line, bound_names(), path, namespace, reason)
        finally:
            if budget is not None and has_itimer():
                # the outer deadline is re-armed for what remains of it, unless it is the
                # exception on its way out: a second alarm would strike while it unwinds
                remaining = 0.0
                if outer_deadline is not None and not deadline_passed:
                    remaining = max(outer_deadline - time.monotonic(), 0.001)
                signal.setitimer(signal.ITIMER_REAL, remaining)

    def _poison(
        self, line: int, names: Iterable[str], path: str, namespace: dict[str, Any], reason: str
    ) -> None:
        if len(self.failures) < _MAX_FAILURES_KEPT:
            self.failures.append(Failure(path, line, reason))
        for name in names:
            if name not in namespace:
                namespace[name] = Unavailable(name, path, line, reason)


@functools.cache  # a job's files do not change while it runs (each job is a fresh process)
def code_objects(filename: str) -> tuple[tuple[types.CodeType, bool], ...]:
    """Every code object compiled from a file's text (as linecache has it: an unsaved
    buffer's), each with whether it lies in an ``__init__``; none if it does not compile."""
    source = "".join(linecache.getlines(filename))
    try:
        modules = [compile(source, filename, "exec", dont_inherit=True)]
    except SyntaxError:  # a notebook's `from __future__` import in a later cell?
        modules = _statement_codes(source, filename)
    except ValueError:
        return ()
    found: list[tuple[types.CodeType, bool]] = []
    pending = [(module, False) for module in modules]
    while pending:
        code, in_init = pending.pop()
        in_init = in_init or code.co_name == "__init__"
        found.append((code, in_init))
        pending.extend((c, in_init) for c in code.co_consts if isinstance(c, types.CodeType))
    return tuple(found)


def _statement_codes(source: str, filename: str) -> list[types.CodeType]:
    """Each top-level statement compiled with the future flags of those before it, as a
    notebook runs (:mod:`paramlens.analysis.notebook`); none if the source does not parse."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    codes, flags = [], 0
    for stmt in tree.body:
        flags |= future_flags([stmt])
        try:
            module = ast.Module([stmt], [])
            codes.append(compile(module, filename, "exec", flags=flags, dont_inherit=True))
        except (SyntaxError, ValueError, RecursionError):
            continue
    return codes


def has_itimer() -> bool:
    """A per-statement alarm needs a Python handler (the worker's raises a TimeoutError)."""
    return hasattr(signal, "setitimer") and callable(signal.getsignal(signal.SIGALRM))


class _WorkspaceLoader(importlib.abc.Loader):
    def __init__(self, path: str, source: str | None, runner: ModuleRunner) -> None:
        self.path = path
        self.source = source
        self.runner = runner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    # What the standard file loader offers too: pkgutil.get_data (timm reads its pruned
    # channel lists this way), inspect.getsource, linecache.
    def get_filename(self, fullname: str | None = None) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def get_source(self, fullname: str) -> str:
        if self.source is not None:
            return self.source
        return importlib.util.decode_source(self.get_data(self.path))

    def exec_module(self, module: types.ModuleType) -> None:
        self.runner.run(self.get_source(module.__name__), self.path, module.__dict__)


def is_workspace_file(path: str, workspace: str) -> bool:
    if not os.path.isabs(path):  # "<string>", "<paramlens: ...>", frozen modules
        return False
    path = os.path.normcase(os.path.realpath(path))
    if not path.startswith(workspace + os.sep):
        return False
    rel = path[len(workspace) :]
    parts = rel.split(os.sep)
    return not any(p in ("site-packages", "dist-packages", ".venv", "venv", ".tox") for p in parts)


class WorkspaceFinder(importlib.abc.MetaPathFinder):
    """Finds workspace modules first and loads them without their script part. ``named``
    gives modules whose file is no ``.py`` by name (a notebook's module, whose text comes
    as an override): Python would not find them by searching."""

    def __init__(
        self,
        roots: Sequence[str],
        workspace: str,
        overrides: dict[str, str],
        runner: ModuleRunner,
        named: dict[str, str] | None = None,
    ) -> None:
        self.roots = list(roots)
        self.workspace = os.path.normcase(os.path.realpath(workspace))
        self.overrides = {os.path.realpath(p): t for p, t in overrides.items()}
        self.runner = runner
        self.named = {
            m: p for m, p in (named or {}).items() if os.path.realpath(p) in self.overrides
        }

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.named:
            file = self.named[fullname]
            source = self.overrides[os.path.realpath(file)]
            loader = _WorkspaceLoader(file, source, self.runner)
            return importlib.util.spec_from_file_location(fullname, file, loader=loader)
        last = fullname.rpartition(".")[2]
        for folder in path if path is not None else self.roots:
            package_init = os.path.join(folder, last, "__init__.py")
            module_file = os.path.join(folder, last + ".py")
            for candidate, is_package in ((package_init, True), (module_file, False)):
                real = os.path.realpath(candidate)
                if not (real in self.overrides or os.path.isfile(candidate)):
                    continue
                if not is_workspace_file(candidate, self.workspace):
                    return None
                loader = _WorkspaceLoader(candidate, self.overrides.get(real), self.runner)
                locations = [os.path.dirname(candidate)] if is_package else None
                return importlib.util.spec_from_file_location(
                    fullname, candidate, loader=loader, submodule_search_locations=locations
                )
        return None


# -- a script's required command-line arguments -----------------------------------


def compared_constant(source: str, dest: str) -> str | None:
    """The first string a module compares ``<args>.<dest>`` with (``opt.dataset in
    ['imagenet', 'folder']``, ``args.mode == "train"``): a value the script handles."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not isinstance(node.left, ast.Attribute):
            continue
        if node.left.attr != dest:
            continue
        for right in node.comparators:
            values = right.elts if isinstance(right, (ast.List, ast.Tuple, ast.Set)) else [right]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return None


def lenient_arguments(runner: ModuleRunner) -> None:
    """``parser.parse_args()`` at import time sees no command line, and a script whose
    argument is ``required=True`` would exit there (DCGAN's ``--dataset``): such an
    argument gets its first choice, else the first string the importing module compares
    it with, else None; the script's other arguments keep their defaults."""
    import argparse

    original = argparse.ArgumentParser.parse_known_args
    if getattr(original, "_paramlens", False):
        return

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        importing = runner.importing
        if not importing:
            return original(self, args, namespace)
        changed = []
        for action in self._actions:
            optional = bool(action.option_strings)
            if optional and not action.required:
                continue
            if not optional and action.nargs not in (None, 1):
                continue
            choices = list(action.choices or ())
            value = choices[0] if choices else None
            if value is None:
                value = compared_constant(runner.source_of(importing[-1]), action.dest)
            changed.append((action, action.required, action.nargs, action.default))
            action.required, action.default = False, value
            if not optional:
                action.nargs = "?"
        try:
            return original(self, args, namespace)
        finally:
            for action, required, nargs, default in changed:
                action.required, action.nargs, action.default = required, nargs, default

    parse_known_args._paramlens = True  # type: ignore[attr-defined]
    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def install(
    roots: Sequence[str],
    workspace: str,
    overrides: dict[str, str],
    runner: ModuleRunner,
    named: dict[str, str] | None = None,
) -> None:
    lenient_arguments(runner)
    for root in reversed(roots):
        if root not in sys.path:
            sys.path.insert(0, root)
    sys.meta_path.insert(0, WorkspaceFinder(roots, workspace, overrides, runner, named))
    for path, text in overrides.items():
        # what linecache reads for tracebacks, forward()'s line shapes and the code
        # objects of a file: the text that ran, not the disk's (a notebook's is JSON)
        linecache.cache[path] = (len(text), None, text.splitlines(keepends=True), path)
