"""forward() for a built model, within the class's time: on its device (meta: no weights,
no compute), again on a CPU copy when the code reads values, and with one training
step's memory once it ran (:mod:`..forward` does the run itself).

Runs in the worker (standard library + torch), inside a build child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..forward.context import ForwardContext
from ..forward.counters import ModuleCall
from ..forward.inputs import evaluate_input
from ..forward.memory import AUTOCAST_DTYPES, autocast_saved_bytes, training_bytes
from ..forward.run import run_forward
from ..forward.sharding import ShardingError
from ..forward.step import StepError, simulate_step
from ..forward.variants import VariantError
from ..loader import has_itimer
from ..protocol import ClassSpec, ErrorInfo, ForwardInfo
from .context import BuildContext
from .errors import BuildTimeout
from .placement import compiled, construct, namespace_for
from .sites import SiteRecorder

FORWARD_BUDGET_S = 5.0  # at most; and at most half of what the class has left
OVERRUN_GRACE_S = 0.5  # to report a class whose stage ran past its time (see _budget)
STEP_BUDGET_S = 10.0  # at most; and at most 80% of what is left after forward()


def _forward_pass(
    model: nn.Module,
    recorder: SiteRecorder,
    spec: ClassSpec,
    ctx: BuildContext,
    device: str,
    deadline: float | None = None,
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]]:
    forward = ForwardContext(
        namespace=namespace_for(spec, ctx.namespace),
        device=device,
        is_user_file=ctx.is_user_file,
        error_from=ctx.error,
        names={id(m): n for n, m in model.named_modules() if n},
        site=recorder.first_site,
        dims=dict(ctx.dims),
        line_shapes=ctx.line_shapes,
        arguments=recorder.constructor_arguments(model),
        parents=ctx.parents,
        deadline=deadline,
    )
    return run_forward(model, spec.input, spec.input_source, forward)


# what meta tensors cannot do: code that reads values (.item(), if x.sum() > 0, x[x > 0])
NEEDS_VALUES = re.compile(r"meta tensor|on meta|data-independent|'Meta' backend", re.IGNORECASE)


def _forward_on_cpu(
    model: nn.Module, spec: ClassSpec, ctx: BuildContext, why: str
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]] | None:
    """forward() again on a copy of the model built on the CPU, with random weights and
    input, when meta failed because the code reads values; None if it would not fit."""
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    if spec.ctor is None or held * 2 > ctx.memory_mb * 2**20:
        return None
    code = compiled(spec.ctor, spec)
    recorder = SiteRecorder(ctx.is_user_file)
    real = construct(code, namespace_for(spec, ctx.namespace), torch.device("cpu"), recorder)
    if not isinstance(real, nn.Module):
        return None
    with torch.no_grad():  # weight initialisation was skipped: give the code numbers to read
        for p in real.parameters():
            p.normal_(0.0, 0.02)
    info, calls = _forward_pass(real, recorder, spec, ctx, "cpu")
    # the calls belong to the copy's modules: give them to the model's, by position
    pairs = zip(
        real.named_modules(remove_duplicate=False), model.named_modules(remove_duplicate=False)
    )
    same = {id(r): id(m) for (rn, r), (mn, m) in pairs if rn == mn}
    calls = {same[k]: v for k, v in calls.items() if k in same}
    if info is not None:
        note = f"forward() ran on the CPU (random weights) because meta failed: {why}"
        info = dataclasses.replace(info, device="cpu", note=note)
    return info, calls


def _with_training_memory(
    model: nn.Module, info: ForwardInfo, spec: ClassSpec, ctx: BuildContext
) -> ForwardInfo:
    """``info`` with one training step's memory; under mixed precision, with the
    activations autograd saves under autocast (measured again, on fake CPU tensors)."""
    activations, precision, note = info.activation_bytes, "", info.note
    if ctx.training.precision in AUTOCAST_DTYPES:
        try:
            namespace = namespace_for(spec, ctx.namespace)
            activations = autocast_saved_bytes(model, info.input, namespace, ctx.training.precision)
            precision = ctx.training.precision
        except (BuildTimeout, MemoryError):
            raise
        except Exception as exc:
            why = ctx.error(exc).message
            note = "; ".join(
                n
                for n in (note, f"{ctx.training.precision} autocast could not be measured ({why})")
                if n
            )
    return dataclasses.replace(
        info,
        activation_bytes=activations,
        train_bytes=training_bytes(model, activations, ctx.training.optimizer),
        optimizer=ctx.training.optimizer,
        precision=precision,
        note=note,
    )


@contextlib.contextmanager
def _budget(most_s: float, share: float) -> Iterator[float]:
    """Part of what is left of the class's time (at most ``most_s``, at most ``share`` of
    it) for one stage: when that runs out, the stage's BuildTimeout comes early and what
    was measured before stands. Yields the budget (0: no timer on this platform)."""
    remaining = signal.getitimer(signal.ITIMER_REAL)[0] if has_itimer() else 0.0
    budget = min(most_s, remaining * share) if remaining else 0.0
    started = time.monotonic()
    if budget:
        signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        yield budget
    finally:
        if budget:
            elapsed = time.monotonic() - started
            left = remaining - elapsed
            if left <= 0 and elapsed > budget:
                # the stage's alarm was swallowed by the code it ran (a library's ``except
                # Exception``) and it ran past the class's time: what was measured before
                # and by the stage stands, with a moment to report it
                left = OVERRUN_GRACE_S
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _own_timeout(budget: float, started: float) -> bool:
    """The BuildTimeout came from the stage's budget, not the class's own deadline."""
    return bool(budget) and time.monotonic() - started >= budget - 0.05


def forward_pass_within_budget(
    model: nn.Module,
    spec: ClassSpec,
    ctx: BuildContext,
    device: str,
    before_step: Callable[[ForwardInfo, dict[int, list[ModuleCall]] | None], None] | None = None,
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]] | None]:
    """forward() with an example input, on the device the model was built on (meta, then
    the CPU if the code needs real values and the model fits); then the training step
    (``before_step`` is told what forward() gave first)."""
    info, calls = _forward_within_budget(model, spec, ctx, device)
    if info is not None and info.error is None and ctx.training.step:
        if has_itimer() and signal.getitimer(signal.ITIMER_REAL)[0] <= OVERRUN_GRACE_S:
            # forward() ran past the class's time (its grace is left): the step would too
            why = "the training step was not simulated: forward() took all of the class's time"
            return dataclasses.replace(
                info, note="; ".join(n for n in (info.note, why) if n)
            ), calls
        if before_step is not None:
            before_step(info, calls)
        info = _step_within_budget(model, info, spec, ctx)
    return info, calls


def _forward_within_budget(
    model: nn.Module, spec: ClassSpec, ctx: BuildContext, device: str
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]] | None]:
    started = time.monotonic()
    with _budget(FORWARD_BUDGET_S, 0.5) as budget:
        deadline = started + budget if budget else None
        try:
            info, calls = _forward_pass(model, ctx.recorder, spec, ctx, device, deadline)
            error = info.error if info is not None else None
            if error is not None and device == "meta" and NEEDS_VALUES.search(error.message):
                retried = _forward_on_cpu(model, spec, ctx, error.message)
                if retried is not None:
                    info, calls = retried
            if info is not None and info.error is None:
                info = _with_training_memory(model, info, spec, ctx)
            return info, calls
        except BuildTimeout:
            if not _own_timeout(budget, started):
                raise  # the class's own deadline
            message = f"forward() took longer than {budget:.1f} s; paramlens stopped it"
            return ForwardInfo(
                input="", input_source="", error=ErrorInfo(message, kind="forward")
            ), None
        except MemoryError:
            raise
        except Exception as exc:  # a model odd enough to defeat the input guess: no shapes
            error = dataclasses.replace(ctx.error(exc), kind="forward")
            return ForwardInfo(input="", input_source="", error=error), None


def _step_within_budget(
    model: nn.Module, info: ForwardInfo, spec: ClassSpec, ctx: BuildContext
) -> ForwardInfo:
    """``info`` with the simulated training step (:mod:`..forward.step`), or why not."""
    namespace = namespace_for(spec, ctx.namespace)
    started = time.monotonic()
    with _budget(STEP_BUDGET_S, 0.8) as budget:
        # the largest-batch search stops in time to report what it found
        deadline = started + budget * 0.7 if budget else None
        try:
            step = simulate_step(
                model,
                lambda: evaluate_input(info.input, model, namespace),
                ctx.training,
                namespace,
                deadline,
            )
            return dataclasses.replace(info, step=dataclasses.replace(step, input=info.input))
        except BuildTimeout:
            if not _own_timeout(budget, started):
                raise
            why = f"the training step took longer than {budget:.1f} s; paramlens stopped it"
        except MemoryError:
            raise
        except (StepError, ShardingError, VariantError) as exc:
            why = str(exc)
        except Exception as exc:
            why = ctx.error(exc).message
        return dataclasses.replace(info, step_error=why)
