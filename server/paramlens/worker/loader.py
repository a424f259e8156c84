"""Import workspace files as *definitions only*, inside the worker.

Runs in the user's interpreter (standard library only). A user's model file often
ends with a training loop or ``model = Net(); model.fit(...)``; importing it must
not run that. :func:`definitions_only` keeps the module-level statements that
define things (imports, classes, functions, constants, dataclass instances) and
drops the rest. :class:`WorkspaceFinder` applies the same filter to every module
imported from the workspace, so ``from .layers import Block`` works and runs no
script either, and serves unsaved editor buffers instead of the disk.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence

# Calls that may appear in a kept module-level assignment: they compute values and
# have no effects worth fearing. Matched on the last name of the callee.
_SAFE_CALLS = frozenset(
    [
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "str",
        "bool",
        "bytes",
        "complex",
        "range",
        "len",
        "min",
        "max",
        "sum",
        "sorted",
        "reversed",
        "enumerate",
        "zip",
        "abs",
        "round",
        "pow",
        "divmod",
        "isinstance",
        "issubclass",
        "getattr",
        "hasattr",
        "type",
        "object",
        "property",
        "staticmethod",
        "classmethod",
        "map",
        "filter",
        "any",
        "all",
        "repr",
        "format",
        "TypeVar",
        "NamedTuple",
        "TypedDict",
        "NewType",
        "cast",
        "field",
        "namedtuple",
        "OrderedDict",
        "defaultdict",
        "partial",
        "partialmethod",
        "getLogger",
        "device",
        "dtype",
        "finfo",
        "iinfo",
        "Size",
        "get",
        "getenv",
        "join",
        "dirname",
        "basename",
        "abspath",
        "realpath",
        "expanduser",
        "Path",
        "ceil",
        "floor",
        "sqrt",
        "log",
        "log2",
        "prod",
    ]
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


def _dataclass_names(body: Sequence[ast.stmt]) -> set[str]:
    names = set()
    for stmt in body:
        if not isinstance(stmt, ast.ClassDef):
            continue
        decorators = {
            _callee_name(d.func if isinstance(d, ast.Call) else d) for d in stmt.decorator_list
        }
        bases = {_callee_name(b) for b in stmt.bases}
        if "dataclass" in decorators or "NamedTuple" in bases or "Enum" in bases:
            names.add(stmt.name)
    return names


def _pure_expr(expr: ast.expr | None, allowed: set[str]) -> bool:
    """An expression whose calls only compute values (no model built, no I/O)."""
    if expr is None:
        return True
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name not in _SAFE_CALLS and name not in allowed:
                return False
        elif isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
    return True


def _keep(stmt: ast.stmt, allowed: set[str], skipped: list[int]) -> ast.stmt | None:
    if isinstance(
        stmt,
        (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef),
    ):
        return stmt
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return stmt  # docstring
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and _pure_expr(
        stmt.value, allowed
    ):
        return stmt
    if (
        isinstance(stmt, ast.If)
        and not _is_main_guard(stmt.test)
        and _pure_expr(stmt.test, allowed)
    ):
        stmt.body = _filter(stmt.body, allowed, skipped)
        stmt.orelse = _filter(stmt.orelse, allowed, skipped, allow_empty=True)
        return stmt
    if isinstance(stmt, ast.Try):
        stmt.body = _filter(stmt.body, allowed, skipped)
        for handler in stmt.handlers:
            handler.body = _filter(handler.body, allowed, skipped)
        stmt.orelse = _filter(stmt.orelse, allowed, skipped, allow_empty=True)
        stmt.finalbody = _filter(stmt.finalbody, allowed, skipped, allow_empty=True)
        return stmt
    if isinstance(stmt, (ast.Pass, ast.Global, ast.Nonlocal)):
        return stmt
    skipped.append(stmt.lineno)
    return None


def _filter(
    body: list[ast.stmt], allowed: set[str], skipped: list[int], allow_empty: bool = False
) -> list[ast.stmt]:
    kept = [s for s in (_keep(stmt, allowed, skipped) for stmt in body) if s is not None]
    if not kept and body and not allow_empty:
        kept = [ast.copy_location(ast.Pass(), body[0])]
    return kept


def definitions_only(tree: ast.Module) -> tuple[ast.Module, list[int]]:
    """The module without its script part, and the lines of the statements dropped."""
    allowed = _dataclass_names(tree.body)
    skipped: list[int] = []
    tree.body = _filter(tree.body, allowed, skipped, allow_empty=True)
    return tree, skipped


def compile_definitions(source: str, filename: str) -> types.CodeType:
    tree, _ = definitions_only(ast.parse(source, filename))
    return compile(tree, filename, "exec")


class _DefinitionsLoader(importlib.abc.Loader):
    def __init__(self, path: str, source: str | None) -> None:
        self.path = path
        self.source = source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        source = self.source
        if source is None:
            with open(self.path, encoding="utf-8") as f:
                source = f.read()
        exec(compile_definitions(source, self.path), module.__dict__)


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
    """Finds workspace modules first and loads them as definitions only."""

    def __init__(self, roots: Sequence[str], workspace: str, overrides: dict[str, str]) -> None:
        self.roots = list(roots)
        self.workspace = os.path.normcase(os.path.realpath(workspace))
        self.overrides = {os.path.realpath(p): t for p, t in overrides.items()}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
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
                loader = _DefinitionsLoader(candidate, self.overrides.get(real))
                locations = [os.path.dirname(candidate)] if is_package else None
                return importlib.util.spec_from_file_location(
                    fullname, candidate, loader=loader, submodule_search_locations=locations
                )
        return None


def install(roots: Sequence[str], workspace: str, overrides: dict[str, str]) -> None:
    for root in reversed(roots):
        if root not in sys.path:
            sys.path.insert(0, root)
    sys.meta_path.insert(0, WorkspaceFinder(roots, workspace, overrides))
