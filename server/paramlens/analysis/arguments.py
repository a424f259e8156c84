"""Real arguments found in the code itself, read and never run: a class's config methods
(``GPT.get_default_config()``, ``Model.from_config()``) with the fields they leave to the
caller and the places that set those fields, and the models a script builds at module
level (``netG = Generator(ngpu)``). Parsed on demand, once per file text. Imports
:mod:`.model`, :mod:`.literals` and :mod:`.reading`."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .literals import dotted_name, try_literal
from .model import ClassInfo, FileInfo
from .reading import qualify, source_lines, source_segment, syntax_tree

# Methods that would load weights or reach the network: never a constructor.
_LOADING_WORDS = ("pretrained", "load", "checkpoint", "download", "hub", "url", "file", "path")
# A method returning a config object (not an instance) is used only under such a name.
_CONFIG_WORDS = ("config", "cfg", "hparams", "hyperparameters", "args", "params", "settings")


@dataclass(frozen=True)
class ConfigMethod:
    """A staticmethod or classmethod of a model class that needs no arguments and returns
    either the class's config (``get_default_config``) or an instance (``from_config``)."""

    name: str
    line: int
    returns_instance: bool
    # the config's fields the method sets, and those it leaves None (the caller's to set)
    defaults: tuple[tuple[str, object], ...] = ()
    open_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldSite:
    """A place that sets open fields of a config a config method returned, to literals:
    ``config = cls.get_default_config(); config.vocab_size = 50257``."""

    file: str
    line: int
    values: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class ScriptInstance:
    """A model a script builds at module level: ``netG = Generator(ngpu).to(device)``."""

    target: str  # qualified name of the callee (the class)
    file: str
    module: str
    line: int
    variable: str
    call: str  # the call's source text, ``Generator(ngpu)``


def _class_node(info: FileInfo, cls: ClassInfo) -> ast.ClassDef | None:
    tree = syntax_tree(info)
    if tree is None:
        return None
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == cls.name and stmt.lineno == cls.line:
            return stmt
    return None


def _decorators(fn: ast.FunctionDef) -> set[str]:
    return {(dotted_name(d) or "").rpartition(".")[2] for d in fn.decorator_list}


def _no_required(fn: ast.FunctionDef, skip_first: bool) -> bool:
    a = fn.args
    positional = [*a.posonlyargs, *a.args][1 if skip_first else 0 :]
    return len(a.defaults) >= len(positional) and all(d is not None for d in a.kw_defaults)


def _returns_instance(fn: ast.FunctionDef, cls: ClassInfo) -> bool:
    names = {"cls", cls.name}
    if fn.returns is not None and (dotted_name(fn.returns) or "") in (cls.name, "Self"):
        return True
    for node in ast.walk(fn):
        value = node.value if isinstance(node, ast.Return) else None
        func = value.func if isinstance(value, ast.Call) else None
        if isinstance(func, ast.Name) and func.id in names:
            return True
    return False


def _fields(fn: ast.FunctionDef, info: FileInfo) -> tuple[dict[str, object], list[str]]:
    """The fields a config method sets: ``C.n_layer = 12`` after ``C = CN()``, or the
    keywords of ``return Config(n_layer=12, vocab_size=None)`` / ``dict(...)`` / ``{...}``;
    the literal ones, and those set to None."""
    defaults: dict[str, object] = {}
    open_fields: list[str] = []

    def note(name: str, node: ast.expr) -> None:
        ok, value = try_literal(node, info.constants)
        if not ok:
            return
        if value is None:
            open_fields.append(name)
        else:
            defaults[name] = value

    objects: set[str] = set()
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and isinstance(stmt.value, ast.Call):
                objects.add(target.id)
            elif (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id in objects
            ):
                note(target.attr, stmt.value)
        elif isinstance(stmt, ast.Return) and stmt.value is not None:
            value = stmt.value
            if isinstance(value, ast.Call):
                for keyword in value.keywords:
                    if keyword.arg:
                        note(keyword.arg, keyword.value)
            elif isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        note(key.value, item)
    return defaults, list(dict.fromkeys(f for f in open_fields if f not in defaults))


def config_methods(info: FileInfo, cls: ClassInfo) -> list[ConfigMethod]:
    """The class's own config methods, in the order written: no required argument, not one
    that loads weights, and returning an instance or (by its name) a config."""
    node = _class_node(info, cls)
    if node is None:
        return []
    found = []
    for fn in node.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
            continue
        kinds = _decorators(fn) & {"staticmethod", "classmethod"}
        lowered = fn.name.lower()
        if not kinds or any(word in lowered for word in _LOADING_WORDS):
            continue
        if not _no_required(fn, skip_first="classmethod" in kinds):
            continue
        if _returns_instance(fn, cls):
            found.append(ConfigMethod(fn.name, fn.lineno, True))
        elif any(word in lowered for word in _CONFIG_WORDS):
            defaults, open_fields = _fields(fn, info)
            found.append(
                ConfigMethod(fn.name, fn.lineno, False, tuple(defaults.items()), tuple(open_fields))
            )
    return found


def asserted_fields(info: FileInfo, cls: ClassInfo, param: str) -> list[str]:
    """Fields of ``param`` that the class's ``__init__`` asserts are set:
    ``assert config.vocab_size is not None``, ``assert cfg["num_classes"] is not None``."""
    node = _class_node(info, cls)
    if node is None:
        return []
    found = []
    for fn in node.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
            for stmt in ast.walk(fn):
                if not isinstance(stmt, ast.Assert) or not isinstance(stmt.test, ast.Compare):
                    continue
                left = stmt.test.left
                ops = stmt.test.ops
                if len(ops) != 1 or not isinstance(ops[0], ast.IsNot):
                    continue
                if isinstance(left, ast.Attribute):  # config.vocab_size
                    holder, field = left.value, left.attr
                elif isinstance(left, ast.Subscript) and isinstance(left.slice, ast.Constant):
                    holder, field = left.value, str(left.slice.value)  # cfg["num_classes"]
                else:
                    continue
                if isinstance(holder, ast.Name) and holder.id == param:
                    found.append(field)
    return found


def _scopes(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    """The module's body and every function's, each statement list in order."""
    yield tree.body
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.body


def _flat(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a scope in order, into ``if``/``try``/``with``, not into definitions."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for name in ("body", "orelse", "finalbody"):
                yield from _flat(getattr(stmt, name, []))
            for handler in getattr(stmt, "handlers", []):
                yield from _flat(handler.body)


def field_sites(
    info: FileInfo, owner: ClassInfo, method: str, resolve: Callable[[str], str]
) -> list[FieldSite]:
    """Places in ``info`` that set fields to literals on what ``owner.method()`` returned
    (``cls.method()`` or ``self.method()`` inside the class), one per function."""
    tree = syntax_tree(info)
    if tree is None:
        return []
    found = []
    for body in _scopes(tree):
        holders: set[str] = set()
        values: dict[str, object] = {}
        line = 0
        for stmt in _flat(body):
            if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
                continue
            target = dotted_name(stmt.targets[0])
            value = stmt.value
            if target is None:
                continue
            func = value.func if isinstance(value, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and func.attr == method
                and _is_owner(info, func.value, owner, resolve)
            ):
                holders.add(target)
                continue
            head, _, field = target.rpartition(".")
            if head in holders:
                ok, literal = try_literal(value, info.constants)
                if ok and literal is not None:
                    values[field] = literal
                    line = line or stmt.lineno
        if values:
            found.append(FieldSite(info.path, line, tuple(values.items())))
    return found


def _is_owner(
    info: FileInfo, node: ast.expr, owner: ClassInfo, resolve: Callable[[str], str]
) -> bool:
    if isinstance(node, ast.Name) and node.id in ("cls", "self") and info.path == owner.file:
        return True
    name = qualify(info, node)
    return name is not None and resolve(name) == owner.qualname


_MOVES = frozenset({"to", "cuda", "cpu", "eval", "train", "float", "half", "double", "bfloat16"})


def _unmoved(node: ast.expr) -> ast.expr:
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _MOVES
    ):
        node = node.func.value
    return node


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements the worker's loader runs at import: the top level, into ``if`` and
    ``try`` blocks, but not the ``if __name__ == "__main__":`` block."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            if _name_guard(stmt):
                continue
            yield from _module_level(stmt.body)
            yield from _module_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _module_level(stmt.body)


def _name_guard(stmt: ast.If) -> bool:
    """An ``if __name__ == "__main__":`` (its test names ``__name__``)."""
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(stmt.test))


_MAIN_BLOCKS: dict[tuple[str, str], list[tuple[int, int]]] = {}


def main_blocks(info: FileInfo) -> list[tuple[int, int]]:
    """The first and last lines of each top-level ``if __name__ == "__main__":`` block of
    ``info`` (a module's demo, smoke test or script body), found once per file text."""
    key = (info.path, info.digest)
    if key not in _MAIN_BLOCKS:
        if len(_MAIN_BLOCKS) > 4096:
            _MAIN_BLOCKS.clear()
        tree = syntax_tree(info)
        _MAIN_BLOCKS[key] = [
            (stmt.lineno, stmt.end_lineno or stmt.lineno)
            for stmt in (tree.body if tree is not None else [])
            if isinstance(stmt, ast.If) and _name_guard(stmt)
        ]
    return _MAIN_BLOCKS[key]


_SCRIPTS: dict[tuple[str, str], list[ScriptInstance]] = {}


def script_instances(info: FileInfo) -> list[ScriptInstance]:
    """Models built at module level in ``info``: ``name = Cls(...)`` (``.to(device)`` and
    the like aside), the statements the loader runs when it imports the file. Found once
    per file text: a class's script is looked for in every file that names it (timm's
    ``VisionTransformer``: 50 files, on every edit of any of them)."""
    key = (info.path, info.digest)
    if key not in _SCRIPTS:
        if len(_SCRIPTS) > 4096:
            _SCRIPTS.clear()
        _SCRIPTS[key] = _script_instances(info)
    return _SCRIPTS[key]


def _script_instances(info: FileInfo) -> list[ScriptInstance]:
    tree = syntax_tree(info)
    if tree is None:
        return []
    found = []
    lines: list[str] | None = None
    for stmt in _module_level(tree.body):
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target = stmt.targets[0]
        value = _unmoved(stmt.value)
        if not isinstance(target, ast.Name) or not isinstance(value, ast.Call):
            continue
        callee = qualify(info, value.func)
        if callee is None:
            continue
        lines = lines if lines is not None else source_lines(info.text)
        text = source_segment(lines, value)
        if text is None:
            continue
        found.append(ScriptInstance(callee, info.path, info.module, stmt.lineno, target.id, text))
    return found
