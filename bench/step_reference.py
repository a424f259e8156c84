"""The training step measured on real CPU tensors: the reference the simulated step
(``paramlens.worker.forward.step.simulate_step`` on meta) is checked against, by
bench.step_accuracy and tests/worker/test_step.py.

The step is the one the simulation models, run for real: after a warm-up optimizer step
(which creates the optimizer's state), forward with the input, the loss, ``backward()``,
``optimizer.step()`` (``foreach=True``, CUDA's default) and ``zero_grad(set_to_none=True)``.
Attention runs through torch's own SDPA dispatch with the backend pinned
(``sdpa_kernel``): "flash" is the CPU's fused kernel, "math" the math path. The live
storages are counted two independent ways:

- :func:`measure_step`: with paramlens's storage accounting (``forward/storages.py``)
  watching real tensors;
- :func:`memtracker_step`: with torch's own
  ``torch.distributed._tools.mem_tracker.MemTracker``, on a second iteration (the first
  creates the optimizer's state; ``reset_mod_stats`` between them, as MemTracker asks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from paramlens.worker.forward.step import loss_of, make_optimizer
from paramlens.worker.forward.storages import Storages
from paramlens.worker.forward.variants import checkpointing
from paramlens.worker.protocol import Training
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

Inputs = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass
class Measured:
    peak: int
    phase: str = ""
    by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def optimizer_for(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer | None:
    """The optimizer as CUDA runs it by default (``foreach``): the worker's own choice."""
    return make_optimizer(name, list(params))


@contextlib.contextmanager
def attention_backend(choice: str) -> Iterator[None]:
    """SDPA pinned to one backend: on the CPU "flash" (and "efficient", which the CPU lacks)
    is the fused kernel ``_scaled_dot_product_flash_attention_for_cpu``; "auto" leaves torch
    to choose (the fused kernel where it applies)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if choice == "math":
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    elif choice in ("flash", "efficient"):
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            yield
    else:
        yield


def _bf16(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16)
    return value


def _step_context(
    training: Training, device: str = "cpu"
) -> contextlib.AbstractContextManager[None]:
    if training.precision in AUTOCAST:
        return torch.autocast(device, dtype=AUTOCAST[training.precision])
    return contextlib.nullcontext()


def _one_step(
    model: nn.Module,
    inputs: tuple[tuple[Any, ...], dict[str, Any]],
    training: Training,
    optimizer: torch.optim.Optimizer | None,
    device: str = "cpu",
) -> None:
    """forward, loss and backward in a frame of their own (what they hold is freed on
    return), then the optimizer's step and zero_grad (else the gradients dropped)."""
    args, kwargs = inputs
    with attention_backend(training.attention), _step_context(training, device):
        output = model(*args, **kwargs)
        loss = loss_of(output, training.loss, args)
    del output
    loss.backward()  # type: ignore[no-untyped-call]
    del loss
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    else:
        for p in model.parameters():
            p.grad = None


def measure_step(model: nn.Module, make_input: Inputs, training: Training) -> Measured:
    """The peak of one real training step of ``model`` (real CPU tensors), every storage
    counted by paramlens's accounting. ``training.batch`` is not applied: build the input at
    the batch wanted. bf16-pure converts the model to bfloat16 for good."""
    started = time.perf_counter()
    if training.precision == "bf16-pure":
        model.to(torch.bfloat16)
    phase = [""]
    storages = Storages("cpu", lambda: (phase[0], ""))
    trainable = [p for p in model.parameters() if p.requires_grad]
    with storages, checkpointing(model, training.checkpoint):
        for p in model.parameters():
            storages.track(p, "parameters")
        for b in model.buffers():
            storages.track(b, "buffers")
        storages.kind_of_new = "inputs"
        args, kwargs = make_input()
        if training.precision == "bf16-pure":
            args, kwargs = tree_map(_bf16, (args, kwargs))
        optimizer = optimizer_for(training.optimizer, trainable)
        if optimizer is not None:  # warm-up: the optimizer's state, as after one step
            storages.kind_of_new = "optimizer_state"
            for p in trainable:
                p.grad = torch.zeros_like(p)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        hooks = [p.register_post_accumulate_grad_hook(_gradient_of(storages)) for p in trainable]
        storages.start_peak()
        _forward_backward(model, args, kwargs, training, storages, phase)
        for hook in hooks:
            hook.remove()
        storages.kind_of_new = "temporaries"
        if optimizer is not None:
            phase[0] = "optimizer"
            optimizer.step()
            phase[0] = "zero_grad"
            optimizer.zero_grad(set_to_none=True)
        else:
            for p in trainable:
                p.grad = None
    peak = storages.peak
    return Measured(peak.total, peak.phase, dict(peak.by_kind), time.perf_counter() - started)


def _gradient_of(storages: Storages) -> Callable[[torch.Tensor], None]:
    def hook(p: torch.Tensor) -> None:
        if p.grad is not None:
            storages.reclassify(p.grad, "gradients")

    return hook


def _forward_backward(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    training: Training,
    storages: Storages,
    phase: list[str],
) -> None:
    """In a frame of its own, so that the output and the loss are freed on return."""
    storages.kind_of_new = "activations"
    phase[0] = "forward"
    with attention_backend(training.attention):
        with _step_context(training):
            output = model(*args, **kwargs)
            phase[0] = "loss"
            loss = loss_of(output, training.loss, args)
        del output
        storages.kind_of_new = "temporaries"
        phase[0] = "backward"
        loss.backward()


def has_memtracker() -> bool:
    try:
        from torch.distributed._tools.mem_tracker import MemTracker  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _hooks_skip_frozen() -> Iterator[None]:
    """MemTracker hooks every parameter, and torch refuses a hook on a tensor that needs
    no gradient: skip those (a frozen parameter never gets a gradient to track)."""

    class _NoHandle:
        def remove(self) -> None:
            pass

    names = ("register_hook", "register_post_accumulate_grad_hook")
    originals = {name: getattr(torch.Tensor, name) for name in names}

    def guarded(original: Callable[..., Any]) -> Callable[..., Any]:
        def register(self: torch.Tensor, hook: Callable[..., Any]) -> Any:
            if not self.requires_grad:
                return _NoHandle()
            return original(self, hook)

        return register

    for name, original in originals.items():
        setattr(torch.Tensor, name, guarded(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def memtracker_step(model: nn.Module, make_input: Inputs, training: Training) -> Measured:
    """The peak MemTracker reports for the second of two real training steps (the first
    makes the optimizer's state), by its own categories."""
    from torch.distributed._tools.mem_tracker import MemTracker

    started = time.perf_counter()
    if training.precision == "bf16-pure":
        model.to(torch.bfloat16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    args, kwargs = make_input()
    if training.precision == "bf16-pure":
        args, kwargs = tree_map(_bf16, (args, kwargs))
    optimizer = optimizer_for(training.optimizer, trainable)
    tracker = MemTracker()
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    tracker.track_external(model, *([optimizer] if optimizer else []), *tensors)

    with _hooks_skip_frozen(), checkpointing(model, training.checkpoint):
        with tracker:
            _one_step(model, (args, kwargs), training, optimizer)
        tracker.reset_mod_stats()
        with tracker:
            _one_step(model, (args, kwargs), training, optimizer)
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
    total = peak.pop("Total")
    by_kind = {str(getattr(k, "value", k)): v for k, v in peak.items()}
    return Measured(total, "", by_kind, time.perf_counter() - started)


def cuda_step(build: Callable[[], nn.Module], make_input: Inputs, training: Training) -> int:
    """``torch.cuda.max_memory_allocated()`` over one training step on the GPU (after a
    first step that made the optimizer's state and cuBLAS's workspace), with torch's own
    choices there: foreach, and the attention kernel CUDA picks unless one is named."""
    device = torch.device("cuda")
    with torch.device(device):
        model = build()
    if training.precision == "bf16-pure":
        model = model.to(torch.bfloat16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer_for(training.optimizer, trainable)
    with torch.device(device):
        args, kwargs = make_input()
    if training.precision == "bf16-pure":
        args, kwargs = tree_map(_bf16, (args, kwargs))

    def one_step() -> None:
        with checkpointing(model, training.checkpoint):
            _one_step(model, (args, kwargs), training, optimizer, "cuda")

    one_step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    one_step()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())
