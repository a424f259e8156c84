"""The safe literal evaluator: the values of constant expressions (``4 * 8``, a module
constant, a tuple of sizes) read from the syntax tree, never run.

Folding runs in the server process on any file of the workspace, so every step is
bounded: a hostile or generated file (a 5,000-term sum, ``[0] * 2**40``, towers of
powers) costs at most a few thousand steps and gives up, never a MemoryError, a
RecursionError or seconds of CPU. Model dimensions are far inside these limits.
Calls of classes as arguments (``attn_layers=Decoder(dim=512, depth=6)``) are read too,
as :class:`~.model.Target` trees (:func:`built_value`), by documentation examples and call
sites alike. Imports :mod:`.model` and :mod:`.example_args` only.
"""

from __future__ import annotations

import ast
import operator
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .example_args import NO_WEIGHTS
from .model import Ref, Target

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
        dotted = dotted_name(node)
        head = (dotted or "").partition(".")[0]
        if dotted and head in refs:
            return Ref(head, refs[head], dotted)
    if isinstance(node, (ast.Tuple, ast.List)):
        if len(node.elts) > MAX_ITEMS:
            raise _NotLiteral
        values = [literal(e, constants, refs, budget, depth) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.IfExp):  # `1 if has_mem else 0`, `has_mem` a known value
        test = literal(node.test, constants, None, budget, depth)
        if isinstance(test, (bool, int, float, str, type(None))):
            return literal(node.body if test else node.orelse, constants, refs, budget, depth)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = literal(node.operand, constants, None, budget, depth)
        if isinstance(operand, (bool, int, float, str, type(None))):
            return not operand
    if isinstance(node, ast.Compare):  # `spatial_dims == 2`, `act in ("relu", "gelu")`
        return _compare(node, constants, budget, depth)
    if isinstance(node, ast.Subscript):  # TEST_CASES[0], TEST_CASES[:1]
        return _subscript(node, constants, refs, budget, depth)
    if isinstance(node, ast.ListComp):  # [{"dims": d, "channels": 2} for d in [2, 3]]
        return _list_comprehension(node, constants, refs, budget, depth)
    if _is_builtin_call(node, "dict", constants, refs):  # dict(learned = True)
        assert isinstance(node, ast.Call)
        if len(node.keywords) > MAX_ITEMS:
            raise _NotLiteral
        return {k.arg: literal(k.value, constants, refs, budget, depth) for k in node.keywords}
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


def _is_builtin_call(
    node: ast.expr, name: str, constants: Mapping[str, object], refs: Mapping[str, str] | None
) -> bool:
    """A call of the builtin ``name`` (no module name hides it): ``dict(a=1, b=2)`` (only
    keywords), ``range(2, 5)`` and ``zip(a, b)`` (no keywords)."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    if node.func.id != name or name in constants or name in (refs or {}):
        return False
    if any(isinstance(a, ast.Starred) for a in node.args):
        return False
    if name == "dict":
        return not node.args and all(k.arg is not None for k in node.keywords)
    return not node.keywords


_PLAIN = (bool, int, float, str, bytes, type(None))
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], object]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _compare(
    node: ast.Compare, constants: Mapping[str, object], budget: Budget, depth: int
) -> bool:
    """A comparison of plain values (``in`` a literal sequence); ``is`` only with None."""
    left = literal(node.left, constants, None, budget, depth)
    for op, right_node in zip(node.ops, node.comparators):
        right = literal(right_node, constants, None, budget, depth)
        if isinstance(op, (ast.Is, ast.IsNot)) and (left is None or right is None):
            holds = (left is right) == isinstance(op, ast.Is)
        elif type(op) in _COMPARISONS and isinstance(left, _PLAIN):
            if isinstance(op, (ast.In, ast.NotIn)) != (not isinstance(right, _PLAIN)):
                raise _NotLiteral  # `in` a sequence; the others between plain values
            try:
                holds = bool(_COMPARISONS[type(op)](left, right))
            except TypeError as exc:  # "a" < 1
                raise _NotLiteral from exc
        else:
            raise _NotLiteral
        if not holds:
            return False
        left = right
    return True


def _subscript(
    node: ast.Subscript,
    constants: Mapping[str, object],
    refs: Mapping[str, str] | None,
    budget: Budget,
    depth: int,
) -> object:
    """An item or a slice of a literal sequence, or a dict's value."""
    value = literal(node.value, constants, refs, budget, depth)
    if not isinstance(value, (list, tuple, dict, str)):
        raise _NotLiteral
    index: object
    if isinstance(node.slice, ast.Slice):
        parts = [
            literal(p, constants, None, budget, depth) if p is not None else None
            for p in (node.slice.lower, node.slice.upper, node.slice.step)
        ]
        if not all(p is None or isinstance(p, int) for p in parts) or parts[2] == 0:
            raise _NotLiteral
        index = slice(*parts)
    else:
        index = literal(node.slice, constants, None, budget, depth)
        if not isinstance(index, (int, str)) or isinstance(index, bool):
            raise _NotLiteral
    try:
        return value[index]  # type: ignore[index]
    except (IndexError, KeyError, TypeError) as exc:
        raise _NotLiteral from exc


def _iterated(
    node: ast.expr,
    constants: Mapping[str, object],
    refs: Mapping[str, str] | None,
    budget: Budget,
    depth: int,
) -> list[object]:
    """The items a comprehension goes over: a literal sequence, ``range(...)`` or ``zip``
    of such (bounded by :data:`MAX_ITEMS`)."""
    if _is_builtin_call(node, "range", constants, refs):
        assert isinstance(node, ast.Call)
        bounds = [literal(a, constants, None, budget, depth) for a in node.args]
        ints = [b for b in bounds if type(b) is int]
        if not 1 <= len(ints) == len(bounds) <= 3:
            raise _NotLiteral
        try:
            items = range(*ints)
        except ValueError as exc:  # a zero step
            raise _NotLiteral from exc
        if len(items) > MAX_ITEMS:
            raise _NotLiteral
        return list(items)
    if _is_builtin_call(node, "zip", constants, refs):
        assert isinstance(node, ast.Call)
        return list(zip(*(_iterated(a, constants, refs, budget, depth) for a in node.args)))
    value = literal(node, constants, refs, budget, depth)
    if not isinstance(value, (list, tuple, str)):
        raise _NotLiteral
    return list(value)


def _bind(target: ast.expr, value: object, into: dict[str, object]) -> None:
    """A comprehension's target bound to one item (tuples unpacked)."""
    if isinstance(target, ast.Name):
        into[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        if not isinstance(value, (list, tuple)) or len(value) != len(target.elts):
            raise _NotLiteral
        for inner, item in zip(target.elts, value):
            _bind(inner, item, into)
    else:
        raise _NotLiteral


def _list_comprehension(
    node: ast.ListComp,
    constants: Mapping[str, object],
    refs: Mapping[str, str] | None,
    budget: Budget,
    depth: int,
) -> list[object]:
    """A list comprehension over literal sequences, each item folded as a literal."""
    found: list[object] = []

    def walk(generators: list[ast.comprehension], names: Mapping[str, object]) -> None:
        if not generators:
            found.append(literal(node.elt, names, refs, budget, depth))
            if len(found) > MAX_ITEMS:
                raise _NotLiteral
            return
        generator, rest = generators[0], generators[1:]
        if generator.is_async:
            raise _NotLiteral
        for item in _iterated(generator.iter, names, refs, budget, depth):
            bound: dict[str, object] = {}
            _bind(generator.target, item, bound)
            inner = ChainMap(bound, names)  # type: ignore[arg-type]
            if all(literal(test, inner, None, budget, depth) for test in generator.ifs):
                walk(rest, inner)

    walk(node.generators, constants)
    return found


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
    """Every :class:`Ref` inside a value: a literal, a :class:`Target` (its arguments)."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Target):
        for item in (*value.args, *(v for _, v in value.kwargs)):
            yield from refs_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from refs_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from refs_in(item)


class NotBuilt(Exception):
    """An argument that is neither a literal nor a call of a class read the same way."""


_NO_WEIGHTS = {k: {"False": False, "None": None}[v] for k, v in NO_WEIGHTS.items()}


Literal = Callable[[ast.expr], tuple[bool, object]]  # try_literal with its names bound
Callee = Callable[[ast.expr], "str | None"]  # a call's callee as the class it is, or None


def built_value(node: ast.expr, literal_of: Literal, callee_of: Callee, depth: int = 0) -> object:
    """A constructor's argument: a literal (``literal_of``), a call of a class (one that
    ``callee_of`` names) as a :class:`Target` whose arguments are read the same way, or a
    tuple or list of such. Raises :class:`NotBuilt` for anything else."""
    if depth > MAX_DEPTH:
        raise NotBuilt
    if isinstance(node, ast.Call):
        ok, value = literal_of(node)  # dict(learned = True)
        if ok:
            return value
        if _builtin_dict(node, literal_of):  # dict(activation = nn.Tanh())
            return {
                k.arg: built_value(k.value, literal_of, callee_of, depth + 1)
                for k in node.keywords
                if k.arg
            }
        return built_call(node, literal_of, callee_of, depth + 1)
    if isinstance(node, ast.Dict) and holds_calls(node):  # {"activation": nn.Tanh()}
        if len(node.keys) > MAX_ITEMS:
            raise NotBuilt
        keys = [literal_of(k) if k is not None else (False, None) for k in node.keys]
        if not all(ok and isinstance(k, str) for ok, k in keys):
            raise NotBuilt
        return {
            k: built_value(v, literal_of, callee_of, depth + 1)
            for (_, k), v in zip(keys, node.values)
        }
    if isinstance(node, (ast.Tuple, ast.List)) and any(
        isinstance(e, (ast.Call, ast.Name)) for e in node.elts
    ):
        if len(node.elts) > MAX_ITEMS:
            raise NotBuilt
        items = [built_value(e, literal_of, callee_of, depth + 1) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    ok, value = literal_of(node)
    if not ok:
        raise NotBuilt
    return value


def holds_calls(node: ast.expr) -> bool:
    """A tuple, list or dict (a display or ``dict(...)``) with a call among its items: an
    argument that may hold calls of classes (``dict(activation = nn.Tanh())``)."""
    if isinstance(node, (ast.Tuple, ast.List)):
        items = node.elts
    elif isinstance(node, ast.Dict):
        items = node.values
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        items = [k.value for k in node.keywords]
    else:
        return False
    return any(isinstance(item, ast.Call) for item in items)


def _builtin_dict(call: ast.Call, literal_of: Literal) -> bool:
    """``dict(key=...)`` of the builtin: where an empty ``dict()`` folds, no name hides it."""
    if not (isinstance(call.func, ast.Name) and call.func.id == "dict") or call.args:
        return False
    if any(k.arg is None for k in call.keywords):
        return False
    return literal_of(ast.Call(func=call.func, args=[], keywords=[]))[0]


PARTIAL = "functools.partial"


def built_call(call: ast.Call, literal_of: Literal, callee_of: Callee, depth: int = 0) -> Target:
    """``Decoder(dim=512, depth=6)`` as a :class:`Target` (see :func:`built_value`); a
    ``*args`` or ``**kwargs`` in it is not read. Never asks for weights: ``pretrained=True``
    is built as ``pretrained=False``. ``partial(nn.LayerNorm, eps=1e-6)`` (``callee_of``
    says :data:`PARTIAL`) is the partial Target of the class it binds."""
    callee = callee_of(call.func)
    if callee is None or any(isinstance(a, ast.Starred) for a in call.args):
        raise NotBuilt
    if any(k.arg is None for k in call.keywords):
        raise NotBuilt
    partial = callee == PARTIAL
    positional = call.args[1:] if partial else call.args
    if partial:
        callee = callee_of(call.args[0]) if call.args else None
        if callee is None or callee == PARTIAL:
            raise NotBuilt
    args = tuple(built_value(a, literal_of, callee_of, depth) for a in positional)
    kwargs = tuple(
        (k.arg, built_value(k.value, literal_of, callee_of, depth)) for k in call.keywords if k.arg
    )
    return Target(callee, args, without_weights(kwargs), partial)


def without_weights(kwargs: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
    """A call's keywords, those that ask for pretrained weights (``pretrained=True``,
    ``weights="DEFAULT"``) given their no-weights value: the counts are the same, and
    nothing is downloaded."""
    return tuple((k, _NO_WEIGHTS.get(k, v) if v else v) for k, v in kwargs)


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value  # a string annotation
    if isinstance(node, ast.Subscript):  # Optional[Config] -> Config
        return dotted_name(node.slice)
    return None
