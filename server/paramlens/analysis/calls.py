"""Call sites in one file, found on demand (the scan keeps no syntax trees): calls of a
class with literal arguments (how to construct it), calls of classes among them read the
same way (``attn_layers=Decoder(dim=512)``: a :class:`~.model.Target`), also where the
arguments are local values (a loop's, a parametrized test's: :mod:`.local_values`), and
calls of a model with literal tensors (forward()'s example input). Imports :mod:`.model`,
:mod:`.literals`, :mod:`.local_values` and :mod:`.reading`."""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Mapping

from .literals import (
    PARTIAL,
    Budget,
    NotBuilt,
    built_value,
    dotted_name,
    holds_calls,
    try_literal,
    without_weights,
)
from .local_values import (
    Built,
    CaseClass,
    Visible,
    may_be_class,
    notes,
    raises,
    scoped_calls,
    single_assignment,
    without_moves,
)
from .model import CallSite, FileInfo, ModelCall
from .reading import qualify, qualify_dotted, syntax_tree


def call_sites(info: FileInfo) -> list[CallSite]:
    """Calls in ``info`` whose arguments are literals, module constants or names of classes
    and functions, then those whose arguments are such once local values are known
    (parsed once per file text, then kept)."""
    if info.found_call_sites is None:
        info.found_call_sites = _find_call_sites(info)
    return info.found_call_sites


def _find_call_sites(info: FileInfo) -> list[CallSite]:
    tree = syntax_tree(info)
    if tree is None:
        return []
    path = info.path
    refs = info.symbols
    budget = Budget()

    found: list[CallSite] = []
    unresolved: dict[int, ast.Call] = {}  # calls with local values, perhaps (by id)
    failing = _meant_to_fail(tree) if "aises(" in info.text else set()
    case_params = _case_parameters(tree, info) if "@" in info.text else frozenset()
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or id(call) in failing:
            continue
        callee = qualify(info, call.func)
        if callee is None:
            continue
        if any(isinstance(a, ast.Starred) for a in call.args) or (
            isinstance(call.func, ast.Name) and call.func.id in case_params
        ):  # net(channels=1), net a test's parameter: which class is a case's
            unresolved[id(call)] = call
            continue
        values = [_argument(a, info, info.constants, refs, budget) for a in call.args]
        kwvalues = [
            (k.arg, _argument(k.value, info, info.constants, refs, budget)) for k in call.keywords
        ]
        if all(ok for ok, _ in values) and all(k and ok for k, (ok, _) in kwvalues):
            kwargs = tuple((k, v) for k, (_, v) in kwvalues if k)
            args = tuple(v for _, v in values)
            found.append(CallSite(callee, path, call.lineno, args, kwargs))
        else:
            unresolved[id(call)] = call
    if unresolved:  # after the plain ones: a literal call is the better example
        found += _with_local_values(info, tree, unresolved, budget)
    return found + _table_entries(tree, info, budget)


# the key of a table entry that holds the class's keyword arguments, when it has several
# dicts (segmentation_models_pytorch: "params", beside "pretrained_settings")
_KWARGS_KEYS = re.compile(r"param|kwarg|args|config|cfg", re.IGNORECASE)
MAX_TABLE_ENTRIES = 64  # entries read from one module-level table


def _table_entries(tree: ast.Module, info: FileInfo, budget: Budget) -> list[CallSite]:
    """A module-level table of configurations, ``name = {"key": {"encoder": Class,
    "params": {...}}, ...}`` (segmentation_models_pytorch's ``densenet_encoders``, which
    ``get_encoder("densenet121")`` builds as ``Class(**params)``), as a call of the class
    with those keyword arguments per entry, noted ``densenet_encoders["densenet121"]``. An
    entry names one class (a module-level name, capitalised) and one dict of arguments
    whose keys are strings (the one whose key says so among several: ``params``,
    ``kwargs``, ``config``...), its values read as a call's arguments are."""
    found: list[CallSite] = []
    for statement in tree.body:
        target, table = single_assignment(statement) or (None, None)
        if not isinstance(target, ast.Name) or not isinstance(table, ast.Dict):
            continue
        for key, entry in list(zip(table.keys, table.values))[:MAX_TABLE_ENTRIES]:
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                continue
            site = _table_entry(entry, info, budget)
            if site is not None:
                callee, kwargs = site
                note = f"{target.id}[{key.value!r}]"
                found.append(CallSite(callee, info.path, entry.lineno, (), kwargs, note))
    return found


def _table_entry(
    entry: ast.expr, info: FileInfo, budget: Budget
) -> tuple[str, tuple[tuple[str, object], ...]] | None:
    """One entry of a table (see :func:`_table_entries`): its class and keyword arguments."""
    if not isinstance(entry, ast.Dict):
        return None
    items: list[tuple[str, ast.expr]] = []
    for k, v in zip(entry.keys, entry.values):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            return None
        items.append((k.value, v))
    named = [
        c
        for _, v in items
        if isinstance(v, (ast.Name, ast.Attribute)) and (c := _class_called(v, info, info.symbols))
    ]
    dicts = [(k, v) for k, v in items if isinstance(v, ast.Dict) and v.keys]
    if len(dicts) > 1:
        dicts = [(k, v) for k, v in dicts if _KWARGS_KEYS.search(k)]
    if len(named) != 1 or len(dicts) != 1:
        return None
    ok, arguments = _argument(dicts[0][1], info, info.constants, info.symbols, budget)
    kwargs = _keywords(arguments) if ok else None  # read as a call's ``**params`` is
    if kwargs is None:
        return None
    return named[0], without_weights(tuple(kwargs))


def _case_parameters(tree: ast.Module, info: FileInfo) -> frozenset[str]:
    """The parameters of the module's decorated functions that name none of its own
    names: a test's parameter may be a class its cases give (:class:`CaseClass`)."""
    return frozenset(
        arg.arg
        for node in _functions(tree)
        if node.decorator_list
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        if arg.arg not in info.symbols
    )


def _meant_to_fail(tree: ast.Module) -> set[int]:
    """The calls in ``with pytest.raises(...)`` / ``self.assertRaises(...)`` blocks (by
    ``id``), found through statements only: no expression holds a ``with``."""
    found: set[int] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.With, ast.AsyncWith)) and raises(node):
            found.update(id(n) for stmt in node.body for n in ast.walk(stmt))
            continue
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                stack += [v for v in value if isinstance(v, (ast.stmt, ast.excepthandler))]
    return found


def _with_local_values(
    info: FileInfo, tree: ast.Module, unresolved: dict[int, ast.Call], budget: Budget
) -> list[CallSite]:
    """The calls of ``unresolved`` whose arguments are literal once their scopes' local
    values are known (see :mod:`.local_values`), ``**kwargs`` and ``*args`` spread."""
    found: list[CallSite] = []
    for scoped in scoped_calls(tree, unresolved, info.constants, budget, info.text, info.symbols):
        call, env = scoped.call, scoped.env
        if not env:
            continue
        func = call.func
        case_class = env[func.id].value if isinstance(func, ast.Name) and func.id in env else None
        if isinstance(case_class, CaseClass):  # net(**net_args), net a case's class
            callee = qualify_dotted(info, case_class.dotted)
        elif scoped.case:
            continue  # a later case is read for the classes it names only
        else:
            callee = qualify(info, func) or ""
        constants = Visible(env, info.constants, scoped.hidden)
        refs = Visible({}, info.symbols, scoped.hidden)
        args: list[object] = []
        kwargs: dict[str, object] = {}
        for arg in call.args:
            spread = isinstance(arg, ast.Starred)
            node = arg.value if isinstance(arg, ast.Starred) else arg
            ok, value = _argument(node, info, constants, refs, budget)
            if not ok or (spread and not isinstance(value, (list, tuple))):
                break
            args += list(value) if spread else [value]  # type: ignore[call-overload]
        else:
            for keyword in call.keywords:
                ok, value = _argument(keyword.value, info, constants, refs, budget)
                items = _keywords(value) if keyword.arg is None else [(keyword.arg, value)]
                if not ok or items is None or any(k in kwargs for k, _ in items):
                    break
                kwargs.update(items)
            else:
                note = "; ".join(sorted(notes(call, env)))
                found.append(
                    CallSite(callee, info.path, call.lineno, tuple(args), (*kwargs.items(),), note)
                )
    return found


def _argument(
    node: ast.expr,
    info: FileInfo,
    constants: Mapping[str, object],
    refs: Mapping[str, str],
    budget: Budget,
) -> tuple[bool, object]:
    """An argument's value: a literal, or a call of a class whose arguments are such
    (``TransformerWrapper(..., attn_layers=Decoder(dim=512, depth=6))``, also as an item of
    a tuple, list or dict: ``kwargs=dict(activation=nn.Tanh())``; a local name assigned
    such a call: ``model = Net(dim=8)`` then ``Wrapper(model)``) as a Target of its
    qualified callee (the engine keeps it only if that is a workspace class or a
    ``torch.nn`` one). A callee is a class by its name's case (``Decoder``, not ``int``);
    a name the scope binds (not in ``refs``) is none."""
    if isinstance(node, ast.Name) and isinstance(constants, Visible):
        local = constants.env.get(node.id)
        if local is not None and isinstance(local.value, Built):  # model = Net(...); W(model)
            built = local.value
            seen = Visible(built.env, info.constants, built.hidden)
            return _argument(
                built.call, info, seen, Visible({}, info.symbols, built.hidden), budget
            )
    if isinstance(node, ast.Call) and _class_called(node.func, info, refs) is None:
        found = try_literal(node, constants, refs, budget)  # dict(learned=True) is a literal;
        if found[0] or not holds_calls(node):  # most are not: self.norm(x)
            return found  # dict(activation=nn.Tanh()) is read on
    elif not isinstance(node, ast.Call) and not holds_calls(node):
        return try_literal(node, constants, refs, budget)

    def literal_of(item: ast.expr) -> tuple[bool, object]:
        return try_literal(item, constants, refs, budget)

    def callee_of(func: ast.expr) -> str | None:
        return _class_called(func, info, refs)

    try:
        return True, built_value(node, literal_of, callee_of)
    except (NotBuilt, RecursionError):
        return False, None


def _class_called(func: ast.expr, info: FileInfo, refs: Mapping[str, str]) -> str | None:
    """The qualified name of a call's callee if it may be a class: a module-level name
    (or an attribute of one) whose last part is capitalised; or ``functools.partial``,
    whose first argument may be one (``norm_layer=partial(nn.LayerNorm, eps=1e-6)``)."""
    dotted = dotted_name(func)
    if dotted is None or dotted.partition(".")[0] not in refs:
        return None
    if not may_be_class(dotted):
        return PARTIAL if qualify(info, func) == PARTIAL else None
    return qualify(info, func)


def _keywords(value: object) -> list[tuple[str, object]] | None:
    """``**value``'s keywords: a dict with string keys, else None."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return None
    return list(value.items())


_TENSOR_FACTORIES = frozenset(
    {"randn", "rand", "zeros", "ones", "empty", "randint", "full", "arange", "randn_like"}
)


_QUALIFIED_FACTORIES = frozenset(f"torch.{name}" for name in _TENSOR_FACTORIES)


def _tensor_input(node: ast.expr, info: FileInfo, tensors: Mapping[str, str]) -> str | None:
    """``torch.randn(64, 1, 28, 28)`` with its sizes folded to literals (a batch size that
    is a module constant included), or a name bound to one; None for anything else."""
    node = without_moves(node)
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
        dtype = dotted_name(keyword.value) or ""
        if keyword.arg != "dtype" or not dtype.startswith("torch."):
            return None
        parts.append(f"dtype={dtype}")
    return f"torch.{name}({', '.join(parts)})"


def model_calls(info: FileInfo) -> list[ModelCall]:
    """Calls of models with literal tensors in ``info`` (parsed once per file text)."""
    if info.found_model_calls is None:
        info.found_model_calls = _find_model_calls(info)
    return info.found_model_calls


_LOOKED_AT = (ast.Assign, ast.Call)


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions of ``tree`` in :func:`ast.walk`'s order, found through statements
    only (no expression holds a ``def``): a tenth of the nodes of a model file."""
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    queue: deque[ast.AST] = deque([tree])
    while queue:
        node = queue.popleft()
        for _, value in ast.iter_fields(node):
            for child in value if isinstance(value, list) else ():
                if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                    queue.append(child)
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        found.append(child)
    return found


def _find_model_calls(info: FileInfo) -> list[ModelCall]:
    tree = syntax_tree(info)
    if tree is None:
        return []
    scopes: list[ast.Module | ast.FunctionDef | ast.AsyncFunctionDef] = [tree, *_functions(tree)]
    lines = info.text.splitlines()
    # A model call needs a tensor made in its scope: a call whose name is a torch factory's
    # or an alias of one. Scopes whose text names none are not walked (timm's
    # vision_transformer.py: 7 of its 216, the module included; its focused job after an edit
    # took 0.33-0.47 s, now 0.12-0.16 s, at load 10).
    aliases = {n for n, target in info.symbols.items() if target in _QUALIFIED_FACTORIES}
    factories = re.compile(r"\b(?:" + "|".join(sorted(_TENSOR_FACTORIES | aliases)) + r")\b")
    found: list[ModelCall] = []
    for scope in scopes:
        if isinstance(scope, ast.Module):
            text = info.text
        else:
            text = "\n".join(lines[scope.lineno - 1 : scope.end_lineno])
        if not factories.search(text):
            continue
        models: dict[str, tuple[str, int]] = {}  # local name -> its class, the line built
        tensors: dict[str, str] = {}  # local name -> the tensor expression it holds
        scoped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        body = [st for st in scope.body if not isinstance(st, scoped)]  # each its own scope
        # the assignments and calls, in source order (the rest is never looked at)
        nodes = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, _LOOKED_AT)]
        nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    value = without_moves(node.value)
                    tensor = _tensor_input(value, info, tensors)
                    if tensor is not None:
                        tensors[target.id] = tensor
                    elif isinstance(value, ast.Call) and (callee := qualify(info, value.func)):
                        models[target.id] = (callee, value.lineno)
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr == "forward":
                    func = func.value
                if isinstance(func, ast.Name) and func.id in models:
                    target_class, built_at = models[func.id]
                elif isinstance(func, ast.Call) and (callee := qualify(info, func.func)):
                    target_class, built_at = callee, func.lineno  # Net()(x)
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
                found.append(ModelCall(target_class, info.path, node.lineno, expression, built_at))
    return found
