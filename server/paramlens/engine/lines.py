"""Per-line figures and instances, merged from the models built for a file and for the
files that use its classes. Pure; imports the analysis workspace and the worker's
protocol."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

from ..analysis.workspace import Workspace
from ..worker.protocol import Instance, LayerEntry, ModelResult


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
    measured = {m.model_class for m in models if m.error is None and not m.example}
    measured |= {qualtype for m in models for qualtype, _, _ in _contents(m)}
    return {
        m.name
        for m in models
        if m.kind == "class"
        and (m.error is not None or m.example)  # example arguments: real instances are better
        and qualnames.get(m.name) not in measured
    }


def with_instances(
    model: ModelResult, qualnames: Mapping[str, str], built: Sequence[ModelResult]
) -> ModelResult:
    """A class result with its qualified name and the instances measured in other models."""
    qualname = qualnames.get(model.name)
    if model.kind != "class" or qualname is None:
        return model
    groups: dict[tuple[str, str, int], int] = {}
    for other in built:
        if other.error is not None or (other.kind == "class" and other.model_class == qualname):
            continue
        for qualtype, params, count in _contents(other):
            if qualtype == qualname:
                key = (other.name, other.file, params)
                groups[key] = groups.get(key, 0) + count
    instances = tuple(
        Instance(name, file, count, params) for (name, file, params), count in groups.items()
    )
    return dataclasses.replace(
        model, model_class=model.model_class or qualname, instances=instances
    )


def lines_of(path: str, models: list[ModelResult], workspace: Workspace) -> dict[int, LayerEntry]:
    """Figures per line of ``path``, each from one build: one with real arguments before
    one with example arguments (``Residual(channels=3)``, which no code of the user's makes,
    never paints a line that ``TinyResNet()`` reached); among those, the model whose class
    encloses the line, else the first model (the file's own come first) that has it. Each
    entry says which model measured it, and whether that was an example build."""
    spans = {c.name: (c.line, c.end_line) for c in workspace.models_in(path)}
    chosen: dict[int, tuple[tuple[bool, bool], LayerEntry, ModelResult]] = {}
    for model in models:
        span = spans.get(model.name) if model.file == path else None
        for entry in model.layers:
            if entry.file != path:
                continue
            inside = span is not None and span[0] <= entry.line <= span[1]
            rank = (not model.example, inside)
            if entry.line not in chosen or rank > chosen[entry.line][0]:
                chosen[entry.line] = (rank, entry, model)
    return {
        line: dataclasses.replace(entry, model=model.name, example=model.example)
        for line, (_, entry, model) in sorted(chosen.items())
    }
