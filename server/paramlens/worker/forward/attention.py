"""``scaled_dot_product_attention`` as a GPU would run it, for the simulated training step.

On meta, torch takes the math path, which keeps the N x N attention matrix for backward; a
GPU runs a fused kernel when it can (flash, memory-efficient), which keeps the output and
a log-sum-exp instead. During the step, ``F.scaled_dot_product_attention`` is replaced by
a function that picks the kernel the GPU would pick (or the one the user named) and calls
that kernel's own operator, so autograd saves what that kernel saves.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

_HALF = (torch.float16, torch.bfloat16)


def gpu_kernel(
    query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None, dropout_p: float
) -> str:
    """The kernel torch's CUDA dispatch picks (``sdp_utils.cpp``, flash before efficient
    before math), from what decides it here: dtype, head size and the mask."""
    head = query.shape[-1]
    same_heads = query.dim() == 4 and key.shape[-3] == query.shape[-3]
    flash_head = head <= 256 and head % 8 == 0
    if query.dtype in _HALF and flash_head and attn_mask is None and same_heads:
        return "flash"
    if query.dim() == 4 and head % (8 if query.dtype in _HALF else 4) == 0 and same_heads:
        return "efficient"
    return "math"


class Attention:
    """Which kernels ran; the replacement of ``F.scaled_dot_product_attention``."""

    def __init__(self, choice: str) -> None:
        self.choice = choice  # "auto" (the GPU's), "math", "flash" or "efficient"
        self.used: dict[str, int] = {}
        self.original = F.scaled_dot_product_attention

    def summary(self) -> str:
        """``efficient`` or ``flash 12, math 2`` (calls); "" if no attention ran."""
        if len(self.used) == 1:
            return next(iter(self.used))
        return ", ".join(f"{k} {n}" for k, n in sorted(self.used.items()))

    def __call__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        **more: Any,
    ) -> torch.Tensor:
        kernel = self.choice
        if kernel == "auto":
            kernel = gpu_kernel(query, key, attn_mask, dropout_p)
        if more.get("enable_gqa") and key.shape[-3] != query.shape[-3]:
            kernel = "math"  # the fused kernels here take as many key heads as query heads
        if kernel != "math" and query.dim() != 4:
            kernel = "math"
        if kernel == "flash" and attn_mask is not None:
            kernel = "efficient"  # flash takes no mask
        if kernel != "math":
            try:
                out = self._fused(kernel, query, key, value, attn_mask, dropout_p, is_causal, scale)
                self.used[kernel] = self.used.get(kernel, 0) + 1
                return out
            except (NotImplementedError, RuntimeError, AttributeError, TypeError):
                # an older torch without this kernel's meta function or with another
                # signature: the math path, as this torch would take
                kernel = "math"
        self.used[kernel] = self.used.get(kernel, 0) + 1
        with _math_only():
            return self.original(
                query, key, value, attn_mask, dropout_p, is_causal, scale=scale, **more
            )

    def _fused(
        self,
        kernel: str,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None,
        dropout_p: float,
        is_causal: bool,
        scale: float | None,
    ) -> torch.Tensor:
        aten = torch.ops.aten
        if query.device.type == "cpu" and not _is_fake(query):
            # real tensors on the CPU: the CPU's own fused kernel (what the accuracy
            # benchmark compares with), which saves what flash saves
            out = aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
            )
        elif kernel == "flash":
            out = aten._scaled_dot_product_flash_attention(
                query, key, value, dropout_p, is_causal, False, scale=scale
            )
        else:
            bias = _as_bias(attn_mask, query)
            grads = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
            out = aten._scaled_dot_product_efficient_attention(
                query, key, value, bias, grads, dropout_p, is_causal, scale=scale
            )
        first: torch.Tensor = out[0]
        return first


def _math_only() -> contextlib.AbstractContextManager[object]:
    """torch's math path for SDPA (meta takes no other; the CPU would take its fused one)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
    except ImportError:
        return contextlib.nullcontext()  # the CPU of older torch had no fused kernel
    return sdpa_kernel([SDPBackend.MATH])


def _as_bias(mask: torch.Tensor | None, query: torch.Tensor) -> torch.Tensor | None:
    """A boolean mask as the additive bias the efficient kernel takes (as torch converts it),
    broadcast to (batch, heads, L, S) without copying."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        mask = torch.where(mask, 0.0, -math.inf).to(query.dtype)
    return mask.expand(*query.shape[:-1], mask.shape[-1])


def _is_fake(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "FakeTensor"


@contextlib.contextmanager
def attention_as(choice: str) -> Iterator[Attention]:
    """``F.scaled_dot_product_attention`` runs through an :class:`Attention` meanwhile."""
    attention = Attention(choice)
    F.scaled_dot_product_attention = attention  # type: ignore[assignment]
    try:
        yield attention
    finally:
        F.scaled_dot_product_attention = attention.original
