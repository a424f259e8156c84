"""Per-line figures and instances, merged from the models built for a file and for the
files that use its classes. Pure; imports the analysis workspace and the worker's
protocol."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Mapping, Sequence

from ..analysis.workspace import Workspace
from ..worker.protocol import Instance, JobResult, LayerEntry, LineSize, ModelResult


def _contents(model: ModelResult) -> Iterator[tuple[str, int, int]]:
    """(class, parameters of one, how many) for the modules inside ``model``: from its tree,
    or from its parts when only its totals were kept."""
    for row in model.tree:
        if row.depth > 0:
            yield row.qualtype, row.params, 1
    for part in model.parts:
        yield part.qualtype, part.params, part.count


def without_figures(models: Sequence[ModelResult], qualnames: Mapping[str, str]) -> set[str]:
    """Names of the classes that neither built nor appear inside a model built here."""
    real = [m for m in models if m.error is None and not m.example]
    measured = {m.model_class for m in real}
    measured |= {qualtype for m in real for qualtype, _, _ in _contents(m)}
    return {
        m.name
        for m in models
        if m.kind == "class"
        and (m.error is not None or m.example)  # example arguments: real instances are better
        and qualnames.get(m.name) not in measured
    }


def carriers(
    missing: Collection[str], qualnames: Mapping[str, str], results: Sequence[JobResult]
) -> dict[str, set[str]]:
    """The classes of ``results`` built with example arguments that hold a class of
    ``missing`` (by name; ``qualnames`` qualifies them) that no real build of ``results``
    holds, by file: their own users may build them with real arguments, and the missing
    class inside them (``SABlock`` inside ``TransformerBlock``, which only ``vit.py``'s
    models build for real)."""
    wanted = {qualnames[name] for name in missing if name in qualnames}
    models = [m for r in results for m in r.models if m.error is None]
    wanted -= {q for m in models if not m.example for q, _, _ in _contents(m)}
    found: dict[str, set[str]] = {}
    for m in models:
        if m.kind == "class" and m.example and wanted & {q for q, _, _ in _contents(m)}:
            found.setdefault(m.file, set()).add(m.name)
    return found


# class -> (model, its file, parameters of one instance) -> how many that model holds
Held = Mapping[str, Mapping[tuple[str, str, int], int]]


def held_instances(built: Sequence[ModelResult]) -> Held:
    """The instances of each class that the models of ``built`` built with real arguments
    hold (inside ``ViT(dim=32, ...)``, example sizes, an ``Attention`` is no more real than
    its own example build), read once for all the classes that look them up; a class's own
    build does not count."""
    held: dict[str, dict[tuple[str, str, int], int]] = {}
    for other in built:
        if other.error is not None or other.example:
            continue
        for qualtype, params, count in _contents(other):
            if other.kind == "class" and other.model_class == qualtype:
                continue
            groups = held.setdefault(qualtype, {})
            key = (other.name, other.file, params)
            groups[key] = groups.get(key, 0) + count
    return held


def with_instances(model: ModelResult, qualnames: Mapping[str, str], held: Held) -> ModelResult:
    """A class result with its qualified name and the instances measured in other models
    built with real arguments (:func:`held_instances`)."""
    qualname = qualnames.get(model.name)
    if model.kind != "class" or qualname is None:
        return model
    instances = tuple(
        Instance(name, file, count, params)
        for (name, file, params), count in held.get(qualname, {}).items()
    )
    return dataclasses.replace(
        model, model_class=model.model_class or qualname, instances=instances
    )


def with_instances_anywhere(models: Sequence[ModelResult], held: Held) -> tuple[ModelResult, ...]:
    """``models`` (one file's results) with the instances that any model of a whole run
    built with real arguments holds (``held``), for the classes measured nowhere else: a
    folder's summary built every file's models, so a block gets them wherever they are,
    not only in the few users its own file's analysis builds (timm's ``CondConv2d``, held
    by EfficientNet variants its file's users leave out)."""
    return tuple(
        with_instances(m, {m.name: m.model_class}, held)
        if m.kind == "class" and m.model_class and not m.instances and (m.error or m.example)
        else m
        for m in models
    )


def _sizes(entry: LayerEntry, model: str) -> tuple[LineSize, ...]:
    """The line's instances by size, each naming the model whose build made it."""
    if entry.sizes:
        return tuple(dataclasses.replace(size, model=model) for size in entry.sizes)
    each = entry.params // entry.count if entry.count else entry.params
    return (LineSize(entry.describe or entry.type, entry.count, each, model),)


def _with_other_builds(
    entry: LayerEntry, model: ModelResult, others: Sequence[tuple[LayerEntry, ModelResult]]
) -> LayerEntry:
    """``entry`` as ``model`` built it, with the sizes (and calls) that other builds with
    real arguments made on the same line and ``model``'s did not: a block that ``Small``
    builds with ``dim=8`` and ``Big`` with ``dim=64`` shows both sizes on its lines."""
    sizes = list(_sizes(entry, model.name))
    calls = list(entry.calls)
    seen = {(s.describe, s.params) for s in sizes}
    merged: list[str] = []
    for other, built in others:
        new = [s for s in _sizes(other, built.name) if (s.describe, s.params) not in seen]
        if not new:
            continue
        sizes += new
        seen |= {(s.describe, s.params) for s in new}
        calls += [
            c
            for c in other.calls
            if (c.inputs, c.output) not in {(k.inputs, k.output) for k in calls}
        ]
        merged.append(built.name)
    if not merged:
        return entry
    return dataclasses.replace(
        entry, sizes=tuple(sizes), calls=tuple(calls), merged_from=tuple(merged)
    )


def lines_of(path: str, models: list[ModelResult], workspace: Workspace) -> dict[int, LayerEntry]:
    """Figures per line of ``path``, from the builds that reached it: one with real arguments
    before one with example arguments (``Residual(channels=3)``, which no code of the user's
    makes, never paints a line that ``TinyResNet()`` reached); among those, the model whose
    class encloses the line, else the first model (the file's own come first) that has it,
    with the sizes the other real builds made there added. Each entry says which model
    measured it, and whether that was an example build."""
    spans = {c.name: (c.line, c.end_line) for c in workspace.models_in(path)}
    reached: dict[int, list[tuple[tuple[bool, bool], LayerEntry, ModelResult]]] = {}
    for model in models:
        span = spans.get(model.name) if model.file == path else None
        for entry in model.layers:
            if entry.file != path:
                continue
            inside = span is not None and span[0] <= entry.line <= span[1]
            reached.setdefault(entry.line, []).append(((not model.example, inside), entry, model))
    chosen: dict[int, LayerEntry] = {}
    for line, builds in sorted(reached.items()):
        _, entry, model = max(builds, key=lambda b: b[0])  # the first of the best
        if not model.example:
            others = [(e, m) for _, e, m in builds if m is not model and not m.example]
            entry = _with_other_builds(entry, model, others)
        chosen[line] = dataclasses.replace(entry, model=model.name, example=model.example)
    return chosen
