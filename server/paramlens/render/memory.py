"""One simulated training step (:class:`~paramlens.worker.protocol.StepMemory`) as text: the
class lens's ``peak … @ batch`` part, the hover's breakdown, the summary's line, and the
``paramlens memory`` table and JSON.

Pure functions of the results; imports the worker's protocol and :mod:`.formatting` only.
Sizes use 1 GB = 2**30 bytes, as the rest of the output does; a card's "24GB" is 24 GiB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..analysis.reading import relative_path
from ..worker import protocol
from ..worker.protocol import ForwardInfo, ModelResult, StepMemory
from .formatting import OPTIMIZER_NAMES, SEP, format_bytes, share

KINDS = (
    ("parameters", "parameters"),
    ("buffers", "buffers"),
    ("inputs", "inputs"),
    ("activations", "activations"),
    ("gradients", "gradients"),
    ("optimizer_state", "optimizer state"),
    ("temporaries", "temporaries"),
)
HOVER_MODULES = 5
CONTAINERS = (
    "Sequential",
    "ModuleList",
    "ModuleDict",
)  # no class to checkpoint  # the hover's table of the modules that keep the most


def format_peak(n: int) -> str:
    """``1.70 GB``: a peak to compare with a card's memory, two decimals from a GB up."""
    for unit, size in (("TB", 2**40), ("GB", 2**30)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return format_bytes(n)


def gpu_label(step: StepMemory) -> str:
    """The card as a person reads it: ``24 GB`` for a size however written, else the name
    as written (``A100-80GB``)."""
    if not step.gpu or re.fullmatch(r"[\d.\s]+[a-zA-Z]*", step.gpu.strip()):
        return f"{step.gpu_bytes / 2**30:g} GB"
    return step.gpu.strip()


def short_module(module: str, levels: int = 2) -> str:
    """``layer3.0`` out of ``layer3.0.conv1``: where a lens has room for two levels."""
    return ".".join(module.split(".")[:levels])


def where_text(step: StepMemory, levels: int | None = 2) -> str:
    """``backward, layer3`` or ``forward`` (the peak in the model's own code)."""
    if not step.module:
        return step.phase
    module = step.module if levels is None else short_module(step.module, levels)
    return f"{step.phase}, {module}"


def fit_text(step: StepMemory) -> str:
    """``fits 24 GB up to batch 212``, ``over 24 GB (fits up to batch 3)``, ``over 24 GB at
    batch 1``; "" without a card."""
    if step.fits is None or not step.gpu_bytes:
        return ""
    card = gpu_label(step)
    if step.fits:
        return f"fits {card} up to batch {step.max_batch}" if step.max_batch else f"fits {card}"
    if step.max_batch:
        return f"over {card} (fits up to batch {step.max_batch})"
    # the search found that no batch fits, or it did not run (then only this batch is known)
    batch = 1 if step.search.startswith("batch 1 does not fit") else step.batch
    return f"over {card} at batch {batch}"


_STRATEGIES = {
    "ddp": "DDP: every GPU holds all parameters, gradients and optimizer state, and the "
    "gradient buckets, one more copy of the gradients",
    "zero1": "ZeRO-1: optimizer state sharded (ZeroRedundancyOptimizer), with DDP's buckets",
    "zero2": "ZeRO-2: FSDP2 keeping parameters gathered after forward; gradients and "
    "optimizer state sharded",
    "zero3": "ZeRO-3: FSDP2; parameters, gradients and optimizer state sharded, each unit "
    "gathered for its forward and backward",
}
_STRATEGIES["fsdp"] = _STRATEGIES["zero3"].replace("ZeRO-3: FSDP2", "FSDP2 (ZeRO-3)")


def spread_text(step: StepMemory) -> str:
    """``one of 8 GPUs, ZeRO-3: ...``; "" for one GPU."""
    if step.gpus <= 1:
        return ""
    units = f" ({step.units} units and the model)" if step.units else ""
    return f"one of {step.gpus} GPUs, {_STRATEGIES.get(step.strategy, step.strategy)}{units}"


def step_lens(step: StepMemory) -> str:
    """``peak 1.70 GB @ batch 16 (backward, layer3) · fits 24 GB up to batch 212``; over
    several GPUs, ``peak 6.43 GB per GPU @ batch 8 (8 GPUs, fsdp; forward, lm_head)``."""
    if step.gpus > 1:
        where = f"{step.gpus} GPUs, {step.strategy}; {where_text(step)}"
        text = f"peak {format_peak(step.peak)} per GPU @ batch {step.batch} ({where})"
    else:
        text = f"peak {format_peak(step.peak)} @ batch {step.batch} ({where_text(step)})"
    fit = fit_text(step)
    return f"{text}{SEP}{fit}" if fit else text


def breakdown(step: StepMemory) -> list[tuple[str, int]]:
    """(kind, bytes) at the peak, in a fixed order, the kinds that hold nothing left out."""
    return [(label, getattr(step, name)) for name, label in KINDS if getattr(step, name)]


def optimizer_text(step: StepMemory) -> str:
    name = OPTIMIZER_NAMES.get(step.optimizer, "no optimizer")
    if step.optimizer in ("", "none"):
        return "no optimizer"
    if step.foreach:
        return f"{name} (foreach, as on CUDA)"
    # torch before 2.2 has no meta kernels for some foreach ops (see step.multi_tensor_works)
    return f"{name} (for-loop: this torch cannot run foreach on meta; CUDA's may peak higher)"


_OTHER_PRECISION = {"fp32": "bf16", "bf16": "bf16-pure", "fp16": "bf16", "bf16-pure": "fp32"}


def options(step: StepMemory, checkpoint_example: str = "Block") -> list[tuple[str, str, str]]:
    """(option, what the step used, the ``[tool.paramlens]`` line that changes it)."""
    checkpointed = (
        f"{step.checkpointed} module{'s' if step.checkpointed != 1 else ''} recomputed"
        if step.checkpointed
        else "none"
    )
    other_gpu = "80GB" if step.gpu_bytes == 24 * 2**30 else "24GB"
    rows = [
        ("batch", f"{step.batch}" + (f" (`{step.input}`)" if step.input else ""),
         f"batch = {max(2 * step.batch, 1)}"),
        ("optimizer", optimizer_text(step),
         'optimizer = "sgd"' if step.optimizer != "sgd" else 'optimizer = "adamw"'),
        ("precision", step.precision or "fp32",
         f'precision = "{_OTHER_PRECISION.get(step.precision, "bf16")}"'),
        ("attention", f"{step.attention} (assumed)" if step.attention else "not used",
         'attention = "math"' if step.attention != "math" else 'attention = "auto"'),
        ("checkpoint", checkpointed, f'checkpoint = ["{checkpoint_example}"]'),
        ("gpu", gpu_label(step) if step.gpu_bytes else "none", f'gpu = "{other_gpu}"'),
        ("gpus", f"{step.gpus}, {step.strategy}" if step.gpus > 1 else "1",
         'strategy = "zero3"' if step.gpus > 1 and step.strategy != "zero3" else "gpus = 8"),
    ]  # fmt: skip
    return rows


def gpu_view(step: StepMemory) -> list[str]:
    """What ``torch.cuda`` would report on a card; both figures are this simulation's."""
    if not step.gpu_allocated:
        return []
    lines = [
        f"torch.cuda.max_memory_allocated() ≈ {format_peak(step.gpu_allocated)}"
        + (
            f" (with the {format_bytes(step.gpu_workspace)} cuBLAS workspace)"
            if step.gpu_workspace
            else " (no card given: without the cuBLAS workspace)"
        )
    ]
    if step.gpu_reserved:
        lines.append(
            f"torch.cuda.max_memory_reserved() ≈ {format_peak(step.gpu_reserved)} (an estimate "
            "of the caching allocator's blocks)"
        )
    return lines


def old_sum(forward: ForwardInfo) -> str:
    """The estimate before the step was simulated, as one line: ``10.2 MB (parameters +
    gradients + AdamW state + saved activations)``; "" when there is none."""
    if not forward.train_bytes:
        return ""
    optimizer = OPTIMIZER_NAMES.get(forward.optimizer, "no optimizer")
    return (
        f"{format_bytes(forward.train_bytes)} (parameters + gradients + {optimizer} state "
        f"+ {format_bytes(forward.activation_bytes)} saved activations)"
    )


def _checkpoint_example(step: StepMemory) -> str:
    """A class worth checkpointing, for the hint: the type of the module keeping the most
    below the model itself (a repeated block, usually)."""
    nested = [m for m in step.modules if m.module and m.type not in CONTAINERS]
    return nested[0].type if nested else "Block"


# -- lens and hover -------------------------------------------------------------


def step_hover(model: ModelResult) -> list[str]:
    """Markdown lines: the peak, its breakdown, the options and how to change them, the GPU
    view, the old sum, and the modules that keep the most. [] when forward() did not run."""
    forward = model.forward
    if forward is None or forward.error is not None or not forward.input:
        return []
    step = forward.step
    if step is None:
        if not forward.step_error:
            return []
        return ["", f"*The training step could not be simulated: {forward.step_error}*"]
    lines = [
        "",
        f"**Peak training memory: {format_peak(step.peak)}** ({step.peak:,} bytes) at batch "
        f"{step.batch}, in {where_text(step, None)}",
    ]
    spread = spread_text(step)
    if spread:
        lines += ["", f"On {spread}."]
    fit = fit_text(step)
    if fit:
        lines += ["", fit[0].upper() + fit[1:] + (f" ({step.search})" if step.search else "")]
    lines += ["", "| at the peak | bytes | share |", "|---|--:|--:|"]
    lines += [
        f"| {kind} | {format_bytes(size)} | {share(size, step.peak)} |"
        for kind, size in breakdown(step)
    ]
    view = gpu_view(step)
    if view:
        lines += ["", "On a GPU:", *(f"- {line}" for line in view)]
    lines += ["", "| option | used | change in `[tool.paramlens]` |", "|---|---|---|"]
    lines += [
        f"| {name} | {used} | `{toml}` |"
        for name, used, toml in options(step, _checkpoint_example(step))
    ]
    if old_sum(forward):
        lines += ["", f"Old sum estimate: {old_sum(forward)}"]
    if step.modules:
        lines += ["", "| module | type | kept | peak |", "|---|---|--:|--:|"]
        lines += [
            f"| `{m.module or model.name}` | {m.type} | {format_bytes(m.kept)} | "
            f"{format_bytes(m.peak)} |"
            for m in step.modules[:HOVER_MODULES]
        ]
    return lines


def summary_lines(forward: ForwardInfo) -> list[str]:
    """The summary table's footer lines: the step's peak, then the old sum."""
    lines = []
    step = forward.step
    if step is not None:
        fit = fit_text(step)
        per_gpu = f" per GPU ({spread_text(step)})" if step.gpus > 1 else ""
        lines.append(
            f"Peak training memory: {format_peak(step.peak)}{per_gpu} at batch {step.batch} "
            f"({where_text(step, None)})" + (f"{SEP}{fit}" if fit else "")
        )
    elif forward.step_error:
        lines.append(f"Peak training memory: not simulated: {forward.step_error}")
    if old_sum(forward):
        lines.append(f"Old sum estimate: {old_sum(forward)}")
    return lines


# -- paramlens memory -----------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def render_memory_table(model: ModelResult, top: int = 10, root: Path | None = None) -> str:
    """``paramlens memory``: one model's training step as a plain-text report."""
    where = Path(model.file).name if root is None else relative_path(model.file, root)
    title = f"{model.name} ({where}:{model.line})"
    if model.error is not None:
        return f"{title}: cannot build: {model.error.message}\n"
    forward = model.forward
    if forward is None or not forward.input:
        return f"{title}: no example input for forward(), so no training step\n"
    if forward.error is not None:
        return f"{title}: forward() failed: {forward.error.message}\n"
    step = forward.step
    if step is None:
        lines = [
            f"{title}: the training step could not be simulated: {forward.step_error}"
            if forward.step_error
            else f"{title}: the training step was not simulated"
        ]
        if old_sum(forward):
            lines.append(f"Old sum estimate: {old_sum(forward)}")
        return "\n".join(lines) + "\n"
    lines = [
        title,
        f"Peak: {format_peak(step.peak)} ({step.peak:,} bytes) in {where_text(step, None)}",
        f"Input: {step.input} (batch {step.batch})"
        if step.input
        else f"Batch: {step.batch} (example input: {forward.input})",
        f"Optimizer: {optimizer_text(step)}{SEP}precision: {step.precision or 'fp32'}{SEP}"
        f"attention: {step.attention or 'not used'}{SEP}checkpointed: "
        + (f"{step.checkpointed} modules" if step.checkpointed else "none"),
        *([f"Spread: {spread_text(step)}"] if step.gpus > 1 else []),
        "",
    ]
    rows = [
        [kind, f"{size:,}", format_bytes(size), share(size, step.peak)]
        for kind, size in breakdown(step)
    ]
    rows.append(["total", f"{step.peak:,}", format_bytes(step.peak), share(step.peak, step.peak)])
    lines += _table(["At the peak", "Bytes", "Size", "Share"], rows, {1, 2, 3})
    lines.append("")
    lines += [f"GPU: {line}" for line in gpu_view(step)]
    fit = fit_text(step)
    if fit:
        lines.append(f"Fit: {fit}" + (f" ({step.search})" if step.search else ""))
    if old_sum(forward):
        lines.append(f"Old sum estimate: {old_sum(forward)}")
    if step.modules and top:
        lines += ["", "Modules that keep the most for backward:"]
        module_rows = [
            [m.module or "(model)", m.type, format_bytes(m.kept), format_bytes(m.peak)]
            for m in step.modules[:top]
        ]
        lines += _table(["Module", "Type", "Kept", "Peak while running"], module_rows, {2, 3})
    return "\n".join(lines) + "\n"


def memory_json(model: ModelResult) -> dict[str, Any]:
    """One model's entry in ``paramlens memory --format json``."""
    forward = model.forward
    return {
        "name": model.name,
        "file": model.file,
        "line": model.line,
        "error": model.error.message if model.error is not None else "",
        "input": forward.input if forward is not None else "",
        "step": forward.step if forward is not None else None,
        "step_error": forward.step_error if forward is not None else "",
        "train_bytes": forward.train_bytes if forward is not None else 0,
    }


def render_memory_json(
    models: Iterable[ModelResult], extra: Mapping[str, Any] | None = None, indent: int | None = None
) -> str:
    document = {"version": 1, **(extra or {}), "models": [memory_json(m) for m in models]}
    return json.dumps(document, indent=indent, default=protocol.json_default)
