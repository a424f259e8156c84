"""Words for a layer: ``Linear(784 -> 512)``, and a module's class path.

Shared by measuring (each line's description) and by forward()'s shape errors.
Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

from torch import nn

from .protocol import type_name


def describe(module: nn.Module) -> str:
    """A short, human form of a layer, e.g. ``Linear(784 -> 512)``; its type if that fails.

    Never raises: a user may have monkeypatched the layer's attributes into anything.
    """
    try:
        return _describe(module)
    except Exception:
        return type_name(module)


def _describe(module: nn.Module) -> str:
    kind = type_name(module)
    if isinstance(module, nn.Linear):
        return f"{kind}({module.in_features} -> {module.out_features})"
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = "x".join(str(k) for k in module.kernel_size)
        return f"{kind}({module.in_channels} -> {module.out_channels}, {kernel})"
    if isinstance(module, nn.Embedding):
        return f"{kind}({module.num_embeddings}, {module.embedding_dim})"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"{kind}({module.num_features})"
    if isinstance(module, nn.LayerNorm):
        return f"{kind}({', '.join(str(d) for d in module.normalized_shape)})"
    if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        extras = [f"{module.num_layers} layers"] if module.num_layers > 1 else []
        extras += ["bidirectional"] if module.bidirectional else []
        return f"{kind}({', '.join([f'{module.input_size} -> {module.hidden_size}', *extras])})"
    return kind


def describe_all(modules: list[nn.Module]) -> str:
    """The common description of several instances, or their type if they differ."""
    forms = {describe(m) for m in modules}
    return forms.pop() if len(forms) == 1 else type_name(modules[0])


def qualtype(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"
