"""Build one model class: construct it from its expression, measure it, run its forward().

Models are built under ``torch.device("meta")`` so no weight memory is allocated; a
constructor that reads values gets its small tensors on the CPU; a model that fails on
meta otherwise is retried on the CPU (inside the memory cap). Runs in the worker
(standard library + torch), inside a build child.
"""

from __future__ import annotations

import dataclasses
import time
import types
from collections.abc import Callable

import torch
from torch import nn

from ..forward.counters import ModuleCall
from ..layers import qualtype
from ..protocol import (
    EXAMPLE_SOURCE,
    FINAL_KINDS,
    SOURCE_CALL_SITE,
    SOURCE_DOC,
    SOURCE_SCRIPT,
    ClassSpec,
    ErrorInfo,
    ForwardInfo,
    ModelResult,
)
from .context import BuildContext
from .errors import BuildTimeout, needs_args
from .forward_pass import NEEDS_VALUES, forward_pass_within_budget
from .measure import measure, parts
from .placement import (
    SmallOnCpu,
    compiled,
    construct,
    hold_on_meta,
    init_reads_values,
    namespace_for,
)

# ways of the project's own that are tried in turn, each failure a note of the result
_PROJECT_WAYS = (SOURCE_SCRIPT, SOURCE_CALL_SITE, SOURCE_DOC)


def build_class(spec: ClassSpec, ctx: BuildContext) -> ModelResult:
    """Construct ``spec`` (see :func:`_build_class`). Example arguments guessed from
    parameter names are only a try: if the class refuses them, it needs real ones.

    With ``ctx.on_staged``, a class whose training step is simulated is also handed there
    before the step, as it will be returned but with ``forward.step_pending``."""
    failed: list[str] = []  # the script's, calls' or documentation's ways that failed, and why
    result = _build_tried(spec, ctx, failed)
    if failed and result.error is None:
        result = dataclasses.replace(result, notes=(*failed, *result.notes))
    return result


def _build_tried(spec: ClassSpec, ctx: BuildContext, failed: list[str]) -> ModelResult:
    """:func:`build_class` without the notes of the ways that failed (put in ``failed``)."""
    result = _as_built(_build_class(spec, ctx, _stage(spec, ctx)), spec)
    for ctor, source, example, kind in spec.candidates:  # the project's other ways, in order
        if result.error is None or result.error.kind in FINAL_KINDS:
            break
        if spec.source_kind in _PROJECT_WAYS:
            failed.append(f"{_tried(spec)} failed: {result.error.message}")
        spec = dataclasses.replace(
            spec, ctor=ctor, ctor_source=source, example=example, source_kind=kind
        )
        result = _as_built(_build_class(spec, ctx, _stage(spec, ctx)), spec)
    if spec.ctor_source != EXAMPLE_SOURCE and not spec.example:
        if result.error is None or result.error.kind in FINAL_KINDS:
            return result
        if spec.source_kind not in _PROJECT_WAYS or not spec.missing_args:
            return result
        # a script's model, a call or a documented example that could not be built: the
        # class still needs its arguments
        return _needs_args(result, spec, ctx, _tried(spec))
    for alternative in spec.alternatives:  # wider values, if the class refused the small ones
        if result.error is None or result.error.kind in FINAL_KINDS:
            break
        wider = dataclasses.replace(spec, ctor=alternative)
        result = _as_built(_build_class(wider, ctx, _stage(spec, ctx)), spec)
    if result.error is None or result.error.kind in FINAL_KINDS:
        return result
    return _needs_args(result, spec, ctx, "example arguments")


def _tried(spec: ClassSpec) -> str:
    """What a build of ``spec`` tried, for a note or a message."""
    if spec.source_kind == SOURCE_SCRIPT:
        return f"the model built at {spec.ctor_source}"
    if spec.source_kind == SOURCE_DOC:
        return f"the example at {spec.ctor_source}"
    if spec.source_kind == SOURCE_CALL_SITE:
        return f"the call at {spec.ctor_source}"
    return f"{spec.ctor} ({spec.ctor_source})"


def _needs_args(result: ModelResult, spec: ClassSpec, ctx: BuildContext, tried: str) -> ModelResult:
    """``result``'s error as what the user must give: the class's missing arguments, and
    why what was ``tried`` failed."""
    assert result.error is not None
    message = (
        f"{spec.name} needs constructor arguments: {', '.join(spec.missing_args)} "
        f"({tried} failed: {result.error.message})"
    )
    error = ErrorInfo(message, ctx.file, spec.line, "needs-args", spec.fix_hint)
    return dataclasses.replace(result, error=error)


def _as_built(result: ModelResult, spec: ClassSpec) -> ModelResult:
    """The result saying where its constructor's arguments came from; one built with some
    example arguments says so too."""
    result = dataclasses.replace(result, source_kind=spec.source_kind, source=spec.ctor_source)
    if result.error is None and (spec.ctor_source == EXAMPLE_SOURCE or spec.example):
        note = f"built with example arguments guessed from parameter names: {result.ctor}"
        if spec.ctor_source != EXAMPLE_SOURCE:
            note = f"built from {spec.ctor_source}: {result.ctor}"
        return dataclasses.replace(result, example=True, notes=(note, *result.notes))
    return result


Stage = Callable[[ModelResult], None] | None


def _stage(spec: ClassSpec, ctx: BuildContext) -> Stage:
    """What a build of ``spec`` hands its result to before the training step, if anything:
    ``ctx.on_staged``, with the result as :func:`build_class` would return it."""
    on_staged = ctx.on_staged
    if on_staged is None:
        return None
    return lambda result: on_staged(_as_built(result, spec))


def _build_class(spec: ClassSpec, ctx: BuildContext, stage: Stage = None) -> ModelResult:
    """Construct ``spec`` from its expression on ``ctx.device`` (meta falls back to CPU);
    its result before the training step goes to ``stage``, if given.

    A factory made only of module classes already in ``ctx.detailed`` is measured by its
    totals only (a file of 100 ``vit_*`` factories needs per-line figures for each kind
    of block once, not 100 times).
    """
    started = time.perf_counter()
    file = ctx.file
    if spec.ctor is None:
        error = ErrorInfo(
            f"{spec.name} needs constructor arguments: {', '.join(spec.missing_args)}",
            file,
            spec.line,
            "needs-args",
            spec.fix_hint,
        )
        return ModelResult.failed(spec, file, error)
    code = compiled(spec.ctor, spec)
    placed = _placed(spec, code, namespace_for(spec, ctx.namespace), ctx)
    if isinstance(placed, ModelResult):
        return placed
    model, used, notes = placed
    if not isinstance(model, nn.Module):
        message = f"TypeError: {spec.ctor} returned {type(model).__name__}, not an nn.Module"
        return ModelResult.failed(spec, file, ErrorInfo(message, file, spec.line))
    kinds = {qualtype(m) for m in model.modules()}
    detailed = ctx.detailed
    detail = detailed is None or spec.kind == "class" or not kinds <= detailed
    # an example build's blocks are not measured for real: a configuration that builds
    # them with real arguments still gives their lines (``Gate`` in the README's example)
    if detailed is not None and not (spec.ctor_source == EXAMPLE_SOURCE or spec.example):
        detailed |= kinds
    forward, calls = None, None
    measured: ModelResult | None = None  # what the stage measured: the step changes none of it

    def before_step(info: ForwardInfo, calls: dict[int, list[ModuleCall]] | None) -> None:
        nonlocal measured
        if stage is not None:  # the step is what takes longest: the rest of it now
            measured = measure(model, spec, file, ctx.recorder, detail, calls)
            pending = dataclasses.replace(info, train_bytes=0, step_pending=True)
            stage(dataclasses.replace(measured, forward=pending, device=used, notes=tuple(notes)))

    # a documentation example or a call built as a configuration is there for the blocks it
    # switches on: their parameters and lines; its forward() would cost the most of opening
    # the file (x-transformers: 44 examples, 43 calls), for shapes no lens shows
    switching = spec.kind == "config" and spec.source_kind in (SOURCE_DOC, SOURCE_CALL_SITE)
    if detail and ctx.shapes and not switching:
        forward, calls = forward_pass_within_budget(model, spec, ctx, used, before_step)
    result = measured or measure(model, spec, file, ctx.recorder, detail, calls)
    if forward is not None:
        result = dataclasses.replace(result, forward=forward)
    if not detail:
        result = dataclasses.replace(result, parts=parts(model, ctx.is_user_file))
    elapsed = (time.perf_counter() - started) * 1000
    return dataclasses.replace(result, device=used, notes=tuple(notes), build_ms=round(elapsed, 2))


def _placed(
    spec: ClassSpec, code: types.CodeType, namespace: dict[str, object], ctx: BuildContext
) -> tuple[object, str, list[str]] | ModelResult:
    """The constructed model, the device it was built on, and notes; or the failure.

    Meta first; a constructor that reads values gets its small tensors on the CPU (at once
    when an ``__init__`` of its file reads values); one whose small CPU tensors meet meta
    ones, or that fails on meta otherwise, is built on the CPU.
    """
    file = ctx.file
    small_first = ctx.device == "meta" and init_reads_values(file)
    try:
        if small_first and (built := _with_small_on_cpu(code, namespace, ctx)) is not None:
            model, read = built
            return model, ctx.device, [_SMALL_ON_CPU] if read else []
        return construct(code, namespace, torch.device(ctx.device), ctx.recorder), ctx.device, []
    except (BuildTimeout, MemoryError) as exc:
        return ModelResult.failed(spec, file, ctx.error(exc))
    except Exception as exc:  # the user's constructor may raise anything
        missing = needs_args(spec, exc, file)
        if missing is not None:
            return ModelResult.failed(spec, file, missing)
        first = ctx.error(exc)
    if ctx.device != "meta" or first.kind != "exception":
        return ModelResult.failed(spec, file, first)
    try:
        reads = not small_first and NEEDS_VALUES.search(first.message)  # give it values
        if reads and (built := _with_small_on_cpu(code, namespace, ctx)) is not None:
            note = f"{_SMALL_ON_CPU} (meta alone failed: {first.message})"
            return built[0], ctx.device, [note]
        model = construct(code, namespace, torch.device("cpu"), ctx.recorder)
    except BuildTimeout as retry_exc:
        return ModelResult.failed(spec, file, ctx.error(retry_exc))
    except Exception as retry_exc:
        retry = ctx.error(retry_exc)
        return ModelResult.failed(spec, file, first if retry.kind == "memory" else retry)
    return model, "cpu", [f"built on CPU because the meta device failed: {first.message}"]


_SMALL_ON_CPU = "built on meta, with the small tensors its constructor reads on the CPU"


def _with_small_on_cpu(
    code: types.CodeType, namespace: dict[str, object], ctx: BuildContext
) -> tuple[object, bool] | None:
    """Built with the small tensors it makes on the CPU, then held on meta; and whether it
    read a value. None if that failed (small CPU tensors met meta ones, or anything else);
    a timeout is the build's to report."""
    small = SmallOnCpu()
    try:
        model = construct(code, namespace, small, ctx.recorder)
        hold_on_meta(model)
    except BuildTimeout:
        raise
    except Exception:
        return None
    return model, small.read
