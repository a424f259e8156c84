"""Training memory: what one training step holds (parameters, gradients, optimizer
state, the activations autograd saves), and the saved activations under autocast.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import torch
from torch import nn

from .counters import SavedForBackward
from .inputs import evaluate_input
from .variants import on_fake_cpu

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_saved_bytes(
    model: nn.Module, expression: str, namespace: dict[str, object], precision: str
) -> int:
    """What autograd saves for backward when forward() runs under mixed precision
    (``torch.autocast`` to bf16 or fp16): the half-precision copies that matmuls and
    convolutions keep, and the float32 tensors the rest keeps. Autocast does not apply to
    meta tensors, so this runs on fake CPU tensors (shapes and dtypes, no memory), with the
    model's parameters and buffers swapped for fake ones meanwhile (tied ones stay tied)."""
    with on_fake_cpu(model):
        args, kwargs = evaluate_input(expression, model, namespace)
        saved = SavedForBackward(model)
        with saved.hooks(), torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision]):
            if not _autocast_on():
                raise RuntimeError(f"this torch does not autocast to {precision} on the CPU")
            model(*args, **kwargs)
        return saved.nbytes


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")  # torch >= 2.4
    except TypeError:
        return torch.is_autocast_cpu_enabled()


# optimizer state per trainable parameter, in copies of it: AdamW keeps exp_avg and exp_avg_sq
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd-momentum": 1, "sgd": 0, "none": 0}


def training_bytes(model: nn.Module, activation_bytes: int, optimizer: str) -> int:
    """Parameters + gradients + optimizer state + activations saved for backward."""
    params = list(model.parameters())  # each once, as torch counts them
    held = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    return held + trainable * (1 + OPTIMIZER_STATES.get(optimizer, 2)) + activation_bytes
