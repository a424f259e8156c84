"""forward()'s example input: the one configured, ``example_input_array``, shape
annotations (jaxtyping, ``Annotated``), a call in the workspace, or a guess from the
first layer (and the sizes a model declares).

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..protocol import CALL_SITE_INPUT

_IMAGE_SIZES = (224, 32, 28, 64)  # a guessed image input: the first size forward() accepts


_TOKENS = 16  # a guessed token input: [1, 16]


def _sizes(value: object, dims: int) -> tuple[int, ...] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value,) * dims
    if not isinstance(value, (tuple, list)) or len(value) != dims:
        return None
    return tuple(value) if all(isinstance(d, int) and d > 0 for d in value) else None


def _declared_image_size(model: nn.Module, dims: int) -> tuple[int, ...] | None:
    """The input size a model declares: timm's ``pretrained_cfg["input_size"]`` (C, H, W),
    or an ``img_size``/``image_size`` attribute (an int, or one per dimension)."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == dims + 1:
            found = _sizes(list(size[1:]), dims)
            if found is not None:
                return found
    for attr in ("img_size", "image_size"):
        found = _sizes(getattr(model, attr, None), dims)
        if found is not None:
            return found
    return None


# where models keep their context length: GPT's config.block_size, LLaMA's params.max_seq_len,
# transformers' config.max_position_embeddings...
_CONTEXT_HOLDERS = ("", "config", "params", "args", "cfg", "hparams")


_CONTEXT_NAMES = (
    "block_size",
    "max_seq_len",
    "max_seq_length",
    "max_sequence_length",
    "context_length",
    "n_ctx",
    "n_positions",
    "max_position_embeddings",
    "seq_len",
)


MAX_GUESSED_TOKENS = 1024  # a longer context is guessed at this length (set an input for more)


def _declared_context(model: nn.Module) -> tuple[int, str] | None:
    """(tokens, where) for a model that declares its context length: ``(1024,
    "config.block_size")``, at most :data:`MAX_GUESSED_TOKENS`."""
    for holder in _CONTEXT_HOLDERS:
        owner = getattr(model, holder, None) if holder else model
        if owner is None or isinstance(owner, torch.Tensor):
            continue
        for name in _CONTEXT_NAMES:
            value = owner.get(name) if isinstance(owner, dict) else getattr(owner, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                where = f"{holder}.{name}" if holder else name
                return min(value, MAX_GUESSED_TOKENS), where
    return None


def first_layer(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd)):
            return module
    return None


# named dimensions of shape annotations without a value in [tool.paramlens] dims
DEFAULT_DIMS = {"batch": 1, "b": 1, "bs": 1, "n": 1}


DEFAULT_DIM = 16  # any other name: seq, tokens, h, w...


_JAXTYPING = re.compile(r"\b(\w+)\[\s*[\w.]+\s*,\s*(['\"])(.*?)\2\s*\]")


_INTEGER_KINDS = ("Int", "Integer", "Long", "UInt", "Int64", "Int32", "Shaped", "Bool")


def _annotation_shape(annotation: object) -> tuple[str, str] | None:
    """(kind, dims) of a shape annotation: jaxtyping's ``Float[Tensor, "batch 3 224 224"]``
    (the object, or its text under ``from __future__ import annotations``), or
    ``Annotated[Tensor, "batch 3 224 224"]``."""
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, str):
                return "Float", meta
            if isinstance(meta, tuple) and all(isinstance(d, int) for d in meta):
                return "Float", " ".join(map(str, meta))
        return None
    dims = getattr(annotation, "dim_str", None)  # a jaxtyping class
    if isinstance(dims, str):
        return getattr(annotation, "__name__", "Float").partition("[")[0], dims
    if isinstance(annotation, str):
        match = _JAXTYPING.search(annotation)
        if match:
            return match.group(1), match.group(3)
        if annotation.startswith("Annotated["):
            quoted = re.search(r"(['\"])(.*?)\1", annotation)
            if quoted:
                return "Float", quoted.group(2)
    return None


def _tensor_from_dims(kind: str, dims: str, named: Mapping[str, int]) -> str | None:
    sizes = []
    for token in dims.replace(",", " ").split():
        token = token.lstrip("*#_")  # jaxtyping's variadic and broadcast markers
        if token in ("", "...") or token.startswith("..."):
            continue
        if token.isdigit():
            sizes.append(int(token))
        elif token.isidentifier():
            sizes.append(named.get(token, DEFAULT_DIMS.get(token.lower(), DEFAULT_DIM)))
        else:
            return None  # an expression such as "dim+1"
    size = ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else "")
    if kind in _INTEGER_KINDS:
        return f"torch.randint(0, 2, ({size}))"
    return f"torch.randn({size.rstrip(',')})"


def annotated_input(model: nn.Module, named: Mapping[str, int]) -> str | None:
    """forward()'s input from the shape annotations of its parameters, if all the required
    ones have one."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    parts = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is not parameter.empty:
            break  # the optional ones keep their defaults
        shape = _annotation_shape(parameter.annotation)
        tensor = None if shape is None else _tensor_from_dims(*shape, named)
        if tensor is None:
            return None
        parts.append(tensor)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else f"({', '.join(parts)})"


def candidate_inputs(
    model: nn.Module,
    given: str | None,
    given_source: str,
    named: Mapping[str, int] = {},
    batch: int = 1,
) -> list[tuple[str, str]]:
    """(expression, source) pairs to try in order: the one configured, the model's
    ``example_input_array`` (PyTorch Lightning), forward()'s shape annotations, a call in
    the workspace, else guesses from its first layer (of ``batch`` samples)."""
    if given and not given_source.startswith(CALL_SITE_INPUT):
        return [(given, given_source)]
    if getattr(model, "example_input_array", None) is not None:
        return [("self.example_input_array", "example_input_array")]
    annotated = annotated_input(model, named)
    if annotated is not None:
        return [(annotated, "forward()'s shape annotations")]
    if given:
        return [(given, given_source)]
    first = first_layer(model)
    if isinstance(first, nn.Linear):  # a vector, else a sequence of them (a transformer block)
        source = f"guessed from Linear({first.in_features} -> …)"
        return [
            (f"torch.randn({batch}, {first.in_features})", source),
            (f"torch.randn({batch}, {_TOKENS}, {first.in_features})", source),
        ]
    if isinstance(first, nn.Embedding):  # the declared context length, else a few tokens
        vocab = first.num_embeddings
        source = f"guessed from Embedding({vocab}, …)"
        guesses = [(f"torch.randint(0, {vocab}, ({batch}, {_TOKENS}))", source)]
        context = _declared_context(model)
        if context is not None and context[0] != _TOKENS:
            tokens, where = context
            guesses.insert(
                0, (f"torch.randint(0, {vocab}, ({batch}, {tokens}))", f"{source} and {where}")
            )
        return guesses
    if isinstance(first, nn.modules.conv._ConvNd):
        dims = len(first.kernel_size)
        channels = first.in_channels
        name = type(first).__name__
        sizes = [(size,) * dims for size in _IMAGE_SIZES]
        declared = _declared_image_size(model, dims)
        if declared is not None:
            sizes.insert(0, declared)
        return [
            (
                f"torch.randn({batch}, {channels}, {', '.join(map(str, size))})",
                f"guessed from {name}({channels} -> …)",
            )
            for size in dict.fromkeys(sizes)
        ]
    return []


def evaluate_input(
    expression: str, model: nn.Module, namespace: dict[str, object]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments ``expression`` stands for: a tensor, a tuple
    (several positional arguments) or a dict (keyword arguments)."""
    scope = {**namespace, "torch": torch, "self": model}
    value = eval(compile(expression, "<paramlens: input>", "eval"), scope)
    if isinstance(value, dict):
        return (), value
    if isinstance(value, tuple):
        return value, {}
    return (value,), {}
