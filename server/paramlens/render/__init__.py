"""Turn results into text: one pure ``render_*`` function per output.

Used by both the CLI and the language server, so a lens in the editor and a line
of ``paramlens annotate`` always agree. Numbers: exact with thousands separators
below 10 M, abbreviated above (``124.4M``, ``70.55B``) in lenses; hovers and
tables always show them exactly. Sizes use 1 MB = 2**20 bytes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.notebook import NotebookSource, split_lines
from ..analysis.reading import relative_path
from ..worker import protocol
from ..worker.protocol import Call, ForwardInfo, Instance, LayerEntry, LineSize, ModelResult
from . import memory
from .formatting import (
    EXACT_BELOW,
    OPTIMIZER_NAMES,
    SEP,
    format_bytes,
    format_count,
    format_macs,
    format_shape,
    share,
)

__all__ = [
    "EXACT_BELOW",
    "SEP",
    "Format",
    "format_bytes",
    "format_count",
    "format_macs",
    "format_shape",
    "memory",
    "share",
]


# (file, 1-based line) -> (cell number, line in the cell) for lines of a notebook, else None
CellLocator = Callable[[str, int], "tuple[int, int] | None"]


def no_cells(file: str, line: int) -> tuple[int, int] | None:
    return None


def notebook_cells(notebooks: Mapping[str, NotebookSource]) -> CellLocator:
    """The :data:`CellLocator` of these notebooks, by path."""

    def locate(file: str, line: int) -> tuple[int, int] | None:
        notebook = notebooks.get(file)
        return notebook.locate(line) if notebook is not None else None

    return locate


def render_location(file: str, line: int, name: str, cells: CellLocator = no_cells) -> str:
    """``name:line``, or in a notebook ``name:In[cell]:line`` (the line within the cell)."""
    where = cells(file, line)
    return f"{name}:{line}" if where is None else f"{name}:In[{where[0]}]:{where[1]}"


def declared_in_cell(message: str, line: int, where: tuple[int, int] | None) -> str:
    """A forward() failure's message with its ``(declared at line N)``, when line ``line``
    is in a notebook (``where``: its cell and line there), said as the cell's line
    (``In[2]:7``): the module's line numbers mean nothing to the notebook's reader."""
    if where is None:
        return message
    return message.replace(f"(declared at line {line})", f"(declared at In[{where[0]}]:{where[1]})")


class Format(enum.Enum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"


def layer_label(entry: LayerEntry) -> str:
    """``Linear(784 -> 512)`` for one instance, ``12 x Block`` for many."""
    label = entry.describe or entry.type
    return f"{entry.count} x {label}" if entry.count > 1 else label


def layer_marks(entry: LayerEntry, exact: bool = False) -> list[str]:
    """What a line's figure alone would hide: frozen parameters, weights tied elsewhere."""
    count = (lambda n: f"{n:,}") if exact else format_count
    marks = []
    frozen = entry.params - entry.trainable
    if entry.params and frozen == entry.params:
        marks.append("frozen")
    elif frozen > 0:
        marks.append(f"{count(frozen)} frozen")
    if entry.tied:
        where = ", ".join(
            f"line {line}" if file == entry.file else f"{Path(file).name}:{line}"
            for file, line in entry.tied
        )
        shared = "" if entry.shared == entry.params else f"{count(entry.shared)} "
        marks.append(f"{shared}tied with {where}, counted there")
    return marks


def _with_marks(text: str, entry: LayerEntry) -> str:
    marks = layer_marks(entry)
    return f"{text} ({'; '.join(marks)})" if marks else text


def calls_text(calls: Sequence[Call]) -> str:
    """``→ [1, 512]``; a layer called several times: ``→ [1, 64]`` and the count of calls
    (x12), or each distinct output with its count."""
    if not calls:
        return ""
    outputs: dict[str, int] = {}
    for call in calls:
        outputs[call.output] = outputs.get(call.output, 0) + call.count
    times = "\N{MULTIPLICATION SIGN}"
    shown = [f"{out} {times}{n}" if n > 1 else out for out, n in list(outputs.items())[:2]]
    more = f" | +{len(outputs) - 2} more" if len(outputs) > 2 else ""
    return "→ " + " | ".join(shown) + more


EXAMPLE_SIZES = "example sizes"


def _size_label(size: LineSize) -> str:
    return f"{size.count} x {size.describe}" if size.count > 1 else size.describe


def _parameter_text(entry: LayerEntry, sep: str) -> str:
    """``Linear(784 -> 512) · 401,920``; instances of several sizes each with theirs
    (``Conv2d(3 -> 16, 3x3) · 432 | 2 x Conv2d(16 -> 16, 3x3) · 4,608 | +2 more sizes``),
    with the marks (frozen, tied) after."""
    if not entry.sizes:
        text = layer_label(entry)
        return (
            _with_marks(f"{text}{sep}{format_count(entry.params)}", entry) if entry.params else text
        )
    shown = [
        f"{_size_label(size)}{sep}{format_count(size.count * size.params)}"
        for size in entry.sizes[:2]
    ]
    more = len(entry.sizes) - 2
    text = " | ".join(shown) + (
        f" | +{more} more size{'s' if more > 1 else ''}" if more > 0 else ""
    )
    return _with_marks(text, entry) if entry.params else text


def layer_figures(entry: LayerEntry, sep: str = SEP) -> str:
    """``Linear(784 -> 512) · 401,920 · → [1, 512]``; a layer without parameters shows its
    output alone: ``ReLU · → [1, 512]``. Figures from an example build (no build with real
    arguments reached the line) say so: ``· example sizes``."""
    text = _parameter_text(entry, sep)
    if entry.calls:
        text += f"{sep}{calls_text(entry.calls)}"
    return f"{text}{SEP}{EXAMPLE_SIZES}" if entry.example else text


def has_figures(entry: LayerEntry) -> bool:
    """A line worth a lens: it holds parameters, or forward() called what it created."""
    return bool(entry.params or entry.calls)


def render_layer_lens(entry: LayerEntry, stale: bool = False) -> str:
    return layer_figures(entry) + (" (stale)" if stale else "")


def training_text(model: ModelResult) -> str:
    """``train ≈ 10.2 MB (float32, AdamW)``: one training step's memory at that input
    (``float32 + bf16 autocast`` under mixed precision)."""
    forward = model.forward
    if forward is None or not forward.train_bytes:
        return ""
    dtypes = "/".join(model.dtypes) or "-"
    if forward.precision:
        dtypes += f" + {forward.precision} autocast"
    optimizer = OPTIMIZER_NAMES.get(forward.optimizer, "no optimizer")
    return f"train ≈ {format_bytes(forward.train_bytes)} ({dtypes}, {optimizer})"


STEP_PENDING = "peak…"  # a staged result: the training step's peak is on its way


def memory_text(model: ModelResult) -> str:
    """The class line's training memory: the simulated step's peak (and fit, with a card),
    else the old sum estimate (``train ≈ …``); while the step runs, that it is coming."""
    forward = model.forward
    if forward is not None and forward.step_pending and forward.error is None:
        return STEP_PENDING
    if forward is not None and forward.step is not None and forward.error is None:
        return memory.step_lens(forward.step)
    return training_text(model)


def forward_text(forward: ForwardInfo | None) -> str:
    """``11.99M mult-adds @ [1, 1, 28, 28] (guessed input)``, or why forward() failed."""
    if forward is None:
        return ""
    if forward.error is not None and not forward.code_at_fault():
        return "no shapes: the guessed input does not fit (hover to pin one)"
    if forward.error is not None:
        return "forward() failed (see problems)" if forward.input else ""
    guessed = " (guessed input)" if forward.guessed else ""
    return f"{format_macs(forward.macs)} mult-adds @ {forward.input_shape}{guessed}"


def input_hint(model: ModelResult) -> list[str]:
    """Markdown lines: which input forward() ran with, and how to pin one."""
    forward = model.forward
    if forward is None or not forward.input:
        return [
            "No example input for forward(): add one to `pyproject.toml` for shapes:",
            "```toml",
            "[tool.paramlens.inputs]",
            f'{model.name} = "torch.randn(1, ...)"',
            "```",
        ]
    lines = [f"Input `{forward.input}` ({forward.input_source}) → output `{forward.output_shape}`"]
    if forward.error is not None:
        lines = [f"Input `{forward.input}` ({forward.input_source}): {forward.error.message}"]
    if forward.note:
        lines += ["", f"*{forward.note}*"]
    if forward.guessed:
        lines += [
            "",
            "The input is a guess; pin it in `pyproject.toml`:",
            "```toml",
            "[tool.paramlens.inputs]",
            f'{model.name} = "{forward.input}"',
            "```",
        ]
    return lines


def configurations(model: ModelResult, models: Iterable[ModelResult]) -> list[ModelResult]:
    """The factory functions (``resnet18``...) that built ``model``'s class."""
    if model.kind != "class" or not model.model_class:
        return []
    return [
        m
        for m in models
        if m.kind in ("factory", "config")
        and m.error is None
        and m.model_class == model.model_class
    ]


def measured_elsewhere(model: ModelResult, models: Iterable[ModelResult]) -> bool:
    """A class that could not be built alone but has figures from factories or instances."""
    return bool(model.instances or configurations(model, models))


def _class_name(qualname: str) -> str:
    return qualname.rpartition(".")[2]


def _display_name(model: ModelResult) -> str:
    """``resnet18 → ResNet`` for a factory, the class name otherwise."""
    if model.kind == "factory" and model.model_class:
        return f"{model.name} → {_class_name(model.model_class)}"
    return model.name


def _instances_lens(model: ModelResult) -> str:
    """``Block · 7.1M each · 12 in GPT``: what a class weighs where it was measured."""
    first = model.instances[0]
    parts = [model.name, f"{format_count(first.params)} each", f"{first.count} in {first.model}"]
    sizes = len({i.params for i in model.instances}) - 1
    models_ = len({i.model for i in model.instances}) - 1
    if sizes:
        parts.append(f"{sizes} other size{'s' if sizes > 1 else ''}")
    if models_:
        parts.append(f"in {models_} more model{'s' if models_ > 1 else ''}")
    return SEP.join(parts)


def _example_args(model: ModelResult) -> str:
    """``dim=32, heads=4`` out of ``Block(dim=32, heads=4)``."""
    return model.ctor.partition("(")[2].rpartition(")")[0]


def arguments_text(model: ModelResult) -> str:
    """Where the arguments of a model's figures came from, when that is not the plain
    reading of its code: example sizes, a config method, a script's line, a config file, a
    call with literal arguments, a documentation example."""
    kind = model.source_kind
    if kind == protocol.SOURCE_CONFIG_METHOD:
        return f"from {model.source}"
    if kind == protocol.SOURCE_SCRIPT:
        return f"as built at {model.source}"
    if kind == protocol.SOURCE_CALL_SITE:  # a block's arguments, from a call of it
        return f"as called at {model.source}"
    if kind == protocol.SOURCE_CONFIG_FILE:
        return f"from {model.source}"
    if kind == protocol.SOURCE_DOC:
        return f"as in the example at {model.source}"
    if model.example:
        return f"with example arguments {_example_args(model)}"
    return ""


SHAPES_PENDING = "shapes…"


def render_model_lens(
    model: ModelResult,
    stale: bool = False,
    models: Sequence[ModelResult] = (),
    shapes_pending: bool = False,
) -> str:
    """A class's totals; a factory's with its class; for a class that needs arguments,
    its factory configurations or what its instances weigh in the models built. With
    ``shapes_pending``, a built class says that forward()'s figures are on their way."""
    suffix = " (stale)" if stale else ""
    if shapes_pending and model.error is None and model.forward is None:
        suffix = SEP + SHAPES_PENDING + suffix
    configs = configurations(model, models)
    if model.error is not None:
        if model.error.kind in ("needs-args", "exception") and configs:
            shown = [f"{c.name} {format_count(c.total_params)}" for c in configs[:3]]
            more = [f"+{len(configs) - 3} more"] if len(configs) > 3 else []
            return SEP.join([model.name, *shown, *more]) + suffix
        if model.error.kind == "needs-args" and model.instances:
            return _instances_lens(model) + suffix
        if model.error.kind == "needs-args":
            return f"{model.name}{SEP}needs constructor arguments (see problems){suffix}"
        return f"{model.name}{SEP}cannot build: {model.error.message}{suffix}"
    if model.example and model.instances:  # measured for real: better than a guess
        return _instances_lens(model) + suffix
    parts = [
        _display_name(model),
        f"{format_count(model.total_params)} params",
        f"{format_count(model.trainable_params)} trainable",
        format_bytes(model.param_bytes),
    ]
    if arguments_text(model):
        parts.append(arguments_text(model))
    if forward_text(model.forward):
        parts.append(forward_text(model.forward))
    if memory_text(model):
        parts.append(memory_text(model))
    parts += configurations_text(configs)
    return SEP.join(parts) + suffix


def configurations_text(configs: Sequence[ModelResult]) -> list[str]:
    """A built class's other constructors: how many factories, and its config files by
    name (``model/mnist.yaml (net) 68.0K``: real arguments, worth their figure)."""
    factories = [c for c in configs if c.kind == "factory"]
    files = [c for c in configs if c.kind == "config"]
    parts = []
    if factories:
        plural = "s" if len(factories) > 1 else ""
        parts.append(f"{len(factories)} factory configuration{plural}")
    parts += [f"{c.name} {format_count(c.total_params)}" for c in files[:2]]
    if len(files) > 2:
        parts.append(f"+{len(files) - 2} more configs")
    return parts


def render_totals(model: ModelResult, models: Sequence[ModelResult] = ()) -> str:
    """Every total of a model on one line (the CLI's line above the class)."""
    if (model.error is not None or model.example) and measured_elsewhere(model, models):
        return render_model_lens(model, models=models)
    if model.error is not None:
        return f"{model.name}: cannot build: {model.error.message}"
    dtypes = "/".join(model.dtypes) or "no parameters"
    text = (
        f"{_display_name(model)}: {model.total_params:,} params"
        f"{SEP}{model.trainable_params:,} trainable"
        f"{SEP}{model.non_trainable_params:,} non-trainable"
        f"{SEP}{model.buffer_numel:,} buffer values"
        f"{SEP}{format_bytes(model.param_bytes)} ({dtypes})"
    )
    if model.device != "meta":
        text += f"{SEP}built on {model.device}"
    if arguments_text(model):
        text += f"{SEP}{arguments_text(model)}"
    if forward_text(model.forward):
        text += f"{SEP}{forward_text(model.forward)}"
    if memory_text(model):
        text += f"{SEP}{memory_text(model)}"
    files = [c for c in configurations(model, models) if c.kind == "config"]
    return SEP.join([text, *configurations_text(files)])


# -- annotate -------------------------------------------------------------------


def render_annotated(
    source: str, models: Iterable[ModelResult], lines: Mapping[int, LayerEntry]
) -> str:
    """The source with totals above each class and figures at the end of layer lines."""
    models = list(models)
    text_lines = source.splitlines()
    width = min(max((len(t) for t in text_lines), default=0) + 2, 88)
    annotate = _Annotator(models, lines, width)
    number_width = len(str(len(text_lines)))
    out = [
        row
        for number, text in enumerate(text_lines, start=1)
        for row in annotate(number, f"{number:>{number_width}}", text)
    ]
    return "\n".join(out) + "\n"


def render_annotated_notebook(
    notebook: NotebookSource,
    cells: Sequence[str],
    models: Iterable[ModelResult],
    lines: Mapping[int, LayerEntry],
) -> str:
    """A notebook's code cells ``cells`` as written (magics included), each under a
    ``# In [n]`` header, its lines numbered within the cell, with the figures of
    :func:`render_annotated`; a cell left out says why."""
    models = list(models)
    cell_lines = [split_lines(text) for text in cells]
    widest = max((len(t) for each in cell_lines for t in each), default=0)
    annotate = _Annotator(models, lines, min(widest + 2, 88))
    errors = {e.cell: e for e in notebook.errors}
    out: list[str] = []
    for span, texts in zip(notebook.cells, cell_lines):
        if out:
            out.append("")
        header = f"# In [{span.number}]"
        error = errors.get(span.number)
        if error is not None:
            header += f"  (left out: {error.message} at line {error.line})"
        out.append(header)
        number_width = len(str(len(texts)))
        for offset, text in enumerate(texts):
            label = f"{offset + 1:>{number_width}}"
            out += annotate(span.first_line + offset, label, text)
    return "\n".join(out) + "\n" if out else ""


class _Annotator:
    """One source line of ``annotate``'s output (with the totals line above a class)."""

    def __init__(
        self, models: list[ModelResult], lines: Mapping[int, LayerEntry], width: int
    ) -> None:
        self.models, self.lines, self.width = models, lines, width
        # a config constructor is listed on its class, not shown at a line of its own
        self.by_class_line = {m.line: m for m in models if m.kind != "config"}
        self.inline = inline_shapes(models)

    def __call__(self, number: int, label: str, text: str) -> list[str]:
        out = []
        width = self.width
        model = self.by_class_line.get(number)
        if model is not None:
            indent = text[: len(text) - len(text.lstrip())]
            out.append(f"{'':>{len(label)}}  {indent}# {render_totals(model, self.models)}")
        entry = self.lines.get(number)
        if entry is not None and has_figures(entry):
            figures = layer_figures(entry, " ")
            # at least two spaces before the figures, as PEP 8 asks of inline comments
            padded = text.ljust(width) if len(text) + 2 <= width else f"{text.rstrip()}  "
            out.append(f"{label}  {padded}# {figures}")
        elif number in self.inline:
            padded = text.ljust(width) if len(text) + 2 <= width else f"{text.rstrip()}  "
            out.append(f"{label}  {padded}# {self.inline[number]}")
        else:
            out.append(f"{label}  {text}".rstrip())
        return out


@dataclass
class InlineShapes:
    """What one name at one position of the source was seen holding."""

    shapes: list[str]
    sources: list[str]  # "CNN with torch.randn(1, 1, 28, 28) (guessed from ...)"
    example: bool = False  # from a build with example arguments (no real build ran it)


def inline_shapes_at(
    models: Iterable[ModelResult], file: str
) -> dict[tuple[int, int, str], InlineShapes]:
    """(line, column, name) -> the shapes forward() gave that name in ``file``. Where several
    models ran the line, only the best-founded are kept: a model built with real arguments
    over one built with example arguments, a given input over a guessed one, a forward()
    that ran over one that failed half-way, then the largest model (a block's lines as the
    whole network runs them, not as the block alone ran a guess)."""
    found: dict[tuple[int, int, str], tuple[tuple[bool, bool, bool, int], InlineShapes]] = {}
    for model in models:
        forward = model.forward
        if forward is None:
            continue
        rank = (model.example, forward.guessed, forward.error is not None, -model.total_params)
        built = f"{model.ctor} ({EXAMPLE_SIZES})" if model.example else model.name
        source = f"{built} with {forward.input} ({forward.input_source})"
        for shape in forward.lines:
            if shape.file != file:
                continue
            key = (shape.line, shape.column, shape.name)
            best = found.get(key)
            if best is None or rank < best[0]:
                found[key] = best = (rank, InlineShapes([], [], model.example))
            if rank == best[0]:
                seen = best[1]
                seen.shapes += [s for s in shape.shapes if s not in seen.shapes]
                if source not in seen.sources:
                    seen.sources.append(source)
    return {key: shapes for key, (_, shapes) in found.items()}


def inline_shapes(models: Iterable[ModelResult]) -> dict[int, str]:
    """Line -> ``x: [1, 64, 12, 12]`` for the lines of forward() in the models' own file;
    shapes only a build with example arguments gave end with ``· example sizes``."""
    models = list(models)
    by_line: dict[int, list[str]] = {}
    example: set[int] = set()
    for file in dict.fromkeys(m.file for m in models):
        for (line, _, name), seen in sorted(inline_shapes_at(models, file).items()):
            by_line.setdefault(line, []).append(f"{name}: {' | '.join(seen.shapes)}")
            if seen.example:
                example.add(line)
    return {
        line: ", ".join(names) + (f"{SEP}{EXAMPLE_SIZES}" if line in example else "")
        for line, names in by_line.items()
    }


# -- summary table --------------------------------------------------------------


@dataclass(frozen=True)
class _SummaryRow:
    """One row of the summary table: a module, or a parameter registered directly on a
    module that has children (a leaf module's parameters are its own row's shapes)."""

    depth: int
    label: str  # "Linear: 2-1", "in_proj_weight (Parameter)"
    params: int  # always everything under the row: the module's subtree, or the tensor
    shapes: str  # the tensors registered on the row itself
    trainable: str
    file: str | None
    line: int | None
    input_shape: str = ""  # forward() with an example input: the module's first call
    output_shape: str = ""
    macs: int = 0


def _summary_rows(model: ModelResult, depth: int) -> list[_SummaryRow]:
    """Rows down to ``depth``, numbered ``depth-idx`` as torchinfo does (modules only)."""
    sites = {p.name: (e.file, e.line) for e in model.layers for p in e.parameters}
    counters: dict[int, int] = {}
    shown = []
    for row in model.tree:
        if row.depth > depth:
            continue
        counters[row.depth] = counters.get(row.depth, 0) + 1
        index = "" if row.depth == 0 else f": {row.depth}-{counters[row.depth]}"
        separate = not row.leaf and len(row.own_names) == len(row.own_shapes)
        shapes = () if separate else row.own_shapes
        label = f"{row.type}{index}"
        shape_text = ", ".join(format_shape(s) for s in shapes) or "--"
        shown.append(
            _SummaryRow(
                row.depth,
                label,
                row.params,
                shape_text,
                row.trainable,
                row.file,
                row.line,
                row.input_shape,
                row.output_shape,
                row.macs,
            )
        )
        if not separate or row.depth >= depth:
            continue
        flags = row.own_trainable if len(row.own_trainable) == len(row.own_names) else ()
        for i, (name, shape) in enumerate(zip(row.own_names, row.own_shapes)):
            full = f"{row.path}.{name}" if row.path else name
            file, line = sites.get(full, (None, None))
            numel = 1
            for d in shape:
                numel *= d
            shown.append(
                _SummaryRow(
                    row.depth + 1,
                    f"{name} (Parameter)",
                    numel,
                    format_shape(shape),
                    str(flags[i]) if flags else "--",
                    file,
                    line,
                )
            )
    return shown


SUMMARY_HEADERS = (
    "Layer (type:depth-idx)",
    "Param # (with children)",
    "Own param shapes",
    "Trainable",
    "Line",
)


def _location(row: _SummaryRow, root: Path | None, cells: CellLocator) -> str:
    if row.line is None or row.file is None:
        return ""
    name = Path(row.file).name if root is None else relative_path(row.file, root)
    return render_location(row.file, row.line, name, cells)


def _ran_forward(model: ModelResult) -> bool:
    return model.forward is not None and model.forward.error is None and bool(model.forward.input)


def _columns(
    model: ModelResult, row: _SummaryRow, root: Path | None, cells: CellLocator
) -> tuple[str, ...]:
    """One row's cells, in the order of :func:`_headers`."""
    params = f"{row.params:,}" if row.params else "--"
    where = _location(row, root, cells)
    if not _ran_forward(model):
        return (row.label, params, row.shapes, row.trainable, where)
    macs = f"{row.macs:,}" if row.macs else "--"
    shapes_in, shapes_out = row.input_shape or "--", row.output_shape or "--"
    return (row.label, shapes_in, shapes_out, params, macs, row.shapes, row.trainable, where)


def _headers(model: ModelResult) -> tuple[str, ...]:
    if not _ran_forward(model):
        return SUMMARY_HEADERS
    first, params, *rest = SUMMARY_HEADERS
    return (first, "Input Shape", "Output Shape", params, "Mult-Adds", *rest)


def _forward_footer(model: ModelResult) -> list[str]:
    forward = model.forward
    if forward is None or not forward.input:
        return []
    lines = [f"Input: {forward.input}  ({forward.input_source})"]
    if forward.note:
        lines.append(f"Note: {forward.note}")
    if forward.error is not None:
        where = f"line {forward.error.line}: " if forward.error.line else ""
        return [*lines, f"forward() failed: {where}{forward.error.message}"]
    lines += [
        f"Output: {forward.output_shape}",
        f"Total mult-adds: {format_macs(forward.macs)} ({forward.macs:,})",
    ]
    if forward.train_bytes:
        autocast = f" (under {forward.precision} autocast)" if forward.precision else ""
        lines.append(f"Saved for backward: {format_bytes(forward.activation_bytes)}{autocast}")
    return lines + memory.summary_lines(forward)


def _footer(model: ModelResult) -> list[str]:
    return [
        f"Total params: {model.total_params:,}",
        f"Trainable params: {model.trainable_params:,}",
        f"Non-trainable params: {model.non_trainable_params:,}",
        f"Buffers: {model.buffer_numel:,} values ({format_bytes(model.buffer_bytes)})",
        f"Params size: {format_bytes(model.param_bytes)} ({'/'.join(model.dtypes) or '-'})",
        f"Built on: {model.device}" + (f"  ({'; '.join(model.notes)})" if model.notes else ""),
        *_forward_footer(model),
    ]


def render_summary_table(
    model: ModelResult, depth: int = 3, root: Path | None = None, cells: CellLocator = no_cells
) -> str:
    """A torchinfo-style table: tree with depth-idx, Param #, shapes, Trainable, line.

    Param # is always everything under the row (a module with its children, as torchinfo
    counts); the shapes are the tensors registered on the row itself. Parameters registered
    directly on a module that has children get rows of their own, so no row mixes the two."""
    if model.error is not None:
        return render_model_error(model, root, cells)
    rows = []
    for row in _summary_rows(model, depth):
        branch = "" if row.depth == 0 else "│    " * (row.depth - 1) + "├─"
        label, *rest = _columns(model, row, root, cells)
        rows.append((f"{branch}{label}", *rest))
    headers = _headers(model)
    widths = [max([len(h), *(len(c[i]) for c in rows)]) + 3 for i, h in enumerate(headers)]
    own = headers.index("Own param shapes")
    widths[own] = min(widths[own], 44)

    def line(values: Sequence[str]) -> str:
        parts = []
        for value, width in zip(values, widths):
            value = value if len(value) < width else value[: width - 4] + "..."
            parts.append(value.ljust(width))
        return "".join(parts).rstrip()

    rule = "=" * sum(widths)
    out = [rule, line(headers), rule, *(line(c) for c in rows), rule, *_footer(model), rule]
    return "\n".join(out) + "\n"


def render_model_error(
    model: ModelResult, root: Path | None = None, cells: CellLocator = no_cells
) -> str:
    assert model.error is not None
    where = ""
    if model.error.file:
        file, line = model.error.file, model.error.line
        name = file if root is None else relative_path(file, root)
        where = f"{render_location(file, line, name, cells)}: " if line else f"{name}: "
    text = f"{where}{model.name}: {model.error.message}\n"
    if model.error.kind == "needs-args" and model.error.traceback:
        text += "Add to pyproject.toml:\n" + model.error.traceback + "\n"
    return text


def render_summary_markdown(
    model: ModelResult, depth: int = 3, root: Path | None = None, cells: CellLocator = no_cells
) -> str:
    if model.error is not None:
        return render_model_error(model, root, cells)
    headers = _headers(model)
    align = {"Param # (with children)": "--:", "Mult-Adds": "--:"}
    lines = [
        f"### {model.name}",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(align.get(h, "---") for h in headers) + "|",
    ]
    for row in _summary_rows(model, depth):
        label, *rest = _columns(model, row, root, cells)
        lines.append("| " + " | ".join(["&nbsp;&nbsp;" * row.depth + label, *rest]) + " |")
    lines += ["", *(f"- {item}" for item in _footer(model))]
    return "\n".join(lines) + "\n"


# -- hovers ---------------------------------------------------------------------


def render_line_hover(entry: LayerEntry, model: ModelResult | None, limit: int = 40) -> str:
    """Markdown: the line's parameters (exact), instances, and share of the model."""
    title = f"**{layer_label(entry)}**: {entry.params:,} parameters"
    if entry.merged_from:  # sizes from several models: no one total
        builds = ", ".join((entry.model, *entry.merged_from))
        title = f"**{entry.type}**: {len(entry.sizes)} sizes, as built in {builds}"
    elif entry.sizes:
        title += f" ({entry.count} instances of {len(entry.sizes)} sizes)"
    elif entry.count > 1:
        title += f" ({entry.count} instances, {entry.params // entry.count:,} each)"
    lines = [title, ""]
    marks = layer_marks(entry, exact=True)
    if marks:
        lines += [f"*{'; '.join(marks)}*", ""]
    if entry.example:
        lines += [
            f"*{EXAMPLE_SIZES}: measured in {entry.model} built with example arguments; "
            "no model built with real arguments reaches this line*",
            "",
        ]
    if model is not None and model.error is None and entry.model in ("", model.name):
        lines += [
            f"{share(entry.params, model.total_params)} of {model.name} ({model.total_params:,})",
            "",
        ]
    elif entry.model and not entry.example:
        lines += [f"Measured inside {entry.model}.", ""]
    if entry.merged_from:
        lines += ["| size | instances | params each | built in |", "|---|--:|--:|---|"]
        lines += [f"| `{s.describe}` | {s.count} | {s.params:,} | {s.model} |" for s in entry.sizes]
        lines += ["", f"Parameters as built in {entry.model}:", ""]
    elif entry.sizes:
        lines += ["| size | instances | params each |", "|---|--:|--:|"]
        lines += [f"| `{s.describe}` | {s.count} | {s.params:,} |" for s in entry.sizes]
        lines.append("")
    if entry.parameters:
        lines += ["| name | shape | numel | trainable | dtype |", "|---|---|--:|---|---|"]
        for p in entry.parameters[:limit]:
            lines.append(
                f"| `{p.name}` | `{format_shape(p.shape)}` | {p.numel:,} | "
                f"{'yes' if p.trainable else 'no'} | {p.dtype} |"
            )
        if len(entry.parameters) > limit:
            lines.append(f"| ... {len(entry.parameters) - limit} more | | | | |")
    else:
        lines.append("No parameters.")
    if entry.calls:
        lines += [
            "",
            "| calls | input | output | mult-adds | saved for backward |",
            "|--:|---|---|--:|--:|",
        ]
        lines += [
            f"| {c.count} | `{c.inputs}` | `{c.output}` | {c.macs:,} | "
            f"{format_bytes(c.saved_bytes)} |"
            for c in entry.calls
        ]
    return "\n".join(lines)


def _measured_tables(model: ModelResult, models: Sequence[ModelResult]) -> list[str]:
    lines = []
    configs = configurations(model, models)
    factories = [c for c in configs if c.kind == "factory"]
    if factories:
        lines += ["", "| factory function | params | trainable | size |", "|---|--:|--:|--:|"]
        lines += [
            f"| `{c.ctor}` | {c.total_params:,} | {c.trainable_params:,} | "
            f"{format_bytes(c.param_bytes)} |"
            for c in factories
        ]
    files = [c for c in configs if c.kind == "config"]
    if files:
        lines += [
            "",
            "| configuration | params | trainable | size | from |",
            "|---|--:|--:|--:|---|",
        ]
        lines += [
            f"| {c.name} | {c.total_params:,} | {c.trainable_params:,} | "
            f"{format_bytes(c.param_bytes)} | `{c.source}` |"
            for c in files
        ]
    if model.instances:
        by_size: dict[int, list[Instance]] = {}
        for instance in model.instances:
            by_size.setdefault(instance.params, []).append(instance)
        lines += ["", "| params each | instances | measured inside |", "|--:|--:|---|"]
        for params, group in sorted(by_size.items()):
            names = [f"{i.model} ({i.count})" for i in group[:4]]
            if len(group) > 4:
                names.append(f"+{len(group) - 4} more models")
            count = sum(i.count for i in group)
            lines.append(f"| {params:,} | {count} | {', '.join(names)} |")
    return lines


_REAL_SOURCES = frozenset(
    {
        protocol.SOURCE_CONFIG_METHOD,
        protocol.SOURCE_SCRIPT,
        protocol.SOURCE_CONFIG_FILE,
        protocol.SOURCE_CALL_SITE,
        protocol.SOURCE_DOC,
    }
)


def render_class_hover(model: ModelResult, models: Sequence[ModelResult] = ()) -> str:
    if model.error is not None:
        if model.error.kind == "needs-args" and measured_elsewhere(model, models):
            text = f"**{model.name}** needs constructor arguments; measured as:"
            return "\n".join([text, *_measured_tables(model, models)])
        text = f"**{model.name}** cannot be built: {model.error.message}"
        if model.error.kind == "needs-args" and model.error.traceback:
            text += f"\n\nAdd to `pyproject.toml`:\n```toml\n{model.error.traceback}\n```"
        return "\n".join([text, *_measured_tables(model, models)])
    lines = [f"**{_display_name(model)}**: {model.total_params:,} parameters", ""]
    if model.source_kind in _REAL_SOURCES:
        lines += [f"Built with `{model.ctor}`, {arguments_text(model)}.", ""]
        if model.example:
            lines += ["Some of its arguments are examples: the figures are exact for these.", ""]
    elif model.example:
        lines += [
            f"Built with example arguments `{model.ctor}`, guessed from the parameter names;"
            " the figures are exact for these. Pin real ones in `pyproject.toml`:",
            "```toml",
            "[tool.paramlens.models]",
            f'{model.name} = "{model.name}(...)"',
            "```",
            "",
        ]
    lines += [
        f"- trainable: {model.trainable_params:,}",
        f"- non-trainable: {model.non_trainable_params:,}",
        f"- buffers: {model.buffer_numel:,} values",
        f"- size: {format_bytes(model.param_bytes)} ({'/'.join(model.dtypes) or '-'})",
    ]
    if _ran_forward(model) and model.forward is not None:
        lines.append(f"- mult-adds: {model.forward.macs:,}")
        if model.forward.step_pending:
            lines.append("- training: the step's peak is being simulated")
        elif model.forward.step is not None:
            lines.append(f"- training: {memory.step_lens(model.forward.step)} (below)")
        elif model.forward.train_bytes:
            lines.append(
                f"- training: {training_text(model).removeprefix('train ')}: parameters, "
                f"gradients, optimizer state and {format_bytes(model.forward.activation_bytes)} "
                "of activations saved for backward"
            )
    lines += [
        "",
        *input_hint(model),
        "",
        "| child | type | params | share |",
        "|---|---|--:|--:|",
    ]
    for row in model.tree:
        if row.depth == 1:
            lines.append(
                f"| `{row.path}` | {row.type} | {row.params:,} | "
                f"{share(row.params, model.total_params)} |"
            )
    return "\n".join(lines + memory.step_hover(model) + _measured_tables(model, models))


# -- JSON -----------------------------------------------------------------------


def model_json(model: ModelResult) -> dict[str, Any]:
    return dict(protocol.to_json(model))


def render_json(
    models: Iterable[ModelResult],
    extra: Mapping[str, Any] | None = None,
    indent: int | None = None,
    cells: CellLocator = no_cells,
) -> str:
    """The ``--format json`` document, ``{"models": [...]}`` with 1-based lines, encoded by
    json's C encoder (dataclasses through :func:`~.protocol.json_default`): converting it
    to plain values in Python first took a third of a warm folder summary's time."""
    document = {"version": 1, **(extra or {}), "models": list(models)}
    if cells is not no_cells:  # notebooks: plain values, each line with its cell's
        document = _with_cells(
            json.loads(json.dumps(document, default=protocol.json_default)), cells
        )
    return json.dumps(document, indent=indent, default=protocol.json_default)


def _with_cells(value: Any, cells: CellLocator) -> Any:
    """Every object with a ``file`` and a ``line`` in a notebook gains ``cell`` (the code
    cell's number, as in ``# In [n]``) and ``cell_line`` (the line within it), after
    ``line``."""
    if isinstance(value, list):
        return [_with_cells(v, cells) for v in value]
    if not isinstance(value, dict):
        return value
    where = None
    file, line = value.get("file"), value.get("line")
    if isinstance(file, str) and isinstance(line, int):
        where = cells(file, line)
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = _with_cells(item, cells)
        if key == "line" and where is not None:
            out["cell"], out["cell_line"] = where
    return out
