"""A forward() that failed, in words: the user's line that raised, in the wording users
search for, and, where the fix is one number in a layer's declaration, that number.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import dataclasses
import re

import torch
from torch import nn

from ..layers import describe
from ..protocol import ErrorInfo, ShapeFix
from .context import ForwardContext
from .counters import Calls


def _expected(module: nn.Module, x: torch.Tensor) -> tuple[str, int, int] | None:
    """(parameter, declared, what the input needs) when ``x`` does not fit ``module``."""
    if x.dim() == 0:
        return None
    if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
        return "in_features", module.in_features, int(x.shape[-1])
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups == 1:
        dims = len(module.kernel_size)
        if x.dim() >= dims + 1 and x.shape[-dims - 1] != module.in_channels:
            return "in_channels", module.in_channels, int(x.shape[-dims - 1])
    norm = nn.modules.batchnorm._NormBase
    if isinstance(module, norm) and x.dim() >= 2 and x.shape[1] != module.num_features:
        return "num_features", module.num_features, int(x.shape[1])
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        width = module.normalized_shape[0]
        if x.shape[-1] != width:
            return "normalized_shape", width, int(x.shape[-1])
    if isinstance(module, nn.MultiheadAttention) and x.shape[-1] != module.embed_dim:
        return "embed_dim", module.embed_dim, int(x.shape[-1])
    return None


# meta kernels word some errors differently from the CPU ones users search for
_META_WORDING = (
    (
        re.compile(r"a and b must have same reduction dim, but got \[(.*?)\] X \[(.*?)\]"),
        lambda m: "mat1 and mat2 shapes cannot be multiplied ({} and {})".format(
            "x".join(p.strip() for p in m.group(1).split(",")),
            "x".join(p.strip() for p in m.group(2).split(",")),
        ),
    ),
)


def cpu_wording(message: str) -> str:
    for pattern, words in _META_WORDING:
        message = pattern.sub(words, message)
    return message


def explain(
    exc: BaseException, calls: Calls, ctx: ForwardContext, first: nn.Module | None
) -> tuple[ErrorInfo, tuple[str, int] | None, ShapeFix | None]:
    """The error at the user's line in forward() that raised; for a layer that received an
    input it was not declared for, which number its declaration should have."""
    error = ctx.error_from(exc)
    error = dataclasses.replace(error, message=cpu_wording(error.message), kind="forward")
    if not calls.stack:
        return error, None, None
    module, args, shown, _ = calls.stack[-1]
    site = ctx.site(module)
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    mismatch = _expected(module, x) if x is not None else None
    if mismatch is None:
        return error, site, None
    param, old, new = mismatch
    path = ctx.names.get(id(module))
    who = f"self.{path}" if path else type(module).__name__
    message = f"{who} is {describe(module)} but receives {shown}: {param} should be {new}"
    if site is not None:
        message += f" (declared at line {site[1]})"
    fix = None
    if site is not None:
        internal = first is not None and module is not first
        fix = ShapeFix(site[0], site[1], type(module).__name__, param, old, new, internal)
    return dataclasses.replace(error, message=message), site, fix
