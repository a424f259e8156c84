"""The values local names hold at a call, read statically (never run), so that calls
whose arguments are local values are call sites too: in a function or an
``if __name__ == "__main__":`` block, a name assigned a literal before the call
(``dim = 64``), a loop variable over a literal sequence (its first item:
``for dims in [2, 3]:``), a test's parameters from ``@pytest.mark.parametrize`` or
``@parameterized.expand(CASES)`` (the first case; ``CASES`` may be built by module-level
loops that append), and a literal dict spread into the call (``Net(**args_dict)``). Two
values are no literals (:class:`Opaque`): a test's parameter whose cases name classes it
calls (:class:`CaseClass`: each case naming another class is read), and a name assigned a
call of a class (:class:`Built`: ``Wrapper(model)`` reads as ``Wrapper(Net(dim=8))``).

Conservative: a name bound more than once in its scope (assigned twice, augmented, also a
loop variable, deleted, declared global or nonlocal anywhere), a list or dict whose
contents may change (``args["x"] = 1``, ``args.update(...)``), and a name bound where the
call may not see it (in a branch the call is not in) have no value. Only the scopes that
hold one of the calls asked about are read. Imports :mod:`.literals` only."""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .literals import MAX_DEPTH, Budget, dotted_name, try_literal

LOOP_NOTE = "first loop value"


PARAMETRIZE_NOTE = "first parametrize case"


EXPAND_NOTE = "first parameterized case"


@dataclass(frozen=True)
class Local:
    value: object
    note: str  # how the value was chosen when it is one of several: LOOP_NOTE...; "" if not


Env = dict[str, Local]


class Opaque:
    """A local value that is no literal: expressions do not see it (:class:`Visible`)."""


@dataclass(frozen=True)
class CaseClass(Opaque):
    """A test's parameter whose case is a class (or function) of the module's names, which
    the test calls: ``net`` in ``@parameterized.expand([[SENet154, ARGS], [SEResNet50,
    ARGS]])`` and ``net(**net_args)``."""

    dotted: str


@dataclass(frozen=True, eq=False)
class Built(Opaque):
    """A name assigned a call of a class (``model = TransformerWrapper(num_tokens=256,
    ...)``), read as that call where the name is an argument (``Wrapper(model)``): the call
    and the local values it saw."""

    call: ast.Call
    env: Env
    hidden: frozenset[str]


MAX_CLASS_CASES = 16  # cases of a parameter that names classes, each read for a new class


def single_assignment(stmt: ast.stmt) -> tuple[ast.expr, ast.expr] | None:
    """``target = value`` or ``target: T = value``: (target, value); None for anything
    else (several targets, a bare annotation, another statement)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        return stmt.targets[0], stmt.value
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        return stmt.target, stmt.value
    return None


def may_be_class(dotted: str) -> bool:
    """Whether a callee may be a class, by its name's case (``Decoder``, not ``int``)."""
    return dotted.rpartition(".")[2][:1].isupper()


_MOVES = frozenset({"to", "cuda", "cpu", "eval", "train", "float", "half", "double"})


def without_moves(node: ast.expr) -> ast.expr:
    """``Net().to(device).eval()`` -> ``Net()``: where a value lives does not change it."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr not in _MOVES:
            break
        node = node.func.value
    return node


_V = TypeVar("_V")


class Visible(Mapping[str, _V]):
    """The names an expression of a scope may use: its local values over the module's
    names (constants or imports), less the module's names that the scope rebinds."""

    def __init__(self, env: Env, module: Mapping[str, _V], hidden: frozenset[str]) -> None:
        self.env = env
        self.module = module
        self.hidden = hidden

    def __getitem__(self, name: str) -> _V:
        if name in self.env:
            value = self.env[name].value
            if isinstance(value, Opaque):
                raise KeyError(name)
            return value  # type: ignore[return-value]  # env is {} for refs
        if name in self.hidden:
            raise KeyError(name)
        return self.module[name]

    def __contains__(self, name: object) -> bool:
        if name in self.env:
            return not isinstance(self.env[name].value, Opaque)
        return name not in self.hidden and name in self.module

    def __iter__(self) -> Iterator[str]:
        yield from (n for n, v in self.env.items() if not isinstance(v.value, Opaque))
        yield from (n for n in self.module if n not in self.hidden and n not in self.env)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class ScopedCall:
    """A call asked about, with the local values its scope gives it."""

    call: ast.Call
    env: Env
    hidden: frozenset[str]  # names its scope binds: module constants of that name are not seen
    case: int = 0  # its test's case (0: the first; a later one only for a CaseClass callee)


MAX_LOCALS = 200  # local values one block holds (generated code could bind thousands)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


_Comprehension = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp


_MUTABLE = (list, dict)


_TARGETS = (ast.Tuple, ast.List, ast.Starred)  # a, (b, *c) = ...


class _Scope:
    """What a scope binds, read on first use: most scopes (a model's ``__init__``) bind no
    literal value and are never read."""

    def __init__(self, node: ast.AST, body: list[ast.stmt], walker: _Walker) -> None:
        self.node = node
        self.body = body
        self.walker = walker
        self._counts: dict[str, int] | None = None
        self._bound: frozenset[str] | None = None
        self._once: frozenset[str] | None = None

    @property
    def bound(self) -> frozenset[str]:
        """Every name the scope binds (its own statements, not nested scopes')."""
        if self._bound is None:
            self._bound = frozenset(self.counts())
        return self._bound

    @property
    def once(self) -> frozenset[str]:
        """Of which: bound exactly once, never declared global or nonlocal."""
        if self._once is None:
            shared = self.walker.shared()
            self._once = frozenset(
                n for n, c in self.counts().items() if c == 1 and n not in shared
            )
        return self._once

    def changes(self, name: str) -> bool:
        """Whether the contents of ``name`` may change: ``x.update(...)`` (any attribute but
        the methods that only read: ``x.get(...)``, ``x.items()``...),
        ``x[k] = v``, ``x[k] += v``, ``del x[k]``; asked only about a list or dict, and read
        from the scope's text (a mention in a comment or a string counts too)."""
        text = self.walker.text_of(self.node)
        for mention in re.finditer(rf"\b{re.escape(name)}\b\s*", text):
            end = mention.end()
            if (text.startswith(".", end) and not _READS.match(text, end)) or _STORED.match(
                text, end
            ):
                return True
            if text[max(0, mention.start() - 12) : mention.start()].rstrip().endswith("del"):
                return True
        return False

    def rebound_by_calling(self, name: str) -> bool:
        """Whether a parameter is bound again only to what calling it gave
        (``net = net(**net_args).to(device)``)."""
        again = [
            s
            for s in _own_statements(self.body)
            if isinstance(s, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in s.targets)
        ]
        return (
            name not in self.walker.shared()
            and self.counts().get(name) == 1 + len(again)
            and all(name in _called_names(s.value) for s in again)
        )

    @property
    def hidden(self) -> frozenset[str]:
        """The module's names this scope's own bindings hide (a module hides none of its
        own: its constants are its top-level literal assignments)."""
        return frozenset() if isinstance(self.node, ast.Module) else self.bound

    def counts(self) -> dict[str, int]:
        if self._counts is None:
            self._counts = _bindings(self.node, self.body, self.walker.walrus)
        return self._counts


def _own_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A scope's statements and those of the blocks they hold, not nested scopes'."""
    stack = list(body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, _SCOPES):
            continue
        yield stmt
        for _, value in ast.iter_fields(stmt):
            if isinstance(value, list):
                stack += [v for v in value if isinstance(v, ast.stmt)]
                stack += [s for h in value if isinstance(h, ast.ExceptHandler) for s in h.body]


def _called_names(node: ast.AST) -> frozenset[str]:
    """The names ``node`` calls (``net`` of ``net(**net_args)``)."""
    return frozenset(
        n.func.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    )


def _bindings(node: ast.AST, body: list[ast.stmt], walrus: bool) -> dict[str, int]:
    """How often each name is bound in a scope: through its statements' targets, and
    its expressions too only where ``:=`` may bind one (``walrus``)."""
    counts: dict[str, int] = {}

    def bind(name: str | None) -> None:
        if name:
            counts[name] = counts.get(name, 0) + 1

    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            bind(arg.arg if arg else None)
    stack: list[ast.AST] = list(body)
    while stack:
        item = stack.pop()
        if isinstance(item, _SCOPES):
            bind(item.name)  # its body is its own scope (its decorators are not looked at)
            continue
        if isinstance(item, ast.Name):
            if not isinstance(item.ctx, ast.Load):
                bind(item.id)
            continue
        if isinstance(item, ast.alias):
            bind(item.asname or item.name.partition(".")[0])
        elif isinstance(item, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
            bind(item.name)
        elif isinstance(item, ast.MatchMapping):
            bind(item.rest)
        elif isinstance(item, ast.comprehension):  # its variables are its own
            stack += [item.iter, *item.ifs]
            continue
        if (
            walrus
            or not isinstance(item, ast.expr)
            or isinstance(item, (ast.Tuple, ast.List, ast.Starred))
        ):
            stack.extend(ast.iter_child_nodes(item))
    return counts


def _declared(tree: ast.Module) -> frozenset[str]:
    """Names declared global or nonlocal anywhere: another scope may rebind them. (Read
    through statements only: no expression holds one.)"""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            found.update(node.names)
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                stack += [v for v in value if isinstance(v, _BLOCK_ITEMS)]
    return frozenset(found)


_BLOCK_ITEMS = (ast.stmt, ast.excepthandler, ast.match_case)


_STORED = re.compile(r"\[[^\n]*?\]\s*(?:[-+*/%@&|^]|//|\*\*|<<|>>)?=(?!=)")  # x[k] = v, x[k] += v


_READS = re.compile(r"\.\s*(?:get|keys|values|items|copy|count|index)\b")  # change nothing


def _declares(text: str) -> bool:
    """Whether ``text`` may hold a ``global`` or ``nonlocal`` statement: the word then a
    space, at the start of a line or after ``;`` or ``:`` (a comment's "global pool" is not).
    Found with ``str.find``: a regular expression takes milliseconds on a large file."""
    for word in ("global", "nonlocal"):
        at = text.find(word)
        while at >= 0:
            if text[at + len(word) : at + len(word) + 1] in (" ", "\t"):
                before = text[text.rfind("\n", 0, at) + 1 : at].rstrip()
                if not before or before.endswith((";", ":")):
                    return True
            at = text.find(word, at + 1)
    return False


def _names(target: ast.expr) -> list[str] | None:
    """``a`` or ``a, b`` (nested tuples too); None for anything else (``x.y``, ``*rest``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        found: list[str] = []
        for element in target.elts:
            inner = _names(element)
            if inner is None:
                return None
            found += inner
        return found
    return None


def _unpack(target: ast.expr, value: object, note: str, into: Env) -> bool:
    """Bind ``target`` (a name or a tuple of names) to ``value``; False if it does not fit."""
    if isinstance(target, ast.Name):
        into[target.id] = Local(value, note)
        return True
    if not isinstance(target, (ast.Tuple, ast.List)) or not isinstance(value, (tuple, list)):
        return False
    if len(target.elts) != len(value):
        return False
    return all(_unpack(t, v, note, into) for t, v in zip(target.elts, value))


def _first_case(node: ast.expr, visible: Mapping[str, object], budget: Budget) -> object:
    """The first case of a literal list of cases (a loop's first value); a
    ``pytest.param(1, 2)`` case gives ``(1, 2)``. ``_NONE`` when there is none or it is
    not literal."""
    if isinstance(node, (ast.List, ast.Tuple)):
        if not node.elts:
            return _NONE
        first = node.elts[0]
        if _is_param(first):
            assert isinstance(first, ast.Call)
            values = [try_literal(a, visible, None, budget) for a in first.args]
            if not all(ok for ok, _ in values):
                return _NONE
            return tuple(v for _, v in values)
        ok, value = try_literal(first, visible, None, budget)
        return value if ok else _NONE
    ok, value = try_literal(node, visible, None, budget)
    if ok and isinstance(value, (list, tuple)) and value:
        return value[0]
    return _NONE


_NONE = object()


_RAISES = frozenset({"raises", "assertRaises", "assertRaisesRegex"})


def raises(stmt: ast.With | ast.AsyncWith) -> bool:
    """``with pytest.raises(ValueError):``, ``with self.assertRaises(...):``."""
    return any(
        isinstance(item.context_expr, ast.Call)
        and (dotted_name(item.context_expr.func) or "").rpartition(".")[2] in _RAISES
        for item in stmt.items
    )


def _is_param(node: ast.expr) -> bool:
    """``pytest.param(1, 2, id="small")``: a case with its marks."""
    return isinstance(node, ast.Call) and (dotted_name(node.func) or "").endswith("param")


class _Walker:
    def __init__(
        self,
        tree: ast.Module,
        wanted: Mapping[int, ast.Call],
        constants: Mapping[str, object],
        budget: Budget,
        text: str,
        symbols: Collection[str] = (),
    ) -> None:
        self.text = text
        self.symbols = symbols  # the module's names of imports, classes and functions
        self.case = 0  # the case of the test being read (see ScopedCall.case)
        self.walrus = ":=" in text
        self._lines: list[str] | None = None
        self._for_lines: list[int] | None = None  # the numbers of lines with "for "
        self.wanted = wanted
        self.lines = sorted(c.lineno for c in wanted.values())
        self.constants = constants
        self.budget = budget
        self.tree = tree
        self._shared: frozenset[str] | None = None
        self.found: list[ScopedCall] = []
        self._assigned: dict[str, list[ast.expr] | None] | None = None
        self._appended: dict[tuple[str, int], list[ast.expr]] = {}
        self._called: dict[ast.AST, frozenset[str]] = {}
        # names passed to the calls of classes asked about: those a Built may stand for
        self.arguments = {
            a.id
            for c in wanted.values()
            if may_be_class(dotted_name(c.func) or "")
            for a in [*c.args, *(k.value for k in c.keywords)]
            if isinstance(a, ast.Name)
        }
        # `param = pytest.mark.parametrize` (x-transformers' tests)
        self.parametrize = {"parametrize"} | {
            t.id
            for stmt in tree.body
            if isinstance(stmt, ast.Assign)
            and (dotted_name(stmt.value) or "").endswith("mark.parametrize")
            for t in stmt.targets
            if isinstance(t, ast.Name)
        }

    def holds_wanted(self, node: ast.AST) -> bool:
        start = getattr(node, "lineno", 0)
        end = getattr(node, "end_lineno", None) or start
        at = bisect.bisect_left(self.lines, start)
        return at < len(self.lines) and self.lines[at] <= end

    def shared(self) -> frozenset[str]:
        if self._shared is None:
            self._shared = _declared(self.tree) if _declares(self.text) else frozenset()
        return self._shared

    def text_of(self, node: ast.AST) -> str:
        if isinstance(node, ast.Module):
            return self.text
        if self._lines is None:
            self._lines = self.text.splitlines()
        start, end = getattr(node, "lineno", 1), getattr(node, "end_lineno", None)
        return "\n".join(self._lines[start - 1 : end])

    def scope(self, node: ast.AST, body: list[ast.stmt], env: Env) -> None:
        scope = _Scope(node, body, self)
        envs = [env]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            envs = self.parameters(node, scope)
        for case, case_env in enumerate(envs):
            self.case = case
            self.block(body, case_env, scope)
        self.case = 0

    def parameters(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope
    ) -> list[Env]:
        """A test's parameters, from its parametrize / parameterized.expand decorators: its
        first case; then, where a parameter's first case is a class the test calls
        (:class:`CaseClass`), each later case that names another class."""
        env: Env = {}
        later: list[tuple[list[str], ast.expr, bool, str]] = []
        visible = Visible({}, self.constants, frozenset())
        a = function.args
        positional = [p.arg for p in [*a.posonlyargs, *a.args]]
        for decorator in function.decorator_list:
            if not isinstance(decorator, ast.Call) or not decorator.args:
                continue
            callee = dotted_name(decorator.func) or ""
            last = callee.rpartition(".")[2]
            found: Env = {}
            if last in self.parametrize or callee in self.parametrize:
                if any(k.arg == "indirect" for k in decorator.keywords) or len(decorator.args) < 2:
                    continue  # indirect: the values go to fixtures, not to the test
                _, spec = try_literal(decorator.args[0], visible, None, self.budget)
                if isinstance(spec, str):
                    names = [n.strip() for n in spec.split(",") if n.strip()]
                elif isinstance(spec, (list, tuple)) and all(isinstance(n, str) for n in spec):
                    names = [str(n) for n in spec]
                else:
                    continue
                cases, single, note = decorator.args[1], len(names) == 1, PARAMETRIZE_NOTE
                values = self.first_case(cases, single)
                if values is None or len(values) != len(names):
                    continue
            elif last == "expand" and callee.startswith("parameterized"):
                cases, single, note = decorator.args[0], False, EXPAND_NOTE
                values = self.first_case(cases, single)
                params = positional[1:] if positional[:1] in (["self"], ["cls"]) else positional
                if values is None or len(values) > len(params):
                    continue
                names = params[: len(values)]
            else:
                continue
            found.update(self.case_env(names, values, note, function, scope))
            if any(isinstance(v.value, CaseClass) for v in found.values()):
                later.append((names, cases, single, note))
            env.update(found)
        return [env, *self.class_cases(env, later, function, scope)]

    def case_env(
        self,
        names: list[str],
        values: list[object],
        note: str,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: _Scope,
    ) -> Env:
        """The parameters a case gives, those the scope lets be; a class only to a
        parameter the test calls."""
        called = self.called(function)
        found: Env = {}
        for name, value in zip(names, values):
            if value is _NONE or (isinstance(value, CaseClass) and name not in called):
                continue
            if self.keeps(name, value, scope):
                found[name] = Local(value, note)
        return found

    def called(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
        """The names ``function`` calls (``net`` of ``net(**net_args)``), read once."""
        if function not in self._called:
            self._called[function] = _called_names(function)
        return self._called[function]

    def class_cases(
        self,
        first: Env,
        later: list[tuple[list[str], ast.expr, bool, str]],
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: _Scope,
    ) -> list[Env]:
        """For each decorator whose first case gave a parameter a class, its later cases
        (up to :data:`MAX_CLASS_CASES`) that give it another, the rest as in ``first``."""
        envs: list[Env] = []
        seen = {v.value for v in first.values() if isinstance(v.value, CaseClass)}
        for names, cases, single, note in later:
            elements = self.elements(cases)[1:MAX_CLASS_CASES]
            for number, element in enumerate(elements, start=2):
                values = self.case_values(element, single)
                if values is None or len(values) > len(names):
                    continue
                env = {k: v for k, v in first.items() if k not in names}
                kind = note.removeprefix("first ")
                env.update(self.case_env(names, values, f"{kind} {number}", function, scope))
                new = {v.value for v in env.values() if isinstance(v.value, CaseClass)} - seen
                if new:
                    envs.append(env)
                    seen |= new
        return envs

    def first_case(self, node: ast.expr, single: bool) -> list[object] | None:
        """The values of a test's first case, each read on its own (``_NONE`` where one is
        not literal: MONAI's cases hold an ``OrderingType.RASTER_SCAN.value`` beside the
        network's literal parameters); ``single``: the case is one value, not a tuple.
        Module-level names of cases (``CASES = [TEST_CASE_0, ...]``, ``A + B``) are followed
        to their assignments; None when there is no first case to read."""
        first = self.first_element(node)
        return self.case_values(first, single) if first is not None else None

    def case_values(self, case: ast.expr, single: bool) -> list[object] | None:
        """The values of one case (see :meth:`first_case`); a module-level name of a
        class or function as a :class:`CaseClass`."""
        options = self.alternatives(case)
        if not options and isinstance(case, ast.Name) and case.id in self.symbols:
            options = [case]  # a class imported: @pytest.mark.parametrize("cls", [Small, Big])
        first = options[0] if len(options) == 1 else None  # TEST_CASE_0 = [...]
        if isinstance(first, ast.Starred) or first is None:
            return None
        if _is_param(first):
            assert isinstance(first, ast.Call)
            elements = list(first.args)
        elif single:
            elements = [first]
        elif isinstance(first, (ast.List, ast.Tuple)):
            elements = list(first.elts)
        else:
            elements = [first]  # parameterized.expand: a single value for the first parameter
        if (single and len(elements) != 1) or any(isinstance(e, ast.Starred) for e in elements):
            return None
        visible = Visible({}, self.constants, frozenset())
        values = [try_literal(e, visible, None, self.budget) for e in elements]
        return [v if ok else self.named(e) for e, (ok, v) in zip(elements, values)]

    def named(self, node: ast.expr) -> object:
        """A module-level name (``SENet154``, ``nets.SENet154``) as a :class:`CaseClass`."""
        dotted = dotted_name(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        if dotted is None or dotted.partition(".")[0] not in self.symbols:
            return _NONE
        return CaseClass(dotted)

    def elements(self, node: ast.expr, depth: int = 0) -> list[ast.expr]:
        """The cases of a literal list of them, a module-level name followed to its one
        assignment, through ``A + B``; the first few (:data:`MAX_CLASS_CASES`)."""
        options = self.alternatives(node) if depth < MAX_DEPTH else []
        if len(options) != 1:
            return []
        cases = options[0]
        if isinstance(cases, ast.BinOp) and isinstance(cases.op, ast.Add):
            return [*self.elements(cases.left, depth + 1), *self.elements(cases.right, depth + 1)]
        if isinstance(cases, ast.Name):
            return self.elements(cases, depth + 1)
        if isinstance(cases, ast.List) and not cases.elts and isinstance(node, ast.Name):
            return self.appended(node.id, MAX_CLASS_CASES)  # CASES = [] then loops append
        if isinstance(cases, (ast.List, ast.Tuple)):
            return list(cases.elts[:MAX_CLASS_CASES])
        return []

    def first_element(self, node: ast.expr, depth: int = 0) -> ast.expr | None:
        """The first element of a list of cases: ``node``, or what a module-level name was
        assigned (each branch's of an ``if has_einops:`` ... ``else:``, which must give the
        same first element), through ``A + B``; None if not known."""
        found: list[ast.expr] = []
        for cases in self.alternatives(node) if depth < MAX_DEPTH else []:
            first: ast.expr | None = None
            if isinstance(cases, ast.BinOp) and isinstance(cases.op, ast.Add):
                first = self.first_element(cases.left, depth + 1)  # CASES_2D + CASES_3D
            elif isinstance(cases, ast.Name):
                first = self.first_element(cases, depth + 1)  # else: CASES = CASES_2D
            elif isinstance(cases, (ast.List, ast.Tuple)) and cases.elts:
                first = cases.elts[0]
            elif isinstance(cases, (ast.ListComp, ast.Subscript)):
                first = self.first_folded(cases)  # [... for dims in [2, 3]], CASES[:1]
            elif isinstance(cases, ast.List) and isinstance(node, ast.Name):
                first = next(iter(self.appended(node.id, 1)), None)  # CASES = []; .append(...)
            if first is None:
                return None
            found.append(first)
        return found[0] if found and all(f is found[0] for f in found) else None

    def first_folded(self, cases: ast.expr) -> ast.expr | None:
        """The first of a list of cases that folds to a literal (a comprehension over a
        literal sequence, a slice of module-level cases), its values as constants: a
        tuple of them when the case holds several, each then read on its own."""
        visible = Visible({}, self.constants, frozenset())
        ok, value = try_literal(cases, visible, None, self.budget)
        if not ok or not isinstance(value, (list, tuple)) or not value:
            return None
        return _case_node(value[0])

    def appended(self, name: str, limit: int) -> list[ast.expr]:
        """The first ``limit`` cases appended to the module-level list ``name`` (see
        :class:`_Appends`), their values as constants: the first, most often; more only for
        a parameter that names classes."""
        if (name, limit) not in self._appended:
            self._appended[name, limit] = _Appends(name, self, limit).run(self.tree.body)
        return self._appended[name, limit]

    def alternatives(self, node: ast.expr) -> list[ast.expr]:
        """``node``, or the expressions a module-level name may have been assigned (see
        :func:`_module_assignments`); none if it is not known."""
        if not isinstance(node, ast.Name):
            return [node]
        if self._assigned is None:
            self._assigned = _module_assignments(self.tree.body)
        return self._assigned.get(node.id) or []

    def keeps(self, name: str, value: object, scope: _Scope) -> bool:
        if isinstance(value, CaseClass):  # `net = net(**net_args).to(device)`
            return name in scope.once or scope.rebound_by_calling(name)
        return name in scope.once and not (isinstance(value, _MUTABLE) and scope.changes(name))

    def block(self, stmts: list[ast.stmt], env: Env, scope: _Scope) -> None:
        env = dict(env)  # what this block binds is seen by the rest of it, not after it
        for stmt in stmts:
            if isinstance(stmt, _SCOPES):
                if self.holds_wanted(stmt) and not self.case:  # read once
                    self.scope(stmt, stmt.body, {})
                continue
            if self.holds_wanted(stmt):
                self.statement(stmt, env, scope)
            if stmts is not self.tree.body:  # the module's own: its constants
                self.bind(stmt, env, scope)

    def statement(self, stmt: ast.stmt, env: Env, scope: _Scope) -> None:
        """The calls in ``stmt`` and in the blocks it holds."""
        for name, value in ast.iter_fields(stmt):
            items = value if isinstance(value, list) else [value]
            if isinstance(stmt, (ast.For, ast.AsyncFor)) and name == "body":
                self.block(stmt.body, self.loop(stmt, env, scope), scope)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)) and name == "body" and raises(stmt):
                self.block(stmt.body, {}, scope)  # a call meant to fail is no constructor
            elif items and isinstance(items[0], ast.stmt):
                self.block(items, env, scope)
            elif items and isinstance(items[0], (ast.excepthandler, ast.match_case)):
                for handler in items:
                    self.block(handler.body, env, scope)
                    for node in (getattr(handler, "type", None), getattr(handler, "guard", None)):
                        if node is not None and env:
                            self.calls(node, env, scope)
            elif (env and self.mentions(stmt, env)) or self.comprehends(stmt):
                for item in items:  # else no call here is one to add
                    if isinstance(item, (ast.expr, ast.withitem)):
                        self.calls(item, env, scope)

    def comprehends(self, stmt: ast.stmt) -> bool:
        """Whether ``stmt`` may hold a comprehension: one of its lines has ``for ``."""
        if self._for_lines is None:
            self._for_lines = [
                n for n, line in enumerate(self.text.splitlines(), 1) if "for " in line
            ]
        at = bisect.bisect_left(self._for_lines, stmt.lineno)
        end = stmt.end_lineno or stmt.lineno
        return at < len(self._for_lines) and self._for_lines[at] <= end

    def comprehension(self, node: _Comprehension, env: Env, scope: _Scope) -> Env:
        """The names a comprehension's calls see: ``env`` less its loop variables, each
        loop over a literal sequence or ``range(...)`` bound to its first item
        (``[Net(d) for d in (1, 2)]``) until one that is not, or that filters (``if``)."""
        targets = [g.target for g in node.generators]
        own = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        inner = {k: v for k, v in env.items() if k not in own}
        for generator in node.generators:
            if generator.ifs or generator.is_async or not _names(generator.target):
                break
            # the value first (most loops are over no literal), then what the scope hides
            if self.first_item(generator.iter, inner, frozenset()) is _NONE:
                break
            if "range" in scope.bound:
                break
            first = self.first_item(generator.iter, inner, scope.hidden)
            bound: Env = {}
            if first is _NONE or not _unpack(generator.target, first, LOOP_NOTE, bound):
                break
            inner.update(bound)
        return inner

    def mentions(self, stmt: ast.stmt, env: Env) -> bool:
        """Whether ``stmt``'s text may use one of ``env``'s names (a search of its lines
        spares walking the expressions of most statements)."""
        return any(word in env for word in _WORD.findall(self.text_of(stmt)))

    def loop(self, stmt: ast.For | ast.AsyncFor, env: Env, scope: _Scope) -> Env:
        """``env`` with the loop variables bound to the first item of a literal sequence."""
        names = _names(stmt.target)
        # the value first (most loops are over no literal), then whether the scope lets it be
        if not names or self.first_item(stmt.iter, env, frozenset()) is _NONE:
            return env
        if any(n not in scope.once for n in names) or "range" in scope.bound:
            return env
        first = self.first_item(stmt.iter, env, scope.hidden)
        inner = dict(env)
        if first is _NONE or not _unpack(stmt.target, first, LOOP_NOTE, inner):
            return env
        if any(not self.keeps(n, inner[n].value, scope) for n in names):
            return env
        return inner

    def first_item(self, it: ast.expr, env: Env, hidden: frozenset[str]) -> object:
        """The first item of a literal sequence or ``range(...)``; else ``_NONE``."""
        visible = Visible(env, self.constants, hidden)
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)):
            return _first_case(it, visible, self.budget)
        numbers = self.range_of(it, visible)
        return next(iter(numbers), _NONE) if numbers is not None else _NONE

    def range_of(self, it: ast.Call, visible: Visible[object]) -> range | None:
        """``range(...)`` of literal ints, as a range; else None."""
        if not isinstance(it.func, ast.Name) or it.func.id != "range" or it.keywords:
            return None
        if not 1 <= len(it.args) <= 3:
            return None
        values = [try_literal(a, visible, None, self.budget) for a in it.args]
        bounds = [v for ok, v in values if ok and isinstance(v, int)]
        return range(*bounds) if len(bounds) == len(values) else None

    def bind(self, stmt: ast.stmt, env: Env, scope: _Scope) -> None:
        """After ``name = <literal>``, ``name`` holds it (tuples unpacked)."""
        assigned = single_assignment(stmt)
        if assigned is None:
            return
        target, value_node = assigned
        names = _names(target)
        # the value first (most assignments are of no literal), then whether the scope lets it be
        unhidden = Visible(env, self.constants, frozenset())
        if not names or not try_literal(value_node, unhidden, None, self.budget)[0]:
            if (
                isinstance(target, ast.Name)
                and target.id in self.arguments
                and target.id in scope.once
                and len(env) < MAX_LOCALS
            ):
                built = self.built(value_node, env, scope)  # model = Net(dim=8).to(device)
                if built is not None:
                    env[target.id] = Local(built, "; ".join(sorted(notes(built.call, env))))
            return
        if any(n not in scope.once for n in names):
            return
        visible = Visible(env, self.constants, scope.hidden)
        ok, value = try_literal(value_node, visible, None, self.budget)
        if not ok:
            return
        note = "; ".join(sorted(notes(value_node, env)))
        inner: Env = {}
        if len(env) >= MAX_LOCALS:
            return
        if _unpack(target, value, note, inner) and all(
            self.keeps(n, v.value, scope) for n, v in inner.items()
        ):
            env.update(inner)

    def built(self, node: ast.expr, env: Env, scope: _Scope) -> Built | None:
        """``node`` as a :class:`Built` when it calls a class of the module's names (one
        whose name is capitalised: ``TransformerWrapper(...).to(device)``) once, in a scope
        that binds the name once."""
        node = without_moves(node)
        if not isinstance(node, ast.Call):
            return None
        dotted = dotted_name(node.func) or ""
        if dotted.partition(".")[0] not in self.symbols or not may_be_class(dotted):
            return None
        return Built(node, dict(env), scope.hidden)

    def calls(self, node: ast.AST, env: Env, scope: _Scope) -> None:
        """The calls asked about inside ``node``; a lambda's or comprehension's own names
        hide the scope's."""
        stack: list[tuple[ast.AST, Env]] = [(node, env)]
        while stack:
            item, seen = stack.pop()
            if isinstance(item, ast.Call) and id(item) in self.wanted and seen:
                names = {n.id for n in ast.walk(item) if isinstance(n, ast.Name)}
                used = {n: seen[n] for n in names if n in seen}
                self.found.append(ScopedCall(item, used, scope.hidden, self.case))  # as here
            if isinstance(item, ast.Lambda) and seen:
                own = {a.arg for a in ast.walk(item.args) if isinstance(a, ast.arg)}
                seen = {k: v for k, v in seen.items() if k not in own}
            elif isinstance(item, _COMPREHENSIONS):
                seen = self.comprehension(item, seen, scope)
                if not seen:  # over no literal: a comprehension inside it is not read either
                    continue
            stack.extend((child, seen) for child in ast.iter_child_nodes(item))


MAX_STEPS = 2000  # module statements run to find the first cases appended to a list


MAX_LOOP_ITEMS = 64  # items of one loop run through


# An item of a case that is no literal: read on its own, it gives no value (a case's other
# items still do). Not a name any code can bind.
_UNKNOWN = ast.Name(id="<not a literal>", ctx=ast.Load())


class _Stop(Exception):
    """The first appended case cannot be known."""


class _Appends:
    """The first cases appended to a module-level list of cases that loops build (MONAI's
    ``CASES = []``, then ``for dims in [2, 3]: ... case = [{...}, shape]`` and
    ``CASES.append(case)``): the module's statements run in order on literals only, each
    loop over a literal sequence, ``range(...)`` or a list of the module's classes
    (``for model in [DenseNet121, DenseNet169]:``) item by item, an ``if`` whose test is
    known by its branch, until ``limit`` cases were appended. What they bind is a value when
    it folds to a literal; a list or tuple of items keeps the items that do. Stops, keeping
    the cases found, where the way on is not known: a loop over no literal, or an ``if``
    with an unknown test, that may append; another change of the list. Functions and classes
    are not run."""

    def __init__(self, name: str, walker: _Walker, limit: int) -> None:
        self.name = name
        self.walker = walker
        self.limit = limit
        self.env: Env = {}
        self.items: dict[str, list[object]] = {}  # cases some of whose items are no literal
        self.forgotten: set[str] = set()  # bound to what is not known: hides module constants
        self.started = False  # ``name = []`` was run
        self.steps = 0
        self.cases: list[ast.expr] = []

    def run(self, stmts: list[ast.stmt]) -> list[ast.expr]:
        """The cases found, in order."""
        try:
            self.block(stmts)
        except _Stop:
            pass
        return self.cases

    def visible(self) -> Visible[object]:
        return Visible(self.env, self.walker.constants, frozenset(self.forgotten))

    def block(self, stmts: list[ast.stmt]) -> bool:
        """Whether ``limit`` cases were found."""
        for stmt in stmts:
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise _Stop
            if self.statement(stmt):
                return True
        return False

    def statement(self, stmt: ast.stmt) -> bool:
        appended = self.appended(stmt)
        if appended is not None:
            if not self.started:
                raise _Stop
            self.cases.append(self.constants(appended))
            return len(self.cases) >= self.limit
        if isinstance(stmt, _SCOPES):
            self.forget(stmt.name)
            return False
        ran = False
        if isinstance(stmt, ast.For) and not stmt.orelse:
            items = self.loop_items(stmt.iter)
            for item in items if items is not None else ():
                if not self.bind(stmt.target, item):
                    raise _Stop
                if self.block(stmt.body):
                    return True
            ran = items is not None
        elif isinstance(stmt, ast.If):
            ok, test = try_literal(stmt.test, self.visible(), None, self.walker.budget)
            if ok:
                return self.block(stmt.body if test else stmt.orelse)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and self.assign(stmt):
            return False
        if not ran and self.changes_list(stmt):
            raise _Stop  # a loop over no literal that appends, CASES.extend(...)...
        # What it binds or may change (``case[0]["dim"] = 8``, ``case.update(...)``: a list
        # or dict it uses), and what a loop's passes bound, is no longer known.
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and (
                not isinstance(node.ctx, ast.Load) or node.id in self.items or self.mutable(node.id)
            ):
                self.forget(node.id)
            elif isinstance(node, ast.alias):
                self.forget((node.asname or node.name).partition(".")[0])
        return False

    def loop_items(self, it: ast.expr) -> list[object] | None:
        """The items a loop runs over: a literal sequence's, ``range(...)``'s, or the
        module's classes a list names (:class:`CaseClass`); None if not known."""
        if isinstance(it, (ast.List, ast.Tuple)) and len(it.elts) <= MAX_LOOP_ITEMS:
            items = [self.value(e) for e in it.elts]
            return None if any(i is _NONE for i in items) else items
        if isinstance(it, ast.Call):
            numbers = self.walker.range_of(it, self.visible())
            return list(numbers[:MAX_LOOP_ITEMS]) if numbers is not None else None
        ok, value = try_literal(it, self.visible(), None, self.walker.budget)
        if ok and isinstance(value, (list, tuple)) and len(value) <= MAX_LOOP_ITEMS:
            return list(value)
        return None

    def appended(self, stmt: ast.stmt) -> ast.expr | None:
        """``x`` of a statement ``name.append(x)``."""
        if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
            return None
        call = stmt.value
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "append"
            and isinstance(func.value, ast.Name)
            and func.value.id == self.name
            and len(call.args) == 1
            and not call.keywords
        ):
            return call.args[0]
        return None

    def changes_list(self, stmt: ast.stmt) -> bool:
        return any(isinstance(n, ast.Name) and n.id == self.name for n in ast.walk(stmt))

    def assign(self, stmt: ast.Assign | ast.AnnAssign) -> bool:
        """Run ``target = value`` when its target is one name or a tuple of names;
        ``name = []`` starts the list. False when it is not one to run."""
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) != 1) or stmt.value is None:
            return False
        if isinstance(target, ast.Name) and target.id == self.name:
            if self.started or not (isinstance(stmt.value, ast.List) and not stmt.value.elts):
                raise _Stop
            self.started = True
            return True
        ok, value = try_literal(stmt.value, self.visible(), None, self.walker.budget)
        if ok:
            return self.bind(target, value)
        if (
            isinstance(target, ast.Name)
            and isinstance(stmt.value, (ast.List, ast.Tuple))
            and not any(isinstance(e, ast.Starred) for e in stmt.value.elts)
        ):
            self.forget(target.id)
            self.items[target.id] = self.spread(stmt.value.elts)
            return True
        return False

    def bind(self, target: ast.expr, value: object) -> bool:
        bound: Env = {}
        if not _unpack(target, value, "", bound):
            return False
        for name, local in bound.items():
            self.forget(name)
            self.forgotten.discard(name)
            self.env[name] = local
        return True

    def mutable(self, name: str) -> bool:
        return name in self.env and isinstance(self.env[name].value, (list, dict, set))

    def forget(self, name: str) -> None:
        self.env.pop(name, None)
        self.items.pop(name, None)
        self.forgotten.add(name)

    def value(self, node: ast.expr) -> object:
        """A literal, or a class a loop's item or the module names (:class:`CaseClass`)."""
        if isinstance(node, ast.Starred):
            raise _Stop  # the items after it are not known
        ok, value = try_literal(node, self.visible(), None, self.walker.budget)
        if ok:
            return value
        if isinstance(node, ast.Name) and node.id in self.env:
            local = self.env[node.id].value
            return local if isinstance(local, CaseClass) else _NONE
        return self.walker.named(node)

    def spread(self, nodes: list[ast.expr]) -> list[object]:
        """The items of a case: ``[model, *case]`` with ``case`` a literal sequence."""
        items: list[object] = []
        for node in nodes:
            if not isinstance(node, ast.Starred):
                items.append(self.value(node))
                continue
            ok, value = try_literal(node.value, self.visible(), None, self.walker.budget)
            if not ok or not isinstance(value, (list, tuple)):
                raise _Stop
            items += value
        return items

    def constants(self, node: ast.expr) -> ast.expr:
        """The appended case as constants (:func:`_case_node`)."""
        if isinstance(node, ast.Name) and node.id in self.items:
            items = self.items[node.id]
        elif isinstance(node, (ast.List, ast.Tuple)):
            items = self.spread(node.elts)
        else:
            value = self.value(node)
            if value is _NONE:
                raise _Stop
            return _case_node(value)
        return _case_node(items)


def _case_node(case: Any) -> ast.expr:
    """A case read as values, as a node that reads back as them: a tuple of constants when
    it holds several (``_UNKNOWN`` for an item that is no literal, ``_NONE``), each then
    read on its own; else one constant."""
    if not isinstance(case, (list, tuple)):
        return ast.Constant(case)
    return ast.Tuple(
        elts=[_UNKNOWN if v is _NONE else ast.Constant(v) for v in case], ctx=ast.Load()
    )


def _module_assignments(stmts: list[ast.stmt]) -> dict[str, list[ast.expr] | None]:
    """Module-level names and the expression each was assigned: one, or one per branch of
    a module-level ``if`` whose test is a name (``if has_einops:`` ... ``else:``); None for
    a name assigned more than once or otherwise (in another ``if``, a loop, by augmenting,
    unpacking). The module's statements and the blocks they hold, not functions or
    classes."""
    assigned: dict[str, list[ast.expr] | None] = {}

    def add(name: str, value: list[ast.expr] | None) -> None:
        assigned[name] = None if name in assigned else value

    stack: list[ast.stmt] = list(stmts)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, _SCOPES):
            continue
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name):
            body, orelse = _module_assignments(stmt.body), _module_assignments(stmt.orelse)
            for name in sorted(body.keys() | orelse.keys()):
                one, other = body.get(name, []), orelse.get(name, [])
                add(name, None if one is None or other is None else [*one, *other])
            continue
        plain = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        for node in ast.walk(stmt) if not plain else ():
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                assigned[node.id] = None
        if isinstance(stmt, ast.Assign) and plain:
            for name in _names(stmt.targets[0]) or ():
                add(name, [stmt.value] if isinstance(stmt.targets[0], ast.Name) else None)
        for _, value in ast.iter_fields(stmt):
            if isinstance(value, list):
                stack += [v for v in value if isinstance(v, ast.stmt)]
    return assigned


def notes(node: ast.AST, env: Env) -> set[str]:
    """How the local values that ``node`` uses were chosen (LOOP_NOTE...), if they were."""
    return {
        env[n.id].note
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and n.id in env and env[n.id].note
    }


def scoped_calls(
    tree: ast.Module,
    wanted: Mapping[int, ast.Call],
    constants: Mapping[str, object],
    budget: Budget,
    text: str,
    symbols: Collection[str] = (),
) -> list[ScopedCall]:
    """The calls of ``wanted`` (by ``id``) with their scopes' local values, in source
    order, reading only the scopes that hold one of them. ``text`` is the tree's source:
    a search of it spares most walks of the tree (no ``:=``, no ``global``...)."""
    walker = _Walker(tree, wanted, constants, budget, text, symbols)
    walker.scope(tree, tree.body, {})
    return sorted(walker.found, key=lambda s: (s.call.lineno, s.call.col_offset))
