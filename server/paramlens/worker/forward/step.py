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
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..protocol import StepMemory, Training
from .attention import attention_as
from .fit import largest_batch
from .memory import AUTOCAST_DTYPES
from .meta_autocast import meta_autocast
from .progress import Progress, flat_tensors, plain
from .sharding import FSDP, bucket_bytes, fake_group, local, rank_share, shard
from .storages import Storages, storages_are_tracked
from .variants import checkpointing, copied, in_dtype, on_fake_cpu, tensors

CUDA_CONTEXT = 512 << 20  # what the CUDA context takes of a card, outside torch's allocator

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
    if not storages_are_tracked():
        raise StepError(
            f"needs torch 2.2 or later (this is {torch.__version__}): its storages have no"
            " lasting Python object, through which the step's memory is followed"
        )
    first = _one_step(model, make_input, training, loss_scope, real)
    return _fitted(model, make_input, training, loss_scope, first, deadline, real)


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
    best, note = largest_batch(step, at, fits, usable, deadline)
    return dataclasses.replace(
        step, gpu=training.gpu, gpu_bytes=training.gpu_bytes, fits=fit, max_batch=best, search=note
    )


def _one_step(
    model: nn.Module,
    make_input: Inputs,
    training: Training,
    loss_scope: dict[str, object] | None,
    real: bool = False,
) -> StepMemory:
    on_meta = all(t.device.type == "meta" for t in tensors(model))
    ranks = training.gpus if training.strategy and training.gpus > 1 else 1
    fsdp = ranks > 1 and training.strategy in FSDP
    if fsdp and real:
        raise StepError("FSDP is simulated on fake tensors only")
    fake = not real and (training.precision in AUTOCAST_DTYPES or not on_meta or fsdp)
    device = "cpu" if fake else next((t.device.type for t in tensors(model)), "meta")
    units = 0
    with contextlib.ExitStack() as stack:
        mesh = stack.enter_context(fake_group(ranks)) if ranks > 1 else None
        if fsdp:
            model = copied(model)  # fully_shard changes the model it shards
        if fake:
            stack.enter_context(on_fake_cpu(model))
        if training.precision == "bf16-pure":
            stack.enter_context(in_dtype(model, torch.bfloat16))
        if fsdp:
            units = shard(model, training.strategy, mesh, training.wrap)
        checkpointed = stack.enter_context(checkpointing(model, training.checkpoint))
        # the input is made before the counting starts (factory functions under a dispatch
        # mode take torch's Python decompositions, whose first use imports sympy), then
        # counted as the step's input
        with torch.device(device):
            args, kwargs = make_input()
        args, kwargs, batch = _at_batch(args, kwargs, training.batch)
        if training.precision == "bf16-pure":
            args, kwargs = tree_map(_bf16, (args, kwargs))
        foreach = multi_tensor_works(training.optimizer, device)  # before the counting
        where = Progress(model)
        storages = stack.enter_context(Storages(device, where.now))
        storages.on_change = where.changed
        stack.enter_context(where.hooks())
        attention = stack.enter_context(attention_as(training.attention))
        ranked = dataclasses.replace(training, gpus=ranks)
        foreach = _run(model, (args, kwargs), ranked, loss_scope, storages, where, device, foreach)
        peak = storages.peak
        workspace = training.workspace_bytes if storages.matmul else 0
        kinds = peak.by_kind
        return StepMemory(
            peak=peak.total,
            phase=peak.phase,
            module=peak.module,
            parameters=kinds.get("parameters", 0),
            buffers=kinds.get("buffers", 0),
            inputs=kinds.get("inputs", 0),
            activations=kinds.get("activations", 0),
            gradients=kinds.get("gradients", 0),
            optimizer_state=kinds.get("optimizer_state", 0),
            temporaries=kinds.get("temporaries", 0),
            batch=batch,
            optimizer=training.optimizer,
            foreach=foreach,
            precision=training.precision,
            attention=attention.summary(),
            checkpointed=checkpointed,
            gpus=ranks,
            strategy=training.strategy if ranks > 1 else "",
            units=units,
            gpu_allocated=storages.rounded_peak + workspace,
            gpu_workspace=workspace,
            gpu_reserved=storages.reserved_peak + workspace,
            modules=where.top_modules(),
        )


def _run(
    model: nn.Module,
    inputs: tuple[tuple[Any, ...], dict[str, Any]],
    training: Training,
    loss_scope: dict[str, object] | None,
    storages: Storages,
    where: Progress,
    device: str,
    foreach: bool,
) -> bool:
    """The step, counted; whether its optimizer ran ``foreach``."""
    for p in model.parameters():
        storages.track(local(p), "parameters")
        p.grad = None
    for b in model.buffers():
        storages.track(local(b), "buffers")
    trainable: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise StepError("no parameter is trainable: a training step changes nothing")
    args, kwargs = inputs
    for t in flat_tensors((args, kwargs)):
        storages.track(t, "inputs")
    stepped = trainable
    buckets = None
    if training.gpus > 1 and training.strategy in ("ddp", "zero1"):
        # DDP's reducer: flat buckets as large as the gradients, for the whole of training
        buckets = torch.empty(bucket_bytes(trainable), dtype=torch.uint8, device=device)
        storages.reclassify(buckets, "gradients")
        if training.strategy == "zero1":
            stepped = rank_share(trainable, training.gpus)
    optimizer = make_optimizer(training.optimizer, stepped, foreach)
    if optimizer is not None:  # the state a training loop has after its first step
        storages.kind_of_new = "optimizer_state"
        where.phase = "warm-up"
        if any(local(p) is not p for p in stepped):
            # DTensor parameters (FSDP): a real first step. DTensor works out each op's
            # sharding once, on tensors of the full shape made under the step's fake mode:
            # counted, they would look like 27 MB of temporaries in a 4-block model's step
            for t in stepped:
                t.grad = torch.zeros_like(t)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            _first_state(optimizer, training.optimizer, stepped)
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    storages.reclassify(local(value), "optimizer_state")
    hooks = [
        p.register_post_accumulate_grad_hook(_grad_is(storages))  # type: ignore[no-untyped-call]
        for p in trainable
    ]
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
            for t in trainable:
                t.grad = None
    finally:
        for hook in hooks:
            hook.remove()
    del buckets
    return optimizer is not None and bool(optimizer.defaults.get("foreach"))


def _forward_backward(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    training: Training,
    loss_scope: dict[str, object] | None,
    storages: Storages,
    where: Progress,
) -> None:
    """forward(), the loss and backward(), in a frame of their own: what they hold is freed
    when it returns, as at the end of a training loop's iteration."""
    storages.kind_of_new = "activations"
    where.phase = "forward"
    autocast = (
        torch.autocast("cpu", dtype=AUTOCAST_DTYPES[training.precision])
        if training.precision in AUTOCAST_DTYPES
        else contextlib.nullcontext()
    )
    with autocast, meta_autocast():
        output = model(*args, **kwargs)
        where.phase = "loss"
        loss = loss_of(output, training.loss, args, loss_scope)
    del output
    storages.kind_of_new = "temporaries"
    where.phase = "backward"
    loss.backward()  # type: ignore[no-untyped-call]
    del loss
    for p in model.parameters():  # FSDP sets its sharded gradients without the hook
        if p.grad is not None:
            storages.reclassify(local(p.grad), "gradients")


def loss_of(
    output: Any, expression: str, args: tuple[Any, ...], scope: dict[str, object] | None = None
) -> torch.Tensor:
    """The step's loss: ``expression`` of ``output`` and ``inputs`` (the positional
    arguments), else the sum of the output's floating tensors that need a gradient."""
    if expression:
        names = {**(scope or {}), "torch": torch, "output": output, "inputs": args}
        value = eval(compile(expression, "<paramlens: loss>", "eval"), names)
        if not isinstance(value, torch.Tensor) or not value.requires_grad:
            raise StepError(f"the loss {expression} is not a tensor that needs a gradient")
        return value.sum() if value.dim() else value
    floats = [
        t
        for t in tree_flatten(plain(output))[0]
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


def _grad_is(storages: Storages) -> Callable[[torch.Tensor], None]:
    def hook(p: torch.Tensor) -> None:
        if p.grad is not None:
            storages.reclassify(local(p.grad), "gradients")

    return hook


def _first_state(optimizer: torch.optim.Optimizer, name: str, params: list[torch.Tensor]) -> None:
    """The state ``optimizer`` holds after its first step: Adam's and AdamW's step count and
    two moments, SGD's momentum buffer, made as torch's first step makes them (a first step
    on meta costs as much as the step itself: a second on GPT-2 XL)."""
    for p in params:
        if name in ("adam", "adamw"):
            optimizer.state[p] = {
                "step": torch.tensor(1.0, dtype=torch.float32, device="cpu"),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        elif name == "sgd-momentum":
            optimizer.state[p] = {"momentum_buffer": torch.zeros_like(p)}


def make_optimizer(
    name: str, params: list[torch.Tensor], foreach: bool = True
) -> torch.optim.Optimizer | None:
    """The optimizer as CUDA runs it by default: its ``foreach`` implementation."""
    if name == "none":
        return None
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3, foreach=foreach)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return torch.optim.AdamW(params, lr=1e-3, foreach=foreach)


@functools.cache
def multi_tensor_works(name: str, device: str) -> bool:
    """Whether this torch runs the optimizer's multi-tensor (``foreach``) step on
    ``device``. torch 2.1 has no meta kernel for some of its ops (``_foreach_div_`` of a
    list of scalars): its step then runs the for-loop implementation, and says so."""
    p = torch.zeros(2, device=device, requires_grad=True)
    p.grad = torch.zeros_like(p)
    optimizer = make_optimizer(name, [p])
    try:
        if optimizer is not None:
            optimizer.step()
    except NotImplementedError:
        return False
    return True


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
