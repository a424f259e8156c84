"""Repeated blocks run once: forward() through GPT-2 XL's 48 identical blocks on meta runs
the first block, then gives each of the other 47 what it recorded.

On meta an op costs only Python, and a deep model's forward() is mostly the same block
again. Modules whose whole subtree is the same (types,
parameter and buffer shapes, the attributes their code reads) form a group. A member's call
with the same input (shapes, strides, dtypes, what autograd already saved...) as one already
run by a member of its group is not run: its submodules get the calls that run recorded,
the multiply-adds and saved bytes are added where torch's own run would have added them,
and it returns fresh meta tensors of the recorded shapes and strides.

A call is recorded (on the second call with its input; the third on replays it) only when
replaying it is exact: inputs and outputs are meta tensors or plain values, no list or dict
argument, nothing stored on the modules, every tensor autograd saved made by the call, one
of its inputs or its own buffer, and no member shares a tensor or module with another.
Otherwise the block simply runs.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import types
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ..loader import code_objects
from .counters import Calls, ModuleCall, MultiplyAdds, SavedForBackward

_SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)
_NOT_STATE = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})


def _value_key(value: object) -> Hashable:
    """A plain attribute, as far as it can matter to forward(): scalars by value, tensors
    by what they are, anything else by identity (a config object all blocks share)."""
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if isinstance(value, (tuple, list, frozenset)):
        return (type(value), tuple(_value_key(v) for v in value))
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type)
    return ("object", id(value))


_State = tuple[tuple[str, Hashable], ...]  # a module's own attributes, by name


def _states(module: nn.Module) -> tuple[_State, _State]:
    """The module's own attributes (hooks excepted): as they are, and with scalars only
    by name (``loose``: blocks that differ in a ``layer_id`` their code never reads)."""
    full: list[tuple[str, Hashable]] = []
    loose: list[tuple[str, Hashable]] = []
    for name, value in sorted(module.__dict__.items()):
        if name in _NOT_STATE or (name.startswith("_") and "hook" in name):
            continue
        key = _value_key(value)
        full.append((name, key))
        scalar = isinstance(value, _SCALARS) and name != "training"
        loose.append((name, "scalar") if scalar else (name, key))
    return tuple(full), tuple(loose)


def _children_first(model: nn.Module) -> Iterator[nn.Module]:
    """Every module once, after all of its children (a shared one after its first parent's
    other children: under its second parent it is already numbered)."""
    done: set[int] = set()
    stack: list[tuple[nn.Module, bool]] = [(model, False)]
    while stack:
        module, expanded = stack.pop()
        if expanded:
            yield module
            continue
        if id(module) in done:
            continue
        done.add(id(module))
        stack.append((module, True))
        stack.extend((c, False) for c in reversed(module._modules.values()) if c is not None)


@dataclasses.dataclass
class _Shapes:
    """id(module) -> a number that two modules share when their subtrees are alike: as
    they are (``full``), and with scalar attributes by name only (``loose``); and each
    module's own attributes (``states``), to say how two differ."""

    full: dict[int, int]
    loose: dict[int, int]
    states: dict[int, _State]


def _structures(model: nn.Module) -> _Shapes:
    """Numbered from the leaves up (each child by its number), so a deep model costs one
    visit per module."""
    numbers: dict[Hashable, int] = {}
    shapes = _Shapes({}, {}, {})
    for module in _children_first(model):
        tensors = tuple(
            (n, tuple(t.shape), t.stride(), t.dtype, t.device.type, t.requires_grad)
            for n, t in [*module._parameters.items(), *module._buffers.items()]
            if t is not None
        )
        states = _states(module)
        shapes.states[id(module)] = states[0]
        for state, of in zip(states, (shapes.full, shapes.loose)):
            children = tuple((n, of[id(c)]) for n, c in module._modules.items() if c is not None)
            key = (type(module), tensors, state, children)
            try:
                of[id(module)] = numbers.setdefault(key, len(numbers))
            except TypeError:  # an unhashable attribute: alike to nothing
                of[id(module)] = numbers.setdefault(("unique", id(module)), len(numbers))
    return shapes


@functools.cache
def _names_read(filename: str) -> frozenset[str]:
    """Every name a function of this file (other than an ``__init__``) reads or mentions."""
    names: set[str] = set()
    for code, _ in code_objects(filename):
        if code.co_name == "__init__":
            continue
        names.update(code.co_names)
        if code.co_flags & inspect.CO_NEWLOCALS:  # a function's getattr(self, "name")
            # (not a class body's: its constants name the parameters that methods annotate)
            names.update(c for c in code.co_consts if isinstance(c, str))
    return frozenset(names)  # empty if it does not compile: every name counts as read


def _unread_differences(members: list[nn.Module], shapes: _Shapes) -> bool:
    """Members alike but for scalar attributes that no code but ``__init__`` reads (a
    block's ``layer_id``)? A class's code is looked for in the file it is written in; only
    the submodules whose subtrees differ are compared."""
    pending = [(members[0], other) for other in members[1:]]
    while pending:
        mine, theirs = pending.pop()
        if shapes.full[id(mine)] == shapes.full[id(theirs)]:
            continue
        a, b = dict(shapes.states[id(mine)]), dict(shapes.states[id(theirs)])
        differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        if differing:
            try:
                filename = inspect.getsourcefile(type(theirs))
            except TypeError:
                return False
            read = _names_read(filename) if filename else frozenset()
            if not read or differing & read:
                return False
        children = zip(mine._modules.values(), theirs._modules.values())
        pending.extend((a, b) for a, b in children if a is not None and b is not None)
    return True


def groups(model: nn.Module) -> list[list[nn.Module]]:
    """Modules with children whose subtrees are alike, each group in model order."""
    shapes = _structures(model)
    by_loose: dict[int, list[nn.Module]] = {}
    for module in model.modules():
        if not module._modules or "forward" in module.__dict__:
            continue
        forward = getattr(type(module), "forward", None)
        if not isinstance(forward, types.FunctionType) or forward is nn.Module.forward:
            continue
        by_loose.setdefault(shapes.loose[id(module)], []).append(module)
    found: list[list[nn.Module]] = []
    for members in by_loose.values():
        if len(members) < 2 or not _disjoint(members):
            continue
        by_full: dict[int | None, list[nn.Module]] = {}
        for module in members:
            by_full.setdefault(shapes.full[id(module)], []).append(module)
        if len(by_full) > 1 and _unread_differences(members, shapes):
            by_full = {None: members}
        found.extend(group for group in by_full.values() if len(group) > 1)
    return found


def _disjoint(members: list[nn.Module]) -> bool:
    """No tensor or module is held by two members (a shared buffer is saved once)."""
    seen: set[int] = set()
    for member in members:
        held = {id(m) for m in member.modules()}
        for module in member.modules():
            values = [*module.__dict__.values(), *module._parameters.values()]
            values += module._buffers.values()
            held |= {id(t) for t in values if isinstance(t, torch.Tensor)}
        if held & seen:
            return False
        seen |= held
    return True


# -- a call: what identifies its input, and what it did ------------------------------


@dataclasses.dataclass(frozen=True)
class _Out:
    """An output tensor to make again, or (``input``) the call's own input returned."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool
    saved: bool  # autograd had saved it by the end of the call
    input: int | None = None


@dataclasses.dataclass
class _Record:
    output: Any  # the output's structure, with _Out for each tensor
    calls: dict[str, list[ModuleCall]]  # submodule path -> the calls it made
    flops: int
    flops_by_module: dict[str, int]
    saved_bytes: int
    inputs_saved: tuple[int, ...]  # input tensors autograd saved during the call
    own_saved: tuple[tuple[str, str], ...]  # its own buffers saved (submodule, name)


@dataclasses.dataclass
class _Before:
    """The counters as a recorded call found them."""

    calls: dict[str, int]  # calls made so far, by submodule path
    flops_by_module: dict[str, int]
    flops: int
    saved_bytes: int
    kept: int  # tensors autograd saved so far
    inputs_seen: list[bool]  # which inputs autograd had saved already
    state: list[Hashable]


_UNSEEN, _SEEN = object(), object()
_MAX_FAILURES = 2  # a group whose calls cannot be recorded twice is simply run


@dataclasses.dataclass
class Member:
    """A module of a group, its subtree, and the tensors it holds."""

    group: int
    modules: dict[str, nn.Module]  # its subtree by relative path ("" for itself)
    # its buffers and plain tensor attributes (autograd may save them): id -> where
    own: dict[int, tuple[str, str]] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.own = {
            id(value): (path, name)
            for path, module in self.modules.items()
            for table in (module._buffers, module.__dict__)
            for name, value in table.items()
            if isinstance(value, torch.Tensor)
        }

    def own_seen(self, saved: SavedForBackward) -> bool:
        """Were any of them saved already (by an earlier call of this very module)?"""
        return any(key in saved.seen for key in self.own)

    def tensor(self, path: tuple[str, str]) -> torch.Tensor | None:
        module = self.modules[path[0]]
        value = module._buffers.get(path[1], module.__dict__.get(path[1]))
        return value if isinstance(value, torch.Tensor) else None


class _Unsupported(Exception):
    """A call that is not replayed (it simply runs)."""


def blocks(model: nn.Module) -> dict[int, Member] | None:
    """Every group's members, by id (computed once per model, for all its forward()
    attempts); None for a model whose structure defeats grouping: its blocks all run."""
    try:
        return {
            id(member): Member(index, dict(member.named_modules()))
            for index, group in enumerate(groups(model))
            for member in group
        }
    except Exception:
        return None


def replaying(
    members: Mapping[int, Member] | None,
    calls: Calls,
    counter: MultiplyAdds,
    saved: SavedForBackward,
) -> contextlib.AbstractContextManager[None]:
    """:meth:`Repeats.active` for one forward() attempt, or nothing without groups."""
    if not members:
        return contextlib.nullcontext()
    return Repeats(members, calls, counter, saved).active()


class Repeats:
    """While entered, group members' calls are recorded or replayed (meta only)."""

    def __init__(
        self,
        members: Mapping[int, Member],
        calls: Calls,
        counter: MultiplyAdds,
        saved: SavedForBackward,
    ) -> None:
        self.members, self.calls, self.counter, self.saved = members, calls, counter, saved
        # by group and input: None if it cannot be recorded, _SEEN after a first call (the
        # second is recorded, the rest replayed: inputs that never come back cost nothing)
        self.records: dict[Hashable, _Record | object | None] = {}
        self.failures: dict[int, int] = {}  # by group: calls that could not be recorded

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        modules = [member.modules[""] for member in self.members.values()]
        for module in modules:
            module.forward = functools.partial(self._call, module, type(module).forward)
        try:
            yield
        finally:
            for module in modules:
                module.__dict__.pop("forward", None)
            self.counter.created = None

    def _call(
        self, module: nn.Module, forward: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        member = self.members[id(module)]
        if self.failures.get(member.group, 0) >= _MAX_FAILURES or member.own_seen(self.saved):
            return forward(module, *args, **kwargs)
        try:
            tensors: list[torch.Tensor] = []
            key = (
                member.group,
                self._input_key((args, tuple(kwargs.items())), tensors),
                torch.is_grad_enabled(),
                torch.is_inference_mode_enabled(),
            )
        except _Unsupported:
            return forward(module, *args, **kwargs)
        record = self.records.get(key, _UNSEEN)
        if isinstance(record, _Record):
            return self._replay(module, record, tensors)
        if record is _UNSEEN:  # the first call with this input: is there a second?
            self.records[key] = _SEEN
            return forward(module, *args, **kwargs)
        if record is not _SEEN:  # it could not be recorded (or is running: a recursion)
            return forward(module, *args, **kwargs)
        self.records[key] = None
        output, made = self._record(module, forward, args, kwargs, tensors)
        self.records[key] = made
        if made is None:
            self.failures[member.group] = self.failures.get(member.group, 0) + 1
        return output

    # -- the input's identity ---------------------------------------------------------

    def _input_key(self, value: object, tensors: list[torch.Tensor]) -> Hashable:
        if isinstance(value, torch.Tensor):
            if value.device.type != "meta" or type(value) not in (torch.Tensor, nn.Parameter):
                raise _Unsupported
            base = _base(value)
            same = next((i for i, t in enumerate(tensors) if t is value), None)
            same_base = next((i for i, t in enumerate(tensors) if _base(t) is base), None)
            tensors.append(value)
            return (
                "tensor",
                tuple(value.shape),
                value.stride(),
                value.storage_offset(),
                value.dtype,
                value.requires_grad,
                value._base is None,
                base.numel(),  # saving a view saves (and counts) its whole base
                id(base) in self.saved.seen,
                id(base) in self.saved.parameters,
                same,
                same_base,
            )
        if isinstance(value, _SCALARS):
            return (type(value), value)
        if type(value) is tuple:  # not a list or dict: a call may add to those
            return tuple(self._input_key(v, tensors) for v in value)
        raise _Unsupported

    # -- running a call and recording it ----------------------------------------------

    def _record(
        self,
        module: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tensors: list[torch.Tensor],
    ) -> tuple[Any, _Record | None]:
        member = self.members[id(module)]
        subs = member.modules.items()
        before = _Before(
            calls={n: len(self.calls.by_module.get(id(m), ())) for n, m in subs},
            flops_by_module={n: self.counter.by_module.get(id(m), 0) for n, m in subs},
            flops=self.counter.flops,
            saved_bytes=self.saved.nbytes,
            kept=len(self.saved.kept),
            inputs_seen=[id(_base(t)) in self.saved.seen for t in tensors],
            state=_snapshot(member.modules.values()),
        )
        outer = self.counter.created
        if outer is None:
            self.counter.created = []
        start = len(self.counter.created or [])
        try:
            output = forward(module, *args, **kwargs)
        finally:
            created = {id(t) for out in (self.counter.created or [])[start:] for t in _flat(out)}
            if outer is None:
                self.counter.created = None
        try:
            return output, self._made(member, before, output, tensors, created)
        except Exception:  # whatever it met, the call ran: only its replays are lost
            return output, None

    def _made(
        self,
        member: Member,
        before: _Before,
        output: object,
        tensors: list[torch.Tensor],
        created: set[int],
    ) -> _Record | None:
        """What the call did, if replaying it is exact."""
        if _snapshot(member.modules.values()) != before.state:
            return None  # it stored something on itself (or a lazy module grew)
        inputs = {id(_base(t)) for t in tensors}
        own_saved = []
        for new in self.saved.kept[before.kept :]:  # each saved: made here, an input, its own
            if id(new) in member.own:
                own_saved.append(member.own[id(new)])
            elif id(new) not in created and id(new) not in inputs:
                return None
        try:
            shape = self._output_spec(output, tensors, created)
        except _Unsupported:
            return None
        subs = member.modules
        made = {n: self.calls.by_module.get(id(m), [])[before.calls[n] :] for n, m in subs.items()}
        flops = {n: self.counter.by_module.get(id(m), 0) for n, m in subs.items()}
        return _Record(
            output=shape,
            calls={n: [dataclasses.replace(c) for c in made[n]] for n in subs if n and made[n]},
            flops=self.counter.flops - before.flops,
            flops_by_module={
                n: flops[n] - before.flops_by_module[n]
                for n in subs
                if n and flops[n] != before.flops_by_module[n]
            },
            saved_bytes=self.saved.nbytes - before.saved_bytes,
            inputs_saved=tuple(
                i
                for i, t in enumerate(tensors)
                if not before.inputs_seen[i] and id(_base(t)) in self.saved.seen
            ),
            own_saved=tuple(own_saved),
        )

    def _output_spec(
        self,
        value: object,
        tensors: list[torch.Tensor],
        created: set[int],
        bases: set[int] | None = None,
    ) -> Any:
        bases = set() if bases is None else bases
        if isinstance(value, torch.Tensor):
            if value.device.type != "meta" or type(value) is not torch.Tensor:
                raise _Unsupported
            same = next((i for i, t in enumerate(tensors) if t is value), None)
            base = _base(value)
            if same is None and (
                id(base) not in created  # from elsewhere: not made again
                or id(base) in bases  # two outputs that share memory
                or base.numel() != value.numel()  # part of a tensor: saving it saves all
            ):
                raise _Unsupported
            bases.add(id(base))
            out = _Out(
                tuple(value.shape),
                value.stride(),
                value.dtype,
                value.requires_grad,
                id(base) in self.saved.seen,
                same,
            )
            if same is None and _fresh(out).stride() != value.stride():
                raise _Unsupported
            return out
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
            return type(value)(self._output_spec(v, tensors, created, bases) for v in value)
        raise _Unsupported

    # -- replaying it -------------------------------------------------------------------

    def _replay(self, module: nn.Module, record: _Record, tensors: list[torch.Tensor]) -> Any:
        member = self.members[id(module)]
        subs = member.modules
        for name, calls in record.calls.items():
            mine = self.calls.by_module.setdefault(id(subs[name]), [])
            mine.extend(dataclasses.replace(c) for c in calls)
        for name, flops in record.flops_by_module.items():
            target = id(subs[name])
            self.counter.by_module[target] = self.counter.by_module.get(target, 0) + flops
        self.counter.count(record.flops)  # for this call and its callers
        self.saved.count(record.saved_bytes)
        for i in record.inputs_saved:
            self.saved.first_time(_base(tensors[i]))
        for path in record.own_saved:
            tensor = member.tensor(path)
            if tensor is not None:
                self.saved.first_time(tensor)
        return self._rebuild(record.output, tensors)

    def _rebuild(self, spec: Any, tensors: list[torch.Tensor]) -> Any:
        if isinstance(spec, _Out):
            if spec.input is not None:
                return tensors[spec.input]
            tensor = _fresh(spec)
            if spec.saved:
                self.saved.first_time(tensor)
            return tensor
        if type(spec) in (tuple, list):
            return type(spec)(self._rebuild(s, tensors) for s in spec)
        return spec


def _snapshot(modules: Iterable[nn.Module]) -> list[Hashable]:
    """What each module holds, by identity: a call that changes it is not replayed."""
    return [
        (
            type(m),
            tuple((k, id(v)) for k, v in m.__dict__.items()),
            tuple((k, id(v)) for k, v in m._parameters.items()),
            tuple((k, id(v)) for k, v in m._buffers.items()),
            tuple((k, id(v)) for k, v in m._modules.items()),
        )
        for m in modules
    ]


def _flat(out: object) -> Iterator[object]:
    """An op's output: a tensor, or a tuple or list of them."""
    if isinstance(out, (tuple, list)):
        yield from out
    else:
        yield out


def _base(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor._base is None else tensor._base


def _fresh(spec: _Out) -> torch.Tensor:
    """A meta tensor as the call returned it: made by an op when it requires grad (a leaf
    would refuse the in-place ops that code may apply to a block's output)."""
    tensor = torch.empty_strided(spec.shape, spec.stride, dtype=spec.dtype, device="meta")
    if spec.requires_grad:
        with torch.enable_grad():
            tensor = tensor.requires_grad_().clone()
    return tensor
