"""Shapes through forward(): run a built model's forward() on its device (meta: no weights,
no compute) with an example input, and record

- every module call's input and output shapes and multiply-adds (torch's FlopCounterMode);
- the shapes each workspace line of forward() assigns or returns (for inline hints);
- when forward() fails, the user's line that raised, in words a user searches for, and,
  where the fix is one number in a layer's declaration, that number.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import linecache
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from . import repeats
from .protocol import CALL_SITE_INPUT, ErrorInfo, ForwardInfo, InlineShape, ShapeFix

_IMAGE_SIZES = (224, 32, 28, 64)  # a guessed image input: the first size forward() accepts
_TOKENS = 16  # a guessed token input: [1, 16]
# BatchNorm in training, on one sample of a pooled feature map ([1, C, 1, 1] or [1, C])
_ONE_VALUE_PER_CHANNEL = "Expected more than 1 value per channel when training"
_MAX_INLINE = 4  # distinct shapes kept per line


@dataclasses.dataclass(frozen=True)
class ForwardContext:
    """What forward() runs with, besides the model and its input."""

    namespace: dict[str, object]  # where the input expression is evaluated
    device: str
    is_user_file: Callable[[str], bool]
    error_from: Callable[[BaseException], ErrorInfo]
    names: Mapping[int, str]  # id(module) -> its dotted path in the model
    site: Callable[[nn.Module], tuple[str, int] | None]  # the line that declared a module
    dims: Mapping[str, int]  # values of named dimensions in shape annotations
    # trace forward()'s lines for the shapes they assign (a ViT-B's forward() on meta:
    # 101 ms instead of 88, the tracer off inside torch's ops)
    line_shapes: bool = True


@dataclasses.dataclass
class ModuleCall:
    inputs: str
    output: str
    macs: int = 0
    saved: int = 0  # bytes autograd saved for backward during the call (its children's too)


def shape_text(value: object) -> str:
    """``[1, 512]`` for a tensor, ``([1, 4], [1, 4])`` for a tuple of tensors..."""
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(str(int(d)) for d in value.shape) + "]"
    if isinstance(value, (tuple, list)) and value:
        parts = [shape_text(v) for v in value[:4]]
        more = ", …" if len(value) > 4 else ""
        return f"({', '.join(parts)}{more})"
    if isinstance(value, Mapping) and value:
        items = [f"{k}: {shape_text(v)}" for k, v in list(value.items())[:4]]
        return "{" + ", ".join(items) + "}"
    if hasattr(value, "to_tuple") and callable(value.to_tuple):  # transformers' ModelOutput
        return shape_text(value.to_tuple())
    return type(value).__name__


# -- the input --------------------------------------------------------------------


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


def _first_layer(model: nn.Module) -> nn.Module | None:
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
    first = _first_layer(model)
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


def _evaluate(
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


# -- what each module call sees ---------------------------------------------------


class _Calls:
    """Every module call's shapes, by module, and the calls in progress (a stack)."""

    def __init__(self) -> None:
        self.by_module: dict[int, list[ModuleCall]] = {}
        # the calls in progress: module, its arguments, their shapes, bytes saved so far
        self.stack: list[tuple[nn.Module, tuple[Any, ...], str, list[int]]] = []

    def pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        shown = shape_text(args[0] if len(args) == 1 else args) if args else shape_text(kwargs)
        self.stack.append((module, args, shown, [0]))

    def post(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if self.stack and self.stack[-1][0] is module:
            _, _, shown, saved = self.stack.pop()
            call = ModuleCall(shown, shape_text(output), saved=saved[0])
            self.by_module.setdefault(id(module), []).append(call)

    def saved(self, nbytes: int) -> None:
        """Autograd saved ``nbytes`` for backward: during every call in progress."""
        for _, _, _, saved in self.stack:
            saved[0] += nbytes


class _MultiplyAdds(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """FLOPs by torch's own formulas (FlopCounterMode's), for the whole of forward() and for
    each module on the call stack. FlopCounterMode itself also tracks modules through
    backward hooks on every output, which costs more than the meta forward() does."""

    def __init__(self, calls: _Calls) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        from torch.utils.flop_counter import flop_registry

        self.registry: Mapping[Any, Callable[..., int]] = flop_registry
        self.calls = calls
        self.flops = 0
        self.by_module: dict[int, int] = {}
        self.created: list[object] | None = None  # while a repeated block is recorded

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        formula = self.registry.get(func._overloadpacket)
        if formula is None and func is not torch.ops.prim.device.default:
            with self:  # a composite op: count the ops it is made of (as FlopCounterMode does)
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        if self.created is not None:
            self.created.append(out)
        if formula is not None:
            self.count(int(formula(*args, **kwargs, out_val=out)))
        return out

    def count(self, flops: int) -> None:
        """``flops`` done: in all, and by every module whose call is in progress."""
        self.flops += flops
        for module_id in {id(module) for module, _, _, _ in self.calls.stack}:
            self.by_module[module_id] = self.by_module.get(module_id, 0) + flops


@contextlib.contextmanager
def _hooked(model: nn.Module, calls: _Calls) -> Iterator[None]:
    modules = list(model.modules())
    handles = [m.register_forward_pre_hook(calls.pre, with_kwargs=True) for m in modules]
    handles += [m.register_forward_hook(calls.post, with_kwargs=True) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# -- shapes of forward()'s own lines ----------------------------------------------


@functools.cache  # a job's files do not change while it runs (each job is a fresh process)
def _targets(filename: str) -> dict[int, list[tuple[str, int]]]:
    """Line -> the names its statement assigns, each with the column after it (``return``
    lines get the name ``return``). Parsed once per file and job: timm's 5,000-line
    vision_transformer.py takes 100 ms, as long as a ViT's whole forward() on meta."""
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    found: dict[int, list[tuple[str, int]]] = {}

    def names(target: ast.expr) -> Iterator[ast.Name]:
        if isinstance(target, ast.Name):
            yield target
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                yield from names(element)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = [n for t in node.targets for n in names(t)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = list(names(node.target))
        elif isinstance(node, ast.Return) and node.value is not None:
            found.setdefault(node.lineno, []).append(("return", node.col_offset + len("return")))
            continue
        else:
            continue
        for name in targets:
            if name.end_col_offset is not None:
                found.setdefault(node.lineno, []).append((name.id, name.end_col_offset))
    return found


class _LineShapes:
    """A tracer for workspace frames: after each assignment line, the shapes of the
    tensors it assigned; on ``return``, the shape returned."""

    def __init__(self, is_user_file: Callable[[str], bool]) -> None:
        self.is_user_file = is_user_file
        self.shapes: dict[tuple[str, int, int, str], list[str]] = {}
        self._user: dict[str, bool] = {}
        self._last: dict[types.FrameType, int] = {}

    def _record(self, frame: types.FrameType, line: int, value_of: Callable[[str], object]) -> None:
        filename = frame.f_code.co_filename
        for name, column in _targets(filename).get(line, ()):
            value = value_of(name)
            if not isinstance(value, (torch.Tensor, tuple, list)):
                continue
            text = shape_text(value)
            if text[:1] not in "[(":
                continue
            seen = self.shapes.setdefault((filename, line, column, name), [])
            if text not in seen and len(seen) < _MAX_INLINE:
                seen.append(text)

    def trace(self, frame: types.FrameType, event: str, arg: object) -> Any:
        filename = frame.f_code.co_filename
        user = self._user.get(filename)
        if user is None:
            user = self._user[filename] = self.is_user_file(filename)
        if not user:
            return None
        return self._local

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Any:
        previous = self._last.get(frame)
        if (
            previous is not None
            and event in ("line", "return")
            and previous in _targets(frame.f_code.co_filename)
        ):
            local_vars = frame.f_locals  # a snapshot: costly, so only after an assignment
            self._record(frame, previous, local_vars.get)
        if event == "line":
            self._last[frame] = frame.f_lineno
        elif event == "exception":  # the line raised: it assigned nothing
            self._last.pop(frame, None)
        elif event == "return":
            self._last.pop(frame, None)
            self._record(frame, frame.f_lineno, lambda name: arg if name == "return" else None)
        return self._local

    def result(self) -> tuple[InlineShape, ...]:
        return tuple(
            InlineShape(file, line, column, name, tuple(shapes))
            for (file, line, column, name), shapes in sorted(self.shapes.items())
        )

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """Trace forward(), but not inside torch's ops (see :class:`_OpsUntraced`)."""
        previous = sys.gettrace()
        with _OpsUntraced(self.trace):
            sys.settrace(self.trace)
            try:
                yield
            finally:
                sys.settrace(previous)


class _OpsUntraced(TorchFunctionMode):
    """Each torch op runs with the tracer off. A tracer is called on every Python call;
    on meta, an op's kernel is Python (torch's meta registrations and decompositions):
    141,000 calls in a ViT-B's forward(), which tracing took from 88 ms to 185 ms. Off
    inside ops, 101 ms. What an op calls back (a tensor subclass's own Python) goes
    untraced too; the user's lines around it do not."""

    def __init__(self, tracer: Callable[..., Any]) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        sys.settrace(None)
        try:
            return func(*args, **(kwargs or {}))
        finally:
            sys.settrace(self.tracer)


# -- running it -------------------------------------------------------------------


def run_forward(
    model: nn.Module, given: str | None, given_source: str, ctx: ForwardContext
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]]:
    """forward() with the first candidate input it accepts (a configured input is the only
    candidate), under no_grad-free meta execution. None: no input to try."""
    if getattr(type(model), "forward", None) is nn.Module.forward:
        return None, {}  # a container of parameters with no forward() of its own
    candidates = candidate_inputs(model, given, given_source, ctx.dims)
    if not candidates:
        return None, {}
    # on meta, repeated blocks run once (on the CPU, values differ from block to block)
    members = (
        repeats.blocks(model)
        if ctx.device == "meta" and os.environ.get("PARAMLENS_NO_REPEATS") != "1"
        else None
    )
    failures: list[tuple[ForwardInfo, dict[int, list[ModuleCall]]]] = []
    for index, (expression, source) in enumerate(candidates):
        info, calls = _attempt(model, expression, source, ctx, members)
        if info.guessed and info.error is not None and _ONE_VALUE_PER_CHANNEL in info.error.message:
            # BatchNorm after global pooling (MobileNet's head): training needs a batch of 2
            expression, _ = candidate_inputs(model, given, given_source, ctx.dims, batch=2)[index]
            source += "; a batch of 2, as BatchNorm needs in training"
            info, calls = _attempt(model, expression, source, ctx, members)
        if info.error is None:
            return info, calls
        failures.append((info, calls))
    # A guess that fitted the first layer but not a later one blames that layer. Guesses
    # that did so differently (a classifier sized for another image size): which guess was
    # right is unknown, so no layer is to blame for certain.
    inside = [(f, c) for f, c in failures if f.fix is not None and f.fix.internal]
    blamed = {(f.fix.file, f.fix.line, f.fix.new) for f, _ in inside if f.fix is not None}
    if len(blamed) == 1:
        return inside[0]
    info, calls = failures[0]
    if info.fix is not None and info.fix.internal:
        info = dataclasses.replace(info, fix=dataclasses.replace(info.fix, internal=False))
    return info, calls


def _attempt(
    model: nn.Module,
    expression: str,
    source: str,
    ctx: ForwardContext,
    members: Mapping[int, repeats.Member] | None,
) -> tuple[ForwardInfo, dict[int, list[ModuleCall]]]:
    guessed = source.startswith("guessed")
    base = ForwardInfo(input=expression, input_source=source, guessed=guessed)
    try:
        with torch.device(ctx.device):
            args, kwargs = _evaluate(expression, model, ctx.namespace)
    except Exception as exc:
        message = f"the input {expression} ({source}) failed: {ctx.error_from(exc).message}"
        return dataclasses.replace(base, error=ErrorInfo(message, kind="input")), {}
    base = dataclasses.replace(
        base, input_shape=shape_text(args[0] if len(args) == 1 else args or kwargs)
    )
    tracer = _LineShapes(ctx.is_user_file)
    calls = _Calls()
    counter = _MultiplyAdds(calls)
    saved = _SavedForBackward(model, calls)
    traced = tracer.tracing() if ctx.line_shapes else contextlib.nullcontext()
    replayed = repeats.replaying(members, calls, counter, saved)
    try:
        with (
            _hooked(model, calls),
            counter,
            saved.hooks(),
            torch.device(ctx.device),
            traced,
            replayed,
        ):
            output = model(*args, **kwargs)
    except Exception as exc:
        if isinstance(exc, (TimeoutError, MemoryError)):
            raise  # the job's deadline or memory cap: the build's to report
        error, declared, fix = _explain(exc, calls, ctx, _first_layer(model))
        failed = dataclasses.replace(
            base, error=error, declared=declared, fix=fix, lines=tracer.result()
        )
        return failed, calls.by_module
    # multiply-adds: 2 FLOPs each; a module called several times gets its share per call
    for module in model.modules():
        module_calls = calls.by_module.get(id(module), [])
        total = counter.by_module.get(id(module), 0) // 2
        for call in module_calls:
            call.macs = total // len(module_calls)
    done = dataclasses.replace(
        base,
        output_shape=shape_text(output),
        macs=counter.flops // 2,
        lines=tracer.result(),
        activation_bytes=saved.nbytes,
    )
    return done, calls.by_module


class _SavedForBackward:
    """The bytes of the tensors autograd saves for backward during forward() (what training
    holds on top of parameters, gradients and optimizer state), each tensor once; the
    parameters themselves, which backward also reads, are not counted again."""

    def __init__(self, model: nn.Module, calls: _Calls | None = None) -> None:
        self.parameters = {id(p) for p in model.parameters()}
        self.seen: set[int] = set()
        self.kept: list[torch.Tensor] = []  # keeps ids unique while counting
        self.nbytes = 0
        self.calls = calls  # to say which module calls saved what

    def first_time(self, tensor: torch.Tensor) -> bool:
        """Mark ``tensor`` as saved; whether it was not already."""
        if id(tensor) in self.seen:
            return False
        self.seen.add(id(tensor))
        self.kept.append(tensor)
        return True

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in self.parameters and self.first_time(base):
            self.count(base.numel() * base.element_size())
        return tensor

    def count(self, nbytes: int) -> None:
        """``nbytes`` saved for backward: in all, and during every call in progress."""
        self.nbytes += nbytes
        if self.calls is not None:
            self.calls.saved(nbytes)

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_saved_bytes(
    model: nn.Module, expression: str, namespace: dict[str, object], precision: str
) -> int:
    """What autograd saves for backward when forward() runs under mixed precision
    (``torch.autocast`` to bf16 or fp16): the half-precision copies that matmuls and
    convolutions keep, and the float32 tensors the rest keeps. Autocast does not apply to
    meta tensors, so this runs on fake CPU tensors (shapes and dtypes, no memory), with the
    model's parameters and buffers swapped for fake ones meanwhile (tied ones stay tied)."""
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
            args, kwargs = _evaluate(expression, model, namespace)
            saved = _SavedForBackward(model)
            with saved.hooks(), torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision]):
                if not _autocast_on():
                    raise RuntimeError(f"this torch does not autocast to {precision} on the CPU")
                model(*args, **kwargs)
            return saved.nbytes
    finally:
        for table, name, tensor in reversed(swapped):
            table[name] = tensor


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


# -- a shape error, in words ----------------------------------------------------------


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


def _explain(
    exc: BaseException, calls: _Calls, ctx: ForwardContext, first: nn.Module | None
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
    message = f"{who} is {describe_layer(module)} but receives {shown}: {param} should be {new}"
    if site is not None:
        message += f" (declared at line {site[1]})"
    fix = None
    if site is not None:
        internal = first is not None and module is not first
        fix = ShapeFix(site[0], site[1], type(module).__name__, param, old, new, internal)
    return dataclasses.replace(error, message=message), site, fix


def describe_layer(module: nn.Module) -> str:
    from .build import describe

    return describe(module)
