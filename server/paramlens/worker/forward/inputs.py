"""forward()'s example input: the one configured, ``example_input_array``, shape
annotations (jaxtyping, ``Annotated``), a call in the workspace, or a guess from the
first layer (and the sizes a model declares).

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
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


# where models keep their sizes: GPT's config.block_size, LLaMA's params.max_seq_len,
# transformers' config.max_position_embeddings...
_HOLDERS = ("config", "params", "args", "cfg", "hparams")


class Declared:
    """The sizes a model declares: the arguments its constructor got (``image_size=32``),
    its attributes (``self.img_size``), and the fields of its config (an argument or an
    attribute named ``config``, ``params``...)."""

    def __init__(self, model: nn.Module, arguments: Mapping[str, object]) -> None:
        self.places: list[tuple[str, object]] = [("", arguments), ("", model)]
        for holder in _HOLDERS:
            for owner in (arguments.get(holder), getattr(model, holder, None)):
                if owner is not None and not isinstance(owner, (torch.Tensor, nn.Module)):
                    self.places.append((f"{holder}.", owner))

    def find(self, names: tuple[str, ...], dims: int = 1) -> tuple[tuple[int, ...], str] | None:
        """(sizes, where) of the first of ``names`` that holds ``dims`` positive ints (an
        int stands for all of them): ``((32, 32), "image_size")``."""
        for prefix, owner in self.places:
            for name in names:
                value = (
                    owner.get(name) if isinstance(owner, Mapping) else getattr(owner, name, None)
                )
                found = _sizes(value, dims)
                if found is not None:
                    return found, f"{prefix}{name}"
        return None

    def image(self, dims: int) -> tuple[tuple[int, ...], str] | None:
        """timm's ``pretrained_cfg["input_size"]`` (C, H, W), else an image size."""
        for prefix, owner in self.places[1:2]:
            for attr in ("pretrained_cfg", "default_cfg"):
                cfg = getattr(owner, attr, None)
                size = cfg.get("input_size") if isinstance(cfg, dict) else None
                if isinstance(size, (tuple, list)) and len(size) == dims + 1:
                    found = _sizes(list(size[1:]), dims)
                    if found is not None:
                        return found, f"{prefix}{attr}"
        return self.find(_IMAGE_NAMES, dims)


_IMAGE_NAMES = ("image_size", "img_size", "input_resolution", "image_resolution")
_CHANNEL_NAMES = ("channels", "in_chans", "in_channels", "num_channels", "n_channels")
_MEL_NAMES = ("n_mels", "num_mel_bins", "n_mel_channels")
# frames of a log-mel input: Whisper's n_audio_ctx (its convolutions halve the frames)
_AUDIO_CONTEXT_NAMES = ("n_audio_ctx", "max_source_positions")
_FRAME_NAMES = ("frames", "num_frames", "max_frames")
_FRAMES = 16  # a guessed video's frames
# a guessed input of more dimensions (vit-pytorch's ViTND) stays below this many values
_MAX_GUESSED_NUMEL = 1 << 24


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


def _declared_context(declared: Declared) -> tuple[int, str] | None:
    """(tokens, where) for a model that declares its context length: ``(1024,
    "config.block_size=1024")``, at most :data:`MAX_GUESSED_TOKENS`."""
    found = declared.find(_CONTEXT_NAMES)
    if found is None:
        return None
    (tokens,), where = found
    return min(tokens, MAX_GUESSED_TOKENS), where


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
    arguments: Mapping[str, object] = {},
    from_parent: tuple[str, str] | None = None,
) -> list[tuple[str, str]]:
    """(expression, source) pairs to try in order: the one configured, the model's
    ``example_input_array`` (PyTorch Lightning), forward()'s shape annotations, a call in
    the workspace, the arguments a parent model passed to it (``from_parent``: a block
    whose forward() takes several), else guesses from its first layer and the sizes it
    declares (``arguments``: its constructor's) for ``batch`` samples."""
    if given and not given_source.startswith(CALL_SITE_INPUT):
        return [(given, given_source)]
    if getattr(model, "example_input_array", None) is not None:
        return [("self.example_input_array", "example_input_array")]
    annotated = annotated_input(model, named)
    if annotated is not None:
        return [(annotated, "forward()'s shape annotations")]
    if given:
        return [(given, given_source)]
    first = [from_parent] if from_parent is not None else []
    return first + guessed_inputs(model, Declared(model, arguments), batch)


def guessed_inputs(model: nn.Module, declared: Declared, batch: int) -> list[tuple[str, str]]:
    """Inputs guessed from the first layer and the sizes the model declares."""
    layer = first_layer(model)
    patches = _image_rearrange(model)
    if patches is not None:  # einops' Rearrange("b c (h p1) (w p2) -> ...") first: an image
        return _images(patches, declared, batch, layer)
    if isinstance(layer, nn.Linear):  # a vector, else a sequence of them (a transformer block)
        source = f"guessed from Linear({layer.in_features} -> …)"
        guesses = [
            (f"torch.randn({batch}, {layer.in_features})", source),
            (f"torch.randn({batch}, {_TOKENS}, {layer.in_features})", source),
        ]
        context = _declared_context(declared)
        if context is not None and context[0] != _TOKENS:
            tokens, where = context
            guesses.insert(
                1, (f"torch.randn({batch}, {tokens}, {layer.in_features})", f"{source} and {where}")
            )
        image = declared.image(2)
        if image is not None:  # it declares an image size: it takes images
            return _images(_Patches(2), declared, batch, layer) + guesses
        return guesses + _flattened_images(layer.in_features, batch, source)
    if isinstance(layer, nn.Embedding):  # the declared context length, else a few tokens
        vocab = layer.num_embeddings
        source = f"guessed from Embedding({vocab}, …)"
        guesses = [(f"torch.randint(0, {vocab}, ({batch}, {_TOKENS}))", source)]
        context = _declared_context(declared)
        if context is not None and context[0] != _TOKENS:
            tokens, where = context
            guesses.insert(
                0, (f"torch.randint(0, {vocab}, ({batch}, {tokens}))", f"{source} and {where}")
            )
        return guesses
    if isinstance(layer, nn.modules.conv._ConvNd):
        dims = len(layer.kernel_size)
        channels = layer.in_channels
        source = f"guessed from {type(layer).__name__}({channels} -> …)"
        sizes = [((size,) * dims, source) for size in _IMAGE_SIZES]
        image = declared.image(dims)
        if image is not None:
            sizes.insert(0, (image[0], f"{source} and {image[1]}"))
        mels = declared.find(_MEL_NAMES)
        audio = declared.find(_AUDIO_CONTEXT_NAMES)
        if dims == 1 and mels is not None and mels[0] == (channels,) and audio is not None:
            frames, where = audio[0][0], f"{source}, {mels[1]} and"  # a log-mel spectrogram
            sizes[:0] = [
                ((2 * frames,), f"{where} 2 x {audio[1]}"),
                ((frames,), f"{where} {audio[1]}"),
            ]
        out: dict[str, str] = {}
        for size, where in sizes:
            expression = f"torch.randn({batch}, {channels}, {', '.join(map(str, size))})"
            out.setdefault(expression, where)
        return list(out.items())
    return []


def _flattened_images(features: int, batch: int, source: str) -> list[tuple[str, str]]:
    """Square images of 1 or 3 channels a forward() flattens into ``features`` itself
    (``b, c, h, w = x.size(); x.view(b, -1)``: MNIST's 784 = 1 x 28 x 28), tried last."""
    out = []
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if side >= 8 and channels * side * side == features:
            size = f"{batch}, {channels}, {side}, {side}"
            out.append((f"torch.randn({size})", f"{source} as a flattened image"))
    return out


@dataclasses.dataclass(frozen=True)
class _Patches:
    """An image input's layout from an einops pattern that reads one: how many spatial
    dimensions, what each must be a multiple of (``(h p1)``: of ``p1``), and how many
    channels a layer of ``n`` inputs after it means (``(p1 p2 c)``: ``n / (p1 * p2)``)."""

    dims: int
    multiples: tuple[int, ...] = ()
    per_channel: int = 0  # inputs of the next layer per channel; 0: unknown
    source: str = ""


# "b c (h p1) (w p2) -> b (h w) (p1 p2 c)": batch, channels, then spatial dimensions
_AXES = re.compile(r"\(([^)]*)\)|(\S+)")


def _axes(side: str) -> list[list[str]]:
    return [(group or name).split() for group, name in _AXES.findall(side)]


def _image_rearrange(model: nn.Module) -> _Patches | None:
    """The layout of an image input if the model's first module with no children is an
    einops ``Rearrange`` or ``Reduce`` whose pattern reads a ``b c h w`` tensor (or
    ``b c f h w``, or any number of spatial dimensions)."""
    leaf = next((m for m in model.modules() if not m._modules), None)
    pattern = getattr(leaf, "pattern", None)
    kind = type(leaf).__name__
    if kind not in ("Rearrange", "Reduce") or not isinstance(pattern, str) or "->" not in pattern:
        return None
    left, _, right = pattern.partition("->")
    axes = _axes(left)
    if len(axes) < 3 or any(len(a) != 1 or not a[0].isidentifier() for a in axes[:2]):
        return None
    lengths = getattr(leaf, "axes_lengths", None)
    lengths = lengths if isinstance(lengths, Mapping) else {}

    def product(names: list[str]) -> int:
        known = [lengths.get(n) for n in names]
        return math.prod(k for k in known if isinstance(k, int) and k > 0)

    channel = axes[1][0]
    holding = next((g for g in _axes(right) if channel in g), None)
    others = [n for n in holding or () if n != channel]
    known = all(isinstance(lengths.get(n), int) for n in others)
    return _Patches(
        len(axes) - 2,
        tuple(product(group) for group in axes[2:]),
        product(others) if holding is not None and known else 0,
        f'guessed from {kind}("{pattern.strip()}")',
    )


def _images(
    patches: _Patches, declared: Declared, batch: int, layer: nn.Module | None
) -> list[tuple[str, str]]:
    """Image inputs: the declared size and channels first, then common sizes that fit the
    patches; channels as declared, else as the first layer's inputs say, else 3."""
    dims = patches.dims
    source = patches.source or (
        f"guessed from Linear({layer.in_features} -> …)"
        if isinstance(layer, nn.Linear)
        else "guessed"
    )
    found = declared.find(_CHANNEL_NAMES)
    channels, wheres = (found[0][0], [found[1]]) if found is not None else (3, [])
    inputs = getattr(layer, "in_features", getattr(layer, "in_channels", 0))
    if found is None and patches.per_channel and inputs > 0 and inputs % patches.per_channel == 0:
        channels = inputs // patches.per_channel  # "(p1 p2 c)" into Linear(p1 * p2 * c)
    frames: tuple[int, ...] = ()  # a video's: (frames, height, width)
    if dims == 3:
        declared_frames = declared.find(_FRAME_NAMES)
        frames = declared_frames[0] if declared_frames is not None else (_FRAMES,)
        wheres += [declared_frames[1]] if declared_frames is not None else []
    spatial = dims - len(frames)
    patch = declared.find(("patch_size",), spatial)
    multiples = patches.multiples[len(frames) :] or (
        patch[0] if patch is not None else (1,) * spatial
    )
    sizes: list[tuple[tuple[int, ...], list[str]]] = []
    whole = declared.find(("input_shape",), dims)  # vit-pytorch's ViTND
    if whole is not None:
        sizes.append((whole[0], [whole[1]]))
    image = declared.image(spatial)
    if image is not None:
        sizes.append(((*frames, *image[0]), [image[1]]))
    for side in _IMAGE_SIZES:
        size = (*frames, *(side,) * spatial)
        if all(side % m == 0 for m in multiples) and math.prod(size) <= _MAX_GUESSED_NUMEL:
            sizes.append((size, []))
    out: dict[str, str] = {}
    for size, where in sizes:
        expression = f"torch.randn({batch}, {channels}, {', '.join(map(str, size))})"
        named = " and ".join([*where, *wheres])
        out.setdefault(expression, f"{source} and {named}" if named else source)
    return list(out.items())


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
