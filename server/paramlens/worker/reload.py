"""Run edited modules again in a process that imported their package, instead of importing
the whole package again.

A zygote (:mod:`.processes.zygote`) imported timm once (2.8 s); an edit of
``timm/models/vision_transformer.py`` used to cost that import again on every job. Here only
the edited module runs again, as a new module object in ``sys.modules``, and what the
package's other modules took from it is made to point at the new one, so that the process
holds what a fresh import of the edited package would hold:

- their import bindings (``from .vision_transformer import Block as TransformerBlock``,
  ``from .vision_transformer import *``, ``from . import vision_transformer``): taken again
  from the new module, as their import statements would (the statements are recorded by
  the loader, :attr:`.loader.ModuleRunner.imports`), and so on through re-exports
  (``timm.models`` re-exports it, ``timm`` re-exports ``timm.models``);
- module-level tables that hold its functions or classes (timm's ``@register_model``
  registry): running the edited module registers its new functions again; the old ones
  left behind are replaced by their new namesakes, or dropped if they are gone;
- a module that *made* something out of the edited one when it was imported (a subclass:
  deit's ``class VisionTransformerDistilled(VisionTransformer)``; an instance, a
  ``functools.partial``, a default argument, a class attribute) is run again too, after
  it, because keeping its old object would differ from a fresh import.

When that cannot be made exact (a package's ``__init__`` edited, a table that holds
something made from the edited module, too many modules to run again), :func:`plan`
says why and the caller imports the package afresh. Standard library only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import os
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_RERUN = 40  # modules run again for one edit; beyond that a fresh import is as quick

_ATOMS = (int, float, complex, str, bytes, bool, type(None), type(Ellipsis))
_MISSING = object()


@dataclass(frozen=True)
class Binding:
    """A name a top-level import statement bound: ``target = source.name`` (``name`` None:
    the module ``source`` itself; ``"*"``: every public name of ``source``)."""

    source: str
    name: str | None
    target: str


@dataclass(frozen=True)
class Plan:
    """What to run again, in the order the modules first finished importing (each after
    those it imports), and why each module beyond the edited ones is in it."""

    modules: tuple[str, ...]
    why: tuple[str, ...] = ()
    # the other modules' module-level tables, as they were: (table, key or element) of the
    # entries that are old objects (updated after the run), and (table, key, entry) of
    # those made from old objects (a registered wrapper): if the run does not replace them,
    # the result would differ from a fresh import
    entries: tuple[tuple[Any, Any], ...] = ()
    suspects: tuple[tuple[Any, Any, Any, str], ...] = ()
    # packages' names bound to what a module run again defines under the same name, with
    # no import statement to take them again (:func:`_exports`): (package, binding)
    exports: tuple[tuple[str, Binding], ...] = ()


class Modules:
    """The workspace modules of this process, as the loader ran them: their import
    statements, the order they finished in, and which names each bound by importing."""

    def __init__(
        self, statements: Callable[[str], list[ast.stmt]], finished: Iterable[str]
    ) -> None:
        self._statements = statements
        self.order: dict[str, int] = {}
        for name in finished:  # the first run counts: a module run again keeps its place
            self.order.setdefault(name, len(self.order))
        self._bindings: dict[str, list[Binding]] = {}

    def names(self) -> list[str]:
        return [n for n in sorted(self.order, key=self.order.__getitem__) if n in sys.modules]

    def bindings(self, name: str) -> list[Binding]:
        if name not in self._bindings:
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None)
            found: list[Binding] = []
            if module is not None and isinstance(path, str):
                package = module.__package__ or ""
                for stmt in self._statements(path):
                    found += _bindings_of(stmt, package)
            self._bindings[name] = found
        return self._bindings[name]

    def imported_names(self, name: str) -> set[str]:
        """The names module ``name`` bound by importing (through ``*`` too: those it
        holds the same object as its source under)."""
        names = set()
        namespace = sys.modules[name].__dict__
        for binding in self.bindings(name):
            if binding.name != "*":
                names.add(binding.target)
                continue
            for key, value in _values(binding):
                if namespace.get(key, _MISSING) is value:
                    names.add(key)
        return names

    def forget(self, name: str) -> None:
        self._bindings.pop(name, None)


def _bindings_of(stmt: ast.stmt, package: str) -> Iterator[Binding]:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                yield Binding(alias.name, None, alias.asname)
            else:
                top = alias.name.partition(".")[0]
                yield Binding(top, None, top)
    elif isinstance(stmt, ast.ImportFrom):
        try:
            source = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package)
        except (ImportError, ValueError):
            return
        for alias in stmt.names:
            yield Binding(source, alias.name, alias.asname or alias.name)


def plan(edited: Iterable[str], modules: Modules) -> Plan | str:
    """The modules to run again for an edit of ``edited`` (module names), or why a fresh
    import is needed instead."""
    rerun = list(dict.fromkeys(edited))
    why: list[str] = []
    for name in rerun:
        module = sys.modules.get(name)
        if module is None or name not in modules.order:
            return f"{name} was not imported by paramlens's loader"
        if hasattr(module, "__path__"):
            return f"{name} is a package's __init__"
    walk = _Walk(modules)
    checked = 0
    exports: dict[tuple[str, str], Binding] = {}
    while checked < len(rerun):
        old = _OldObjects([sys.modules[n] for n in rerun], modules)
        checked = len(rerun)
        for name in modules.names():
            if name in rerun:
                continue
            found = _made_from(name, old, modules, walk)
            if found and hasattr(sys.modules[name], "__path__"):
                taken = _exports(name, old)
                found = _made_from(name, old, modules, walk, {b.target for b in taken})
                exports.update({(name, b.target): b for b in taken})
            if found:
                if hasattr(sys.modules[name], "__path__"):
                    return f"the package {name} (its __init__) holds what it defines: {found}"
                rerun.append(name)
                why.append(f"{name} runs again too: {found}")
                if len(rerun) > MAX_RERUN:
                    return f"more than {MAX_RERUN} modules use what it defines"
    old = _OldObjects([sys.modules[n] for n in rerun], modules)
    entries, suspects = _table_entries(old, modules, set(rerun))
    held = tuple((package, b) for (package, _), b in exports.items())
    return Plan(_in_import_order(rerun, modules), tuple(why), entries, suspects, held)


def _exports(name: str, old: _OldObjects) -> list[Binding]:
    """Package ``name``'s names bound to what a module run again defines under the same
    name: a package that imports its modules lazily (transformers' ``_LazyModule``) keeps
    each name once asked for (``LlamaConfig``), with no import statement to take it again.
    A fresh import would give the new object: it is taken again by name (:func:`rerun`)."""
    found = []
    for key, value in list(sys.modules[name].__dict__.items()):
        if key.startswith("__") or isinstance(value, _ATOMS):
            continue
        owner = old.owned.get(id(value))
        if owner is not None and owner[1] == key:
            found.append(Binding(owner[0], key, key))
    return found


def _table_entries(
    old: _OldObjects, modules: Modules, changed: set[str]
) -> tuple[tuple[tuple[Any, Any], ...], tuple[tuple[Any, Any, Any, str], ...]]:
    """The entries of the other modules' tables that are old objects, and those made from
    old objects: two steps from each entry (a registered wrapper's closure, a partial's
    function, an entry's attributes; timm's registries hold 10,000 entries)."""
    walk = _Walk(modules, depth=2)
    tables: set[int] = set()
    seen: set[int] = set()  # each object walked once, whichever table holds it
    entries: list[tuple[Any, Any]] = []
    suspects: list[tuple[Any, Any, Any, str]] = []
    for name in modules.names():
        if name in changed:
            continue
        for key, value in list(sys.modules[name].__dict__.items()):
            if id(value) in tables or not isinstance(value, (dict, list, set)):
                continue
            tables.add(id(value))
            if isinstance(value, dict):
                pairs = list(dict.items(value))
            else:
                pairs = [(e, e) for e in _stored(value)]
            for k, v in pairs:
                if k in old or v in old:
                    entries.append((value, k))
                    continue
                for element in (k, v) if k is not v else (v,):
                    if isinstance(element, _ATOMS) or id(element) in seen:
                        continue
                    found = walk.refers(element, old, seen)
                    if found is not None:
                        why = f"{name}.{key} holds something made from {found}"
                        suspects.append((value, k, element, why))
    return tuple(entries), tuple(suspects)


def _in_import_order(names: list[str], modules: Modules) -> tuple[str, ...]:
    """Each module after those of ``names`` it imports from; otherwise in the order they
    first finished importing."""
    wanted = set(names)
    after = {n: {b.source for b in modules.bindings(n)} & wanted - {n} for n in names}
    done: list[str] = []
    pending = sorted(names, key=modules.order.__getitem__)
    while pending:
        ready = next((n for n in pending if not after[n] - set(done)), pending[0])  # a cycle
        pending.remove(ready)
        done.append(ready)
    return tuple(done)


class _OldObjects:
    """What the modules to run again made: their classes and functions, instances of their
    classes, the tables (dicts, lists, sets) they bound at module level, the modules
    themselves. Not other objects they hold: ``typing.Union[int, str]`` or
    ``torch.float32`` are the same objects in every module that names them."""

    def __init__(self, old: list[types.ModuleType], modules: Modules) -> None:
        self.names = {m.__name__ for m in old}
        self.ran_again = False  # set once they did: their names hold new objects
        self.owned: dict[int, tuple[str, str]] = {}  # id -> (module, name bound to it there)
        self.keep: list[object] = []  # the objects, alive while their ids are compared
        for module in old:
            imported = modules.imported_names(module.__name__)
            for key, value in module.__dict__.items():
                if key.startswith("__") or key in imported:
                    continue
                if isinstance(value, (dict, list, set)) or self._made(value):
                    self.owned.setdefault(id(value), (module.__name__, key))
                    self.keep.append(value)
            self.owned[id(module)] = (module.__name__, "")
            self.keep.append(module)

    def _made(self, value: object) -> bool:
        """Made by one of the modules (before they run again: by the old ones)."""
        if isinstance(value, (type, types.FunctionType)):
            return getattr(value, "__module__", None) in self.names
        return type(value).__module__ in self.names

    def __contains__(self, value: object) -> bool:
        if id(value) in self.owned:
            return True
        if not self._made(value):
            return False
        if not self.ran_again:
            return True
        # once they ran again, their new objects carry the same module name: an old one is
        # one its module no longer holds under its name
        maker = value if isinstance(value, (type, types.FunctionType)) else type(value)
        return self.counterpart(maker) is not maker

    def counterpart(self, value: object) -> object:
        """The new module's object of the same name (``_MISSING`` if it has none)."""
        where = self.owned.get(id(value))
        if where is None:
            where = (getattr(value, "__module__", ""), getattr(value, "__qualname__", ""))
        module_name, name = where
        module = sys.modules.get(module_name)
        if module is None or not isinstance(name, str):
            return _MISSING
        if not name:
            return module
        found: object = module
        for part in name.split("."):
            found = getattr(found, part, _MISSING)
            if found is _MISSING:
                return _MISSING
        return found


def _made_from(
    name: str, old: _OldObjects, modules: Modules, walk: _Walk, taken: Iterable[str] = ()
) -> str:
    """Why module ``name`` holds something made from the old objects at import time ("" if
    it does not), its names in ``taken`` aside (they are taken again). Its tables (dicts,
    lists, sets) are looked at once the edited modules ran again (:func:`rerun`): running
    them again replaces much of what they registered."""
    module = sys.modules[name]
    imported = modules.imported_names(name) | set(taken)
    for key, value in list(module.__dict__.items()):
        if key in imported or key.startswith("__") or isinstance(value, _ATOMS):
            continue
        if isinstance(value, (types.ModuleType, dict, list, set)):
            continue
        if value in old:
            return f"its {key} is {_label(value)}"
        found = walk.refers(value, old)
        if found is not None:
            return f"its {key} was made from {found}"
    return ""


def _label(value: object) -> str:
    where = getattr(value, "__module__", None) or type(value).__module__
    what = getattr(value, "__qualname__", None) or f"a {type(value).__qualname__}"
    return f"{where}.{what}"


class _Walk:
    """Follows what an object holds, a few steps: defaults, closures, class attributes and
    bases, partials, containers, instances of the workspace's classes; never modules,
    annotations, code, nor objects of libraries (a logger reaches every other logger)."""

    def __init__(self, modules: Modules, depth: int = 4) -> None:
        self.ours = set(modules.order)
        self.depth = depth

    def refers(self, value: object, old: _OldObjects, seen: set[int] | None = None) -> str | None:
        """The old object ``value`` holds, if any (its label); not through objects in
        ``seen`` (they were walked already)."""
        seen = set() if seen is None else seen
        seen.add(id(value))
        layer = [value]
        for _ in range(self.depth):
            following = []
            for item in layer:
                for ref in self._held(item):
                    if id(ref) in seen or isinstance(ref, _ATOMS):
                        continue
                    seen.add(id(ref))
                    if ref in old:
                        return _label(ref)
                    following.append(ref)
            layer = following
        return None

    def _held(self, item: object) -> Iterable[object]:
        if isinstance(item, types.FunctionType):
            if item.__module__ not in self.ours:
                return ()
            cells = [_cell(c) for c in item.__closure__ or ()]
            return (item.__defaults__, item.__kwdefaults__, *cells, item.__dict__)
        if isinstance(item, type):
            if item.__module__ not in self.ours:
                return ()
            attributes = [v for k, v in vars(item).items() if k != "__annotations__"]
            return (*item.__bases__, *attributes)
        if isinstance(item, dict):  # as stored: a subclass's own items() may run code
            return (*dict.keys(item), *dict.values(item))
        if isinstance(item, (list, tuple, set, frozenset)):
            return _stored(item)
        if isinstance(item, functools.partial):
            return (item.func, item.args, item.keywords)
        if isinstance(item, (staticmethod, classmethod)):
            return (item.__func__,)
        if isinstance(item, property):
            return (item.fget, item.fset, item.fdel)
        if isinstance(item, types.MethodType):
            return (item.__func__, item.__self__)
        if type(item).__module__ in self.ours and hasattr(item, "__dict__"):
            return (type(item), *vars(item).values())
        return ()


def _stored(items: object) -> Iterable[Any]:
    """What a list, tuple or set holds, as stored: a subclass's own ``__iter__`` may run
    code (transformers' lazy tables import every model when asked for their contents)."""
    if isinstance(items, list):
        return list.__iter__(items)
    if isinstance(items, tuple):
        return tuple.__iter__(items)
    if isinstance(items, set):
        return set.__iter__(items)
    if isinstance(items, frozenset):
        return frozenset.__iter__(items)
    return ()


def _cell(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # empty
        return None


class Unsafe(Exception):
    """The edited modules ran again, yet the process cannot be made to hold what a fresh
    import would: it must not be used for builds."""


def rerun(todo: Plan, modules: Modules, find_spec: Callable[[str, Any], Any]) -> list[str]:
    """Run the plan's modules again, then point the others at what they made; the names
    of the modules whose import bindings changed."""
    started = time.perf_counter()
    old = _OldObjects([sys.modules[n] for n in todo.modules], modules)
    with _warnings_counted(todo):
        _run_modules(todo, modules, find_spec)
    old.ran_again = True
    ran = time.perf_counter()
    for package, binding in todo.exports:  # before their importers take them again
        namespace = sys.modules[package].__dict__
        for target, value in _values(binding):
            if value is _MISSING:
                namespace.pop(target, None)
            else:
                namespace[target] = value
    rebound = _rebind(set(todo.modules), modules, {package for package, _ in todo.exports})
    _update_tables(old, todo)
    _check_tables(todo)
    timings["run"] = ran - started
    timings["rebind"] = time.perf_counter() - ran
    return rebound


timings: dict[str, float] = {}  # of the last rerun: for the log


@contextlib.contextmanager
def _warnings_counted(todo: Plan, shown: int = 3) -> Iterator[None]:
    """A module run again warns as it did on import, and more: a registry warns about
    every name it registers again (timm: 160 lines). The first few, then how many."""
    show = warnings.showwarning
    count = 0

    def counted(*args: Any, **kwargs: Any) -> None:
        nonlocal count
        count += 1
        if count <= shown:
            show(*args, **kwargs)

    warnings.showwarning = counted
    try:
        yield
    finally:
        if warnings.showwarning is counted:
            warnings.showwarning = show
        if count > shown:
            print(
                f"paramlens: {count - shown} more warnings while running "
                f"{', '.join(todo.modules)} again",
                file=sys.stderr,
            )


def _run_modules(todo: Plan, modules: Modules, find_spec: Callable[[str, Any], Any]) -> None:
    for name in todo.modules:
        parent_name, _, tail = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        spec = find_spec(name, getattr(parent, "__path__", None))
        if spec is None or spec.loader is None:
            raise Unsafe(f"{name} cannot be found again")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if parent is not None:
            setattr(parent, tail, module)
        modules.forget(name)
        spec.loader.exec_module(module)


def _rebind(changed: set[str], modules: Modules, exporting: Iterable[str] = ()) -> list[str]:
    """Take each import binding from a changed module again, as its statement would; a
    module whose bindings changed is changed for its own importers (re-exports), and so is
    a package in ``exporting`` (its names were taken again by name)."""
    rebound: list[str] = []
    pending = set(changed) | set(exporting)
    while pending:
        sources, pending = pending, set()
        for name in modules.names():
            if name in changed:
                continue
            namespace = sys.modules[name].__dict__
            moved = False
            for binding in modules.bindings(name):
                if binding.source not in sources:
                    continue
                for target, value in _values(binding):
                    if namespace.get(target, _MISSING) is not value:
                        if value is _MISSING:
                            namespace.pop(target, None)
                        else:
                            namespace[target] = value
                        moved = True
            if moved and name not in rebound:
                rebound.append(name)
                pending.add(name)
    return rebound


def _values(binding: Binding) -> Iterator[tuple[str, object]]:
    source = sys.modules.get(binding.source)
    if source is None:
        return
    if binding.name is None:
        yield binding.target, source
    elif binding.name == "*":
        public = getattr(source, "__all__", None)
        if public is None:
            public = [k for k in source.__dict__ if not k.startswith("_")]
        for key in public:
            if isinstance(key, str):
                yield key, getattr(source, key, _MISSING)
    else:
        value = getattr(source, binding.name, _MISSING)
        if value is _MISSING:  # `from pkg import submodule`
            value = sys.modules.get(f"{binding.source}.{binding.name}", _MISSING)
        yield binding.target, value


def _update_tables(old: _OldObjects, todo: Plan) -> None:
    """The other modules' tables that held the old objects (a registry of model functions):
    their new namesakes instead, or nothing if gone."""
    seen: set[int] = set()
    for table, _ in todo.entries:
        if id(table) in seen:
            continue
        seen.add(id(table))
        if isinstance(table, dict):
            _update_dict(table, old)
        elif isinstance(table, list):
            _update_list(table, old)
        else:
            _update_set(table, old)


def _check_tables(todo: Plan) -> None:
    """An entry made from the old objects that running the modules again did not replace
    (its module registered nothing under that key again) would differ from a fresh
    import: :class:`Unsafe`."""
    for table, key, entry, why in todo.suspects:
        if isinstance(table, dict):
            still = table.get(key, _MISSING) is entry or any(k is entry for k in table)
        else:
            still = any(e is entry for e in table)
        if still:
            raise Unsafe(why)


def _update_dict(table: dict[Any, Any], old: _OldObjects) -> None:
    for key, value in list(table.items()):
        new_key = old.counterpart(key) if key in old else key
        new_value = old.counterpart(value) if value in old else value
        if new_key is key and new_value is value:
            continue
        if new_key is not key:
            del table[key]
            if new_key is _MISSING or new_key in table:
                continue
        if new_value is _MISSING:
            table.pop(new_key, None)
        else:
            table[new_key] = new_value


def _update_list(table: list[Any], old: _OldObjects) -> None:
    present = {id(v) for v in table}
    kept = []
    for value in table:
        if value in old:
            new = old.counterpart(value)
            if new is _MISSING or id(new) in present:
                continue
            present.add(id(new))
            value = new
        kept.append(value)
    table[:] = kept


def _update_set(table: set[Any], old: _OldObjects) -> None:
    for value in [v for v in table if v in old]:
        table.discard(value)
        new = old.counterpart(value)
        if new is not _MISSING:
            table.add(new)


def edited_modules(paths: Iterable[str], modules: Modules) -> list[str]:
    """The names of the loaded modules whose files are ``paths``."""
    wanted = {os.path.realpath(p) for p in paths}
    found = []
    for name in modules.names():
        path = getattr(sys.modules[name], "__file__", None)
        if isinstance(path, str) and os.path.realpath(path) in wanted:
            found.append(name)
    return found
