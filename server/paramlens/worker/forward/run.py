"""Shapes through forward(): run a built model's forward() on its device (meta: no weights,
no compute) with an example input (:mod:`.inputs`), and record every module call's
shapes and multiply-adds (:mod:`.counters`), the shapes of forward()'s own lines
(:mod:`.line_shapes`), and, when it fails, why (:mod:`.explain`). Repeated blocks run
once (:mod:`.repeats`).

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping

import torch
from torch import nn

from ..protocol import ErrorInfo, ForwardInfo
from . import repeats
from .context import ForwardContext
from .counters import Calls, ModuleCall, MultiplyAdds, SavedForBackward, hooked, shape_text
from .explain import explain
from .inputs import candidate_inputs, evaluate_input, first_layer
from .line_shapes import LineShapes
from .meta_autocast import meta_autocast
from .parents import PARENT_CALL, several_required

# BatchNorm in training, on one sample of a pooled feature map ([1, C, 1, 1] or [1, C])
_ONE_VALUE_PER_CHANNEL = "Expected more than 1 value per channel when training"


def run_forward(
    model: nn.Module, given: str | None, given_source: str, ctx: ForwardContext
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]]:
    """forward() with the first candidate input it accepts (a configured input is the only
    candidate), under no_grad-free meta execution. None: no input to try."""
    if getattr(type(model), "forward", None) is nn.Module.forward:
        return None, {}  # a container of parameters with no forward() of its own
    parent = ctx.parents.get(model) if several_required(type(model)) else None

    def candidates_of(batch: int) -> list[tuple[str, str]]:
        return candidate_inputs(model, given, given_source, ctx.dims, batch, ctx.arguments, parent)

    candidates = candidates_of(1)
    if not candidates:
        return None, {}
    # on meta, repeated blocks run once (on the CPU, values differ from block to block)
    members = (
        repeats.blocks(model)
        if ctx.device == "meta" and os.environ.get("PARAMLENS_NO_REPEATS") != "1"
        else None
    )
    failures: list[tuple[ForwardInfo, dict[int, list[ModuleCall]]]] = []
    for index, (expression, source) in enumerate(candidates):
        if failures and ctx.deadline is not None and time.monotonic() > ctx.deadline:
            break  # the budget is spent (its alarm swallowed by the model's code)
        info, calls = _attempt(model, expression, source, ctx, members)
        if info.guessed and info.error is not None and _ONE_VALUE_PER_CHANNEL in info.error.message:
            # BatchNorm after global pooling (MobileNet's head): training needs a batch of 2
            expression, _ = candidates_of(2)[index]
            source += "; a batch of 2, as BatchNorm needs in training"
            info, calls = _attempt(model, expression, source, ctx, members)
        if info.error is None:
            return info, calls
        if source.startswith(PARENT_CALL):  # built with other sizes than in its parent
            info = dataclasses.replace(info, guessed=True)
            if index + 1 < len(candidates):
                continue  # the guesses' failures say more
        failures.append((info, calls))
    # A guess that fitted the first layer but not a later one blames that layer. Guesses
    # that did so differently (a classifier sized for another image size): which guess was
    # right is unknown, so no layer is to blame for certain.
    inside = [(f, c) for f, c in failures if f.fix is not None and f.fix.internal]
    blamed = {(f.fix.file, f.fix.line, f.fix.new) for f, _ in inside if f.fix is not None}
    if len(blamed) == 1:
        return inside[0]
    info, calls = failures[0]
    if info.fix is not None and info.fix.internal:
        info = dataclasses.replace(info, fix=dataclasses.replace(info.fix, internal=False))
    return info, calls


def _attempt(
    model: nn.Module,
    expression: str,
    source: str,
    ctx: ForwardContext,
    members: Mapping[int, repeats.Member] | None,
) -> tuple[ForwardInfo, dict[int, list[ModuleCall]]]:
    guessed = source.startswith("guessed")
    base = ForwardInfo(input=expression, input_source=source, guessed=guessed)
    try:
        with torch.device(ctx.device):
            args, kwargs = evaluate_input(expression, model, ctx.namespace)
    except Exception as exc:
        message = f"the input {expression} ({source}) failed: {ctx.error_from(exc).message}"
        return dataclasses.replace(base, error=ErrorInfo(message, kind="input")), {}
    base = dataclasses.replace(
        base, input_shape=shape_text(args[0] if len(args) == 1 else args or kwargs)
    )
    tracer = LineShapes(ctx.is_user_file)
    calls = Calls()
    counter = MultiplyAdds(calls)
    saved = SavedForBackward(model, calls)
    traced = tracer.tracing() if ctx.line_shapes else contextlib.nullcontext()
    replayed = repeats.replaying(members, calls, counter, saved)
    try:
        with (
            hooked(model, calls),
            counter,
            saved.hooks(),
            torch.device(ctx.device),
            traced,
            replayed,
            ctx.parents.recording(model, ctx.is_user_file),  # inside: replays set forward too
            meta_autocast(),
        ):
            output = model(*args, **kwargs)
    except Exception as exc:
        if isinstance(exc, (TimeoutError, MemoryError)):
            raise  # the job's deadline or memory cap: the build's to report
        error, declared, fix = explain(exc, calls, ctx, first_layer(model))
        failed = dataclasses.replace(
            base, error=error, declared=declared, fix=fix, lines=tracer.result()
        )
        return failed, calls.by_module
    # multiply-adds: 2 FLOPs each; a module called several times gets its share per call
    for module in model.modules():
        module_calls = calls.by_module.get(id(module), [])
        total = counter.by_module.get(id(module), 0) // 2
        for call in module_calls:
            call.macs = total // len(module_calls)
    done = dataclasses.replace(
        base,
        output_shape=shape_text(output),
        macs=counter.flops // 2,
        lines=tracer.result(),
        activation_bytes=saved.nbytes,
    )
    return done, calls.by_module
