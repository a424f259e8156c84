"""Measure a built model: totals, per-line layers, the module tree, a factory's parts.

Parameters are counted by tensor identity, so tied weights count once and the totals
equal ``sum(p.numel() for p in model.parameters())``. Runs in the worker (standard
library + torch), inside a build child.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..forward.counters import ModuleCall
from ..layers import describe, describe_all, qualtype
from ..protocol import (
    Call,
    ClassSpec,
    LayerEntry,
    LineSize,
    ModelResult,
    ParamInfo,
    Part,
    TreeRow,
)
from .sites import Site, SiteRecorder

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _unique(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _param_info(name: str, p: torch.Tensor) -> ParamInfo:
    return ParamInfo(name, tuple(p.shape), p.numel(), p.requires_grad, _dtype_name(p.dtype))


def _trainable_flag(params: Sequence[torch.Tensor]) -> str:
    if not params:
        return "--"
    flags = {p.requires_grad for p in params}
    return "Partial" if len(flags) == 2 else str(flags.pop())


def _tree(
    model: nn.Module,
    first_site: Callable[[nn.Module], Site | None],
    calls: Mapping[int, list[ModuleCall]],
) -> list[TreeRow]:
    rows: list[TreeRow] = []
    visited: set[int] = set()

    def visit(module: nn.Module, path: str, depth: int) -> None:
        visited.add(id(module))
        named_own = list(module.named_parameters(recurse=False))
        own = [p for _, p in named_own]
        everything = list(module.parameters()) if module._modules else own
        children = [(n, c) for n, c in module.named_children() if id(c) not in visited]
        site = first_site(module)
        made = calls.get(id(module), [])
        rows.append(
            TreeRow(
                path=path,
                type=type(module).__name__,
                depth=depth,
                params=sum(p.numel() for p in everything),
                own_params=sum(p.numel() for p in own),
                own_shapes=tuple(tuple(p.shape) for p in own),
                trainable=_trainable_flag(everything),
                line=site[1] if site else None,
                file=site[0] if site else None,
                leaf=not children,
                qualtype=qualtype(module),
                own_names=tuple(n for n, _ in named_own),
                own_trainable=tuple(bool(p.requires_grad) for p in own),
                input_shape=made[0].inputs if made else "",
                output_shape=made[0].output if made else "",
                macs=sum(c.macs for c in made),
            )
        )
        for name, child in children:
            if id(child) not in visited:
                visit(child, f"{path}.{name}" if path else name, depth + 1)

    visit(model, "", 0)
    return rows


def _calls_of(modules: list[nn.Module], calls: Mapping[int, list[ModuleCall]]) -> tuple[Call, ...]:
    """The distinct (input, output) shapes of the modules' calls, with counts."""
    merged: dict[tuple[str, str], list[int]] = {}
    for module in modules:
        for call in calls.get(id(module), ()):
            entry = merged.setdefault((call.inputs, call.output), [0, 0, 0])
            entry[0] += 1
            entry[1] += call.macs
            entry[2] += call.saved
    return tuple(Call(i, o, n, macs, saved) for (i, o), (n, macs, saved) in merged.items())


def _sizes(modules: list[nn.Module]) -> tuple[LineSize, ...]:
    """The modules by (description, parameters of one), in the order built; () when they
    are all of one size (the line's own figures say it all)."""
    if len(modules) < 2:
        return ()
    groups: dict[tuple[str, int], int] = {}
    for module in modules:
        key = (describe(module), sum(p.numel() for p in module.parameters()))
        groups[key] = groups.get(key, 0) + 1
    if len(groups) < 2:
        return ()
    return tuple(LineSize(text, count, params) for (text, params), count in groups.items())


def _layers(
    model: nn.Module,
    recorder: SiteRecorder,
    names: dict[int, str],
    calls: Mapping[int, list[ModuleCall]],
) -> tuple[list[LayerEntry], Callable[[nn.Module], Site | None]]:
    modules = list(model.modules())
    parent: dict[int, nn.Module] = {}
    for module in modules:
        for child in module.children():
            parent.setdefault(id(child), module)

    own_sites: dict[int, list[Site]] = {id(m): recorder.sites(m) for m in modules}

    def effective_sites(module: nn.Module) -> list[Site]:
        # Modules torch copies without calling __init__ (e.g. TransformerEncoder's
        # clones) take the line of their nearest recorded ancestor.
        current: nn.Module | None = module
        while current is not None and current is not model:
            if own_sites[id(current)]:
                return own_sites[id(current)]
            current = parent.get(id(current))
        return []

    by_line: dict[Site, list[nn.Module]] = {}
    for module in modules[1:]:
        for site in effective_sites(module):
            by_line.setdefault(site, []).append(module)
    params_by_line: dict[Site, list[torch.Tensor]] = {}
    for p in model.parameters():
        for site in recorder.sites(p):
            params_by_line.setdefault(site, []).append(p)

    entries = [
        _line_entry(site, by_line.get(site, []), params_by_line.get(site, []), parent, names, calls)
        for site in sorted(set(by_line) | set(params_by_line))
    ]

    _mark_tied(model, entries, own_sites)

    def first_site(module: nn.Module) -> Site | None:
        sites = own_sites.get(id(module)) or []
        return sites[0] if sites else None

    return entries, first_site


def _line_entry(
    site: Site,
    created: list[nn.Module],
    made_here: list[torch.Tensor],
    parent: Mapping[int, nn.Module],
    names: Mapping[int, str],
    calls: Mapping[int, list[ModuleCall]],
) -> LayerEntry:
    """What one line created: the modules it built that no other of its modules holds
    (a uniform container's children, one by one, however many: ``ModuleList(Linear(d, d) for
    _ in range(depth))`` reads ``Linear(8 -> 8)`` at depth 1 as ``2 x Linear(8 -> 8)`` at
    depth 2, so a line built at both depths lists one kind of layer), and the parameters it
    made directly."""
    members = {id(m) for m in created}

    def has_member_ancestor(m: nn.Module) -> bool:
        up = parent.get(id(m))
        while up is not None:
            if id(up) in members:
                return True
            up = parent.get(id(up))
        return False

    roots = [m for m in created if not has_member_ancestor(m)]
    root_params = _unique(p for r in roots for p in r.parameters())
    in_roots = {id(p) for p in root_params}
    direct = [p for p in made_here if id(p) not in in_roots]
    shown = roots
    if len(roots) == 1 and isinstance(roots[0], _CONTAINERS):
        children = list(roots[0].children())
        uniform = len({type(c) for c in children}) == 1
        if children and uniform and all(id(c) in members for c in children):
            shown = children
    kinds = sorted({type(m).__name__ for m in shown}) + (["Parameter"] if direct else [])
    params = root_params + direct
    return LayerEntry(
        file=site[0],
        line=site[1],
        type=", ".join(kinds),
        count=len(shown) if shown else len(direct),
        params=sum(p.numel() for p in params),
        parameters=tuple(_param_info(names.get(id(p), "?"), p) for p in params),
        describe=describe_all(shown) if len(kinds) == 1 and shown else ", ".join(kinds),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        nbytes=sum(_nbytes(p) for p in params),
        calls=_calls_of(shown, calls),
        sizes=_sizes(shown),
    )


def _mark_tied(
    model: nn.Module, entries: list[LayerEntry], own_sites: dict[int, list[Site]]
) -> None:
    """A parameter shared by several modules (a tied embedding and head) is counted at the
    line of the module holding it under its first name, as ``model.parameters()`` counts
    it; the other lines say where (``tied``) and how much of theirs that is (``shared``)."""
    canonical: dict[int, str] = {}
    shared_ids: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in canonical:
            shared_ids.add(id(p))
        else:
            canonical[id(p)] = name
    if not shared_ids:
        return
    modules = dict(model.named_modules())
    shared = [
        (name, p)
        for name, p in model.named_parameters(remove_duplicate=False)
        if id(p) in shared_ids
    ]
    for index, entry in enumerate(entries):
        site = (entry.file, entry.line)
        paths = [n for n, m in modules.items() if n and site in own_sites.get(id(m), [])]
        elsewhere: dict[Site, int] = {}
        seen: set[int] = set()
        for name, p in shared:
            if id(p) in seen:
                continue
            if not any(name.startswith(f"{path}.") for path in paths):
                continue  # not held by this line's modules
            seen.add(id(p))
            first = canonical[id(p)]
            if any(first.startswith(f"{path}.") for path in paths):
                continue  # counted here
            owner = modules.get(first.rpartition(".")[0])
            sites = own_sites.get(id(owner), []) if owner is not None else []
            if sites:
                elsewhere[sites[0]] = elsewhere.get(sites[0], 0) + p.numel()
        if elsewhere:
            entries[index] = dataclasses.replace(
                entry, shared=sum(elsewhere.values()), tied=tuple(sorted(elsewhere))
            )


def measure(
    model: nn.Module,
    spec: ClassSpec,
    file: str,
    recorder: SiteRecorder,
    detail: bool = True,
    calls: Mapping[int, list[ModuleCall]] | None = None,
) -> ModelResult:
    """Totals always; per-line layers and the module tree only with ``detail``; with
    ``calls`` (forward() ran), each line's and each module's shapes."""
    params = list(model.parameters())  # unique by identity, as torch counts them
    buffers = list(model.buffers())
    layers: list[LayerEntry] = []
    tree: list[TreeRow] = []
    if detail:
        names: dict[int, str] = {}
        for name, p in model.named_parameters():
            names.setdefault(id(p), name)
        layers, first_site = _layers(model, recorder, names, calls or {})
        tree = _tree(model, first_site, calls or {})
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return ModelResult(
        name=spec.name,
        file=file,
        line=spec.line,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffer_numel=sum(b.numel() for b in buffers),
        param_bytes=sum(_nbytes(p) for p in params),
        buffer_bytes=sum(_nbytes(b) for b in buffers),
        dtypes=tuple(sorted({_dtype_name(p.dtype) for p in params})),
        ctor=spec.ctor or "",
        layers=tuple(layers),
        tree=tuple(tree),
        kind=spec.kind,
        model_class=qualtype(model),
    )


def parts(model: nn.Module, is_user_file: Callable[[str], bool]) -> tuple[Part, ...]:
    """How many modules of each workspace class, of which size, ``model`` holds."""
    counts: dict[tuple[str, int], int] = {}
    user_types: dict[type, bool] = {}
    for module in list(model.modules())[1:]:
        cls = type(module)
        if cls not in user_types:
            source = getattr(sys.modules.get(cls.__module__), "__file__", None)
            user_types[cls] = isinstance(source, str) and is_user_file(source)
        if user_types[cls]:
            key = (qualtype(module), sum(p.numel() for p in module.parameters()))
            counts[key] = counts.get(key, 0) + 1
    return tuple(Part(q, n, c) for (q, n), c in counts.items())
