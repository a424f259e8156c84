"""One training step, simulated: forward() with the example input, a loss, ``backward()``,
``optimizer.step()`` and ``zero_grad(set_to_none=True)``, with every storage counted
(:mod:`.storages`) so that the step's peak, where it happens and what it is made of are
exact, not a sum of parts.

The step is the one a GPU would run: the optimizer's multi-tensor (``foreach``)
implementation, torch's default on CUDA; attention through the kernel CUDA would pick
(:mod:`.attention`). A warm-up step first creates the optimizer's state, as the first
iteration of a training loop does; the peak is that of the next step. On meta tensors
nothing is computed and nothing allocated, so a 70B-parameter model costs what a small one
does. Mixed precision needs autocast, which meta tensors do not take: that step runs on
fake CPU tensors (shapes and dtypes, no memory), as does a model built on the CPU.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..layers import qualtype
from ..protocol import ModuleMemory, StepMemory, Training
from .attention import attention_as
from .storages import KINDS, Storages

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
OPTIMIZER_NAMES = ("adamw", "adam", "sgd-momentum", "sgd", "none")
CUDA_CONTEXT = 512 << 20  # what the CUDA context takes of a card, outside torch's allocator
SEARCH_PROBES = 24  # steps simulated at most to find the largest batch that fits
SECANT_PROBES = 4
SHOWN_MODULES = 10

Inputs = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


class StepError(Exception):
    """The step cannot be simulated for this model (nothing to train, a loss that fails)."""


def simulate_step(
    model: nn.Module,
    make_input: Inputs,
    training: Training,
    loss_scope: dict[str, object] | None = None,
    deadline: float | None = None,
    real: bool = False,
) -> StepMemory:
    """The step's memory at ``training.batch`` (0: the input's own batch); with a card
    (``training.gpu_bytes``), whether it fits and the largest batch that does, searched
    until ``deadline`` (a ``time.monotonic()`` value).

    A model on meta is simulated on meta (on fake CPU tensors under autocast); a model on
    the CPU on fake CPU tensors, unless ``real``: then the step really runs, on the CPU
    (what the simulation is checked against)."""
    started = time.perf_counter()
    first = _one_step(model, make_input, training, loss_scope, real)
    step = _fitted(model, make_input, training, loss_scope, first, deadline, real)
    return dataclasses.replace(step, ms=round((time.perf_counter() - started) * 1000, 2))


def _fitted(
    model: nn.Module,
    make_input: Inputs,
    training: Training,
    loss_scope: dict[str, object] | None,
    step: StepMemory,
    deadline: float | None,
    real: bool,
) -> StepMemory:
    if not training.gpu_bytes:
        return step
    usable = training.gpu_bytes - CUDA_CONTEXT

    def fits(s: StepMemory) -> bool:
        return s.gpu_reserved <= usable

    def at(batch: int) -> StepMemory:
        at_batch = dataclasses.replace(training, batch=batch)
        return _one_step(model, make_input, at_batch, loss_scope, real)

    fit = fits(step)
    best, note = _largest_batch(step, at, fits, usable, deadline)
    return dataclasses.replace(
        step, gpu=training.gpu, gpu_bytes=training.gpu_bytes, fits=fit, max_batch=best, search=note
    )


def _largest_batch(
    step: StepMemory,
    at: Callable[[int], StepMemory],
    fits: Callable[[StepMemory], bool],
    usable: int,
    deadline: float | None,
) -> tuple[int, str]:
    """The largest batch whose step fits, kept between the largest batch known to fit
    (``lo``) and the smallest known not to (``hi``, 0 while none is known): the secant on
    the (near-linear) peak first, then strides doubling away from the last batch tried
    (the reserved memory grows in 2 MiB stairs, which a line does not see), then halving."""
    known = {step.batch: step.gpu_reserved}
    last_fit = fits(step)
    lo, hi = (step.batch, 0) if last_fit else (0, step.batch)
    probes, stride = 0, 1
    while hi != lo + 1:
        if probes >= SEARCH_PROBES or (deadline is not None and time.monotonic() > deadline):
            return lo, f"stopped after {probes} more steps: the largest batch is at least {lo}"
        if probes < SECANT_PROBES:
            guess = _secant(known, lo, hi, usable)
        elif not hi or hi - lo > 2 * stride:
            guess = lo + stride if last_fit else hi - stride
            stride *= 2
        else:
            guess = (lo + hi) // 2
        guess = max(guess, lo + 1)
        if hi:
            guess = min(guess, hi - 1)
        probes += 1
        tried = at(guess)
        known[guess] = tried.gpu_reserved
        last_fit = fits(tried)
        if last_fit:
            lo = guess
        else:
            hi = guess
    if lo == 0:
        return 0, f"batch 1 does not fit ({probes} more steps simulated)"
    return lo, f"batch {lo + 1} does not fit ({probes} more steps simulated)"


def _secant(known: dict[int, int], lo: int, hi: int, usable: int) -> int:
    """The batch where the line through the known peaks nearest ``lo`` and ``hi`` meets the
    card's memory; with one known peak, twice or half its batch."""
    points = sorted(known.items())
    if len(points) < 2:
        return lo * 2 if lo else max(1, hi // 2)
    below = [p for p in points if p[0] <= lo] or points[:1]
    above = [p for p in points if hi and p[0] >= hi] or [points[-1]]
    (b1, m1), (b2, m2) = below[-1], above[0]
    if (b1, m1) == (b2, m2):
        (b1, m1), (b2, m2) = points[-2], points[-1]
    if m2 <= m1:
        return lo * 2 if not hi else (lo + hi) // 2
    return int(b1 + (usable - m1) * (b2 - b1) / (m2 - m1))


def _one_step(
    model: nn.Module,
    make_input: Inputs,
    training: Training,
    loss_scope: dict[str, object] | None,
    real: bool = False,
) -> StepMemory:
    on_meta = all(t.device.type == "meta" for t in _tensors(model))
    fake = not real and (training.precision in AUTOCAST or not on_meta)
    device = "cpu" if fake else next((t.device.type for t in _tensors(model)), "meta")
    with contextlib.ExitStack() as stack:
        if fake:
            stack.enter_context(_on_fake_cpu(model))
        if training.precision == "bf16-pure":
            stack.enter_context(_in_dtype(model, torch.bfloat16))
        checkpointed = stack.enter_context(_checkpointing(model, training.checkpoint))
        # the input is made before the counting starts (factory functions under a dispatch
        # mode take torch's Python decompositions, whose first use imports sympy), then
        # counted as the step's input
        with torch.device(device):
            args, kwargs = make_input()
        args, kwargs, batch = _at_batch(args, kwargs, training.batch)
        if training.precision == "bf16-pure":
            args, kwargs = tree_map(_bf16, (args, kwargs))
        where = _Where(model)
        storages = stack.enter_context(Storages(device, where.now))
        storages.on_change = where.changed
        stack.enter_context(where.hooks(storages))
        attention = stack.enter_context(attention_as(training.attention))
        inputs = (args, kwargs, batch)
        step = _run(model, inputs, training, loss_scope, storages, where)
        peak = storages.peak
        workspace = training.workspace_bytes if storages.matmul else 0
        return dataclasses.replace(
            step,
            peak=peak.total,
            phase=peak.phase,
            module=peak.module,
            **{kind: peak.by_kind.get(kind, 0) for kind in KINDS},
            attention=attention.summary(),
            checkpointed=checkpointed,
            gpu_allocated=storages.rounded_peak + workspace,
            gpu_workspace=workspace,
            gpu_reserved=storages.reserved_peak + workspace,
            modules=where.top_modules(),
        )


def _run(
    model: nn.Module,
    inputs: tuple[tuple[Any, ...], dict[str, Any], int],
    training: Training,
    loss_scope: dict[str, object] | None,
    storages: Storages,
    where: _Where,
) -> StepMemory:
    for p in model.parameters():
        storages.track(p, "parameters")
        p.grad = None
    for b in model.buffers():
        storages.track(b, "buffers")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise StepError("no parameter is trainable: a training step changes nothing")
    args, kwargs, batch = inputs
    for t in _flat_tensors((args, kwargs)):
        storages.track(t, "inputs")
    optimizer = _optimizer(training.optimizer, trainable)
    if optimizer is not None:  # the warm-up: the state a training loop has after one step
        storages.kind_of_new = "optimizer_state"
        where.phase = "warm-up"
        for p in trainable:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    storages.reclassify(value, "optimizer_state")
    hooks = [p.register_post_accumulate_grad_hook(_grad_is(storages)) for p in trainable]
    try:
        storages.start_peak()
        _forward_backward(model, args, kwargs, training, loss_scope, storages, where)
        if optimizer is not None:
            storages.kind_of_new = "temporaries"
            where.phase = "optimizer"
            optimizer.step()
            where.phase = "zero_grad"
            optimizer.zero_grad(set_to_none=True)
        else:
            for p in trainable:
                p.grad = None
    finally:
        for hook in hooks:
            hook.remove()
    return StepMemory(
        peak=0,
        phase="",
        module="",
        batch=batch,
        optimizer=training.optimizer,
        foreach=optimizer is not None and bool(optimizer.defaults.get("foreach")),
        precision=training.precision,
    )


def _forward_backward(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    training: Training,
    loss_scope: dict[str, object] | None,
    storages: Storages,
    where: _Where,
) -> None:
    """forward(), the loss and backward(), in a frame of their own: what they hold is freed
    when it returns, as at the end of a training loop's iteration."""
    storages.kind_of_new = "activations"
    where.phase = "forward"
    autocast = (
        torch.autocast("cpu", dtype=AUTOCAST[training.precision])
        if training.precision in AUTOCAST
        else contextlib.nullcontext()
    )
    with autocast:
        output = model(*args, **kwargs)
        where.phase = "loss"
        loss = _loss(output, training.loss, args, loss_scope)
    del output
    storages.kind_of_new = "temporaries"
    where.phase = "backward"
    loss.backward()
    del loss


def _loss(
    output: Any, expression: str, args: tuple[Any, ...], scope: dict[str, object] | None
) -> torch.Tensor:
    if expression:
        names = {**(scope or {}), "torch": torch, "output": output, "inputs": args}
        value = eval(compile(expression, "<paramlens: loss>", "eval"), names)
        if not isinstance(value, torch.Tensor) or not value.requires_grad:
            raise StepError(f"the loss {expression} is not a tensor that needs a gradient")
        return value.sum() if value.dim() else value
    floats = [
        t
        for t in tree_flatten(_plain(output))[0]
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad
    ]
    if not floats:
        raise StepError(
            "forward() returned no floating tensor that needs a gradient: name the loss "
            'with `loss = "..."` in [tool.paramlens] (an expression of `output`)'
        )
    total = floats[0].sum()
    for t in floats[1:]:
        total = total + t.sum()
    return total


def _plain(output: Any) -> Any:
    """transformers' ModelOutput and other dict-likes as plain containers."""
    if hasattr(output, "to_tuple") and callable(output.to_tuple):
        return output.to_tuple()
    return output


def _grad_is(storages: Storages) -> Callable[[torch.Tensor], None]:
    def hook(p: torch.Tensor) -> None:
        if p.grad is not None:
            storages.reclassify(p.grad, "gradients")

    return hook


def _optimizer(name: str, params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
    """The optimizer as CUDA runs it by default: its ``foreach`` implementation."""
    if name == "none":
        return None
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3, foreach=True)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=True)
    return torch.optim.AdamW(params, lr=1e-3, foreach=True)


def _at_batch(
    args: tuple[Any, ...], kwargs: dict[str, Any], batch: int
) -> tuple[tuple[Any, ...], dict[str, Any], int]:
    """The input with its batch dimension (the first dimension of its first tensor, in every
    tensor that shares it) at ``batch``; and that batch."""
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    first = next((t for t in tensors if t.dim()), None)
    if first is None:
        return args, kwargs, 0
    own = int(first.shape[0])
    if not batch or batch == own:
        return args, kwargs, own

    def scaled(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or not value.dim() or value.shape[0] != own:
            return value
        copies = math.ceil(batch / own)
        grown = value.repeat(copies, *([1] * (value.dim() - 1)))[:batch].clone()
        return grown.requires_grad_(value.requires_grad)

    args, kwargs = tree_map(scaled, (args, kwargs))
    return args, kwargs, batch


def _bf16(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16)
    return value


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


class _Where:
    """Which phase and module the step is in; each module's part (what its forward()
    keeps, the highest total while it runs, forward or backward)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.phase = ""
        self.paths = {id(m): n for n, m in model.named_modules()}
        self.types = {n: qualtype(m).rpartition(".")[2] for n, m in model.named_modules()}
        self.stack: list[tuple[str, int]] = []  # (path, total at its start)
        self.kept: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.order: list[str] = []
        self.owner: dict[torch.autograd.graph.Node, str] = {}  # autograd node -> module
        self.stops: list[set[torch.autograd.graph.Node]] = []
        self.total = 0

    def now(self) -> tuple[str, str]:
        return self.phase, self.current()

    def current(self) -> str:
        if self.phase == "backward":
            node = _current_node()
            return self.owner.get(node, "") if node is not None else ""
        if self.phase == "forward" and self.stack:
            return self.stack[-1][0]
        return ""

    def changed(self, total: int) -> None:
        self.total = total
        if self.phase not in ("forward", "backward"):
            return
        path = self.current()
        while True:
            if total > self.peaks.get(path, 0):
                self.peaks[path] = total
            if not path:
                break
            path = path.rpartition(".")[0]

    @contextlib.contextmanager
    def hooks(self, storages: Storages) -> Iterator[None]:
        handles = []
        for module in self.model.modules():
            handles.append(module.register_forward_pre_hook(self._pre))
            handles.append(module.register_forward_hook(self._post))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self.phase != "forward":
            return
        path = self.paths.get(id(module), "?")
        if path not in self.kept:
            self.order.append(path)
            self.kept[path] = 0
        self.stack.append((path, self.total))
        self.stops.append({t.grad_fn for t in _flat_tensors(args) if t.grad_fn is not None})

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self.phase != "forward" or not self.stack:
            return
        path, start = self.stack.pop()
        stops = self.stops.pop()
        self.kept[path] = self.kept.get(path, 0) + self.total - start
        # the autograd nodes this call made belong to it (inner calls claimed theirs first)
        todo = [t.grad_fn for t in _flat_tensors(output) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node in self.owner or node in stops:
                continue
            self.owner[node] = path
            todo.extend(n for n, _ in node.next_functions if n is not None)

    def top_modules(self) -> tuple[ModuleMemory, ...]:
        shown = [p for p in self.order if p and p.count(".") < 2]
        shown.sort(key=lambda p: -self.kept.get(p, 0))
        return tuple(
            ModuleMemory(p, self.types.get(p, "?"), self.kept.get(p, 0), self.peaks.get(p, 0))
            for p in shown[:SHOWN_MODULES]
        )


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(_plain(value))[0] if isinstance(t, torch.Tensor)]


def _current_node() -> torch.autograd.graph.Node | None:
    current = getattr(torch._C, "_current_autograd_node", None)
    return current() if current is not None else None


@contextlib.contextmanager
def _checkpointing(model: nn.Module, names: tuple[str, ...]) -> Iterator[int]:
    """The modules of those classes recompute their activations in backward
    (``torch.utils.checkpoint``, non-reentrant); yields how many there are."""
    from torch.utils.checkpoint import checkpoint

    wrapped = []
    if names:
        for module in model.modules():
            cls = type(module)
            if cls.__name__ in names or qualtype(module) in names:
                original = module.forward
                module.forward = functools.partial(  # type: ignore[method-assign]
                    checkpoint, original, use_reentrant=False
                )
                wrapped.append(module)
    try:
        yield len(wrapped)
    finally:
        for module in wrapped:
            del module.forward


@contextlib.contextmanager
def _in_dtype(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """The model's floating parameters and buffers in ``dtype`` meanwhile."""
    before: list[tuple[torch.Tensor, torch.dtype]] = []
    for t in _tensors(model):
        if t.is_floating_point() and t.dtype != dtype:
            before.append((t, t.dtype))
            t.data = t.data.to(dtype)
    try:
        yield
    finally:
        for t, old in before:
            t.data = t.data.to(old)


@contextlib.contextmanager
def _on_fake_cpu(model: nn.Module) -> Iterator[None]:
    """The model's parameters and buffers swapped for fake CPU tensors (shapes and dtypes,
    no memory; tied ones stay tied), inside ``FakeTensorMode``."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    swapped: list[tuple[dict[str, Any], str, Any]] = []
    fakes: dict[int, torch.Tensor] = {}
    try:
        with FakeTensorMode(), torch.device("cpu"):
            for module in model.modules():
                tables: tuple[tuple[dict[str, Any], bool], ...] = (
                    (module._parameters, True),
                    (module._buffers, False),
                )
                for table, is_parameter in tables:
                    for name, tensor in table.items():
                        if tensor is None:
                            continue
                        if id(tensor) not in fakes:
                            fake = torch.empty(tensor.shape, dtype=tensor.dtype)
                            if is_parameter:
                                fake = nn.Parameter(fake, requires_grad=tensor.requires_grad)
                            fakes[id(tensor)] = fake
                        swapped.append((table, name, tensor))
                        table[name] = fakes[id(tensor)]
            yield
    finally:
        for table, name, tensor in reversed(swapped):
            table[name] = tensor
