"""Build one model class and measure it: totals, per-line layers, the module tree.

Runs in the worker (standard library + torch), inside a sandboxed child process.
Models are built under ``torch.device("meta")`` so no weight memory is allocated;
if a model fails there it is retried on the CPU (inside the memory cap).
Parameters are counted by tensor identity, so tied weights count once and the
totals equal ``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import linecache
import re
import signal
import sys
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .forward import (
    AUTOCAST_DTYPES,
    ForwardContext,
    ModuleCall,
    autocast_saved_bytes,
    run_forward,
    training_bytes,
)
from .loader import code_objects, has_itimer
from .protocol import (
    EXAMPLE_SOURCE,
    Call,
    ClassSpec,
    ErrorInfo,
    ForwardInfo,
    LayerEntry,
    ModelResult,
    ParamInfo,
    Part,
    TreeRow,
    exception_line,
    exception_text,
    type_name,
)
from .tracking import Site, SiteRecorder, recording

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)
BLOCKED_MARK = "while paramlens builds models"


class BuildTimeout(TimeoutError):
    """Raised by the worker's alarm when a constructor runs past the timeout."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _unique(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


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


def _describe_all(modules: list[nn.Module]) -> str:
    """The common description of several instances, or their type if they differ."""
    forms = {describe(m) for m in modules}
    return forms.pop() if len(forms) == 1 else type_name(modules[0])


# -- errors -------------------------------------------------------------------


def _blocked_cause(exc: BaseException) -> BaseException | None:
    """The sandbox's own exception, however deep a library wrapped it (URLError.reason...)."""
    found = None
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        if BLOCKED_MARK in exception_text(current):
            found = current
        try:
            reason = getattr(current, "reason", None)
        except Exception:
            reason = None
        if isinstance(reason, BaseException) and BLOCKED_MARK in exception_text(reason):
            found = reason
        current = current.__cause__ or current.__context__
    return found


def _format_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # user __str__/__repr__ code ran in there
        lines = traceback.format_tb(exc.__traceback__)
        return "".join(["Traceback (most recent call last):\n", *lines, exception_line(exc)])


def error_from_exception(
    exc: BaseException, is_user_file: Callable[[str], bool], memory_mb: int
) -> ErrorInfo:
    """The error as the user should see it: one line, at their deepest line that failed."""
    file = line = None
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        file, line = exc.filename, exc.lineno
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if is_user_file(frame.f_code.co_filename):
            file, line = frame.f_code.co_filename, lineno
    tb = _format_traceback(exc)
    blocked = _blocked_cause(exc)
    if blocked is not None:
        return ErrorInfo(exception_line(blocked), file, line, "blocked", tb)
    if isinstance(exc, BuildTimeout):
        return ErrorInfo(f"TimeoutError: {exc}", file, line, "timeout", tb)
    text = exception_text(exc)
    if (
        isinstance(exc, MemoryError)
        or "can't allocate memory" in text
        or "DefaultCPUAllocator" in text
    ):
        message = f"MemoryError: building needs more memory than the cap ({memory_mb} MB)"
        return ErrorInfo(message, file, line, "memory", tb)
    return ErrorInfo(exception_line(exc), file, line, "exception", tb)


# -- measuring ----------------------------------------------------------------


def _param_info(name: str, p: torch.Tensor) -> ParamInfo:
    return ParamInfo(name, tuple(p.shape), p.numel(), p.requires_grad, _dtype_name(p.dtype))


def _trainable_flag(params: Sequence[torch.Tensor]) -> str:
    if not params:
        return "--"
    flags = {p.requires_grad for p in params}
    return "Partial" if len(flags) == 2 else str(flags.pop())


def _tree(
    model: nn.Module,
    first_site: Callable[[nn.Module], Site | None],
    calls: Mapping[int, list[ModuleCall]],
) -> list[TreeRow]:
    rows: list[TreeRow] = []
    visited: set[int] = set()

    def visit(module: nn.Module, path: str, depth: int) -> None:
        visited.add(id(module))
        named_own = list(module.named_parameters(recurse=False))
        own = [p for _, p in named_own]
        everything = list(module.parameters()) if module._modules else own
        children = [(n, c) for n, c in module.named_children() if id(c) not in visited]
        site = first_site(module)
        made = calls.get(id(module), [])
        rows.append(
            TreeRow(
                path=path,
                type=type(module).__name__,
                depth=depth,
                params=sum(p.numel() for p in everything),
                own_params=sum(p.numel() for p in own),
                own_shapes=tuple(tuple(p.shape) for p in own),
                trainable=_trainable_flag(everything),
                line=site[1] if site else None,
                file=site[0] if site else None,
                leaf=not children,
                qualtype=_qualtype(module),
                own_names=tuple(n for n, _ in named_own),
                own_trainable=tuple(bool(p.requires_grad) for p in own),
                input_shape=made[0].inputs if made else "",
                output_shape=made[0].output if made else "",
                macs=sum(c.macs for c in made),
            )
        )
        for name, child in children:
            if id(child) not in visited:
                visit(child, f"{path}.{name}" if path else name, depth + 1)

    visit(model, "", 0)
    return rows


def _calls_of(modules: list[nn.Module], calls: Mapping[int, list[ModuleCall]]) -> tuple[Call, ...]:
    """The distinct (input, output) shapes of the modules' calls, with counts."""
    merged: dict[tuple[str, str], list[int]] = {}
    for module in modules:
        for call in calls.get(id(module), ()):
            entry = merged.setdefault((call.inputs, call.output), [0, 0, 0])
            entry[0] += 1
            entry[1] += call.macs
            entry[2] += call.saved
    return tuple(Call(i, o, n, macs, saved) for (i, o), (n, macs, saved) in merged.items())


def _layers(
    model: nn.Module,
    recorder: SiteRecorder,
    names: dict[int, str],
    calls: Mapping[int, list[ModuleCall]],
) -> tuple[list[LayerEntry], Callable[[nn.Module], Site | None]]:
    modules = list(model.modules())
    parent: dict[int, nn.Module] = {}
    for module in modules:
        for child in module.children():
            parent.setdefault(id(child), module)

    own_sites: dict[int, list[Site]] = {id(m): recorder.sites(m) for m in modules}

    def effective_sites(module: nn.Module) -> list[Site]:
        # Modules torch copies without calling __init__ (e.g. TransformerEncoder's
        # clones) take the line of their nearest recorded ancestor.
        current: nn.Module | None = module
        while current is not None and current is not model:
            if own_sites[id(current)]:
                return own_sites[id(current)]
            current = parent.get(id(current))
        return []

    by_line: dict[Site, list[nn.Module]] = {}
    for module in modules[1:]:
        for site in effective_sites(module):
            by_line.setdefault(site, []).append(module)
    params_by_line: dict[Site, list[torch.Tensor]] = {}
    for p in model.parameters():
        for site in recorder.sites(p):
            params_by_line.setdefault(site, []).append(p)

    entries = []
    for site in sorted(set(by_line) | set(params_by_line)):
        created = by_line.get(site, [])
        members = {id(m) for m in created}

        def has_member_ancestor(m: nn.Module, members: set[int] = members) -> bool:
            up = parent.get(id(m))
            while up is not None:
                if id(up) in members:
                    return True
                up = parent.get(id(up))
            return False

        roots = [m for m in created if not has_member_ancestor(m)]
        root_params = _unique(p for r in roots for p in r.parameters())
        in_roots = {id(p) for p in root_params}
        direct = [p for p in params_by_line.get(site, []) if id(p) not in in_roots]
        shown = roots
        if len(roots) == 1 and isinstance(roots[0], _CONTAINERS):
            children = list(roots[0].children())
            uniform = len({type(c) for c in children}) == 1
            if len(children) > 1 and uniform and all(id(c) in members for c in children):
                shown = children
        kinds = sorted({type(m).__name__ for m in shown}) + (["Parameter"] if direct else [])
        params = root_params + direct
        count = len(shown) if shown else len(direct)
        entries.append(
            LayerEntry(
                file=site[0],
                line=site[1],
                type=", ".join(kinds),
                count=count,
                params=sum(p.numel() for p in params),
                parameters=tuple(_param_info(names.get(id(p), "?"), p) for p in params),
                describe=_describe_all(shown) if len(kinds) == 1 and shown else ", ".join(kinds),
                trainable=sum(p.numel() for p in params if p.requires_grad),
                nbytes=sum(_nbytes(p) for p in params),
                calls=_calls_of(shown, calls),
            )
        )

    _mark_tied(model, entries, own_sites)

    def first_site(module: nn.Module) -> Site | None:
        sites = own_sites.get(id(module)) or []
        return sites[0] if sites else None

    return entries, first_site


def _mark_tied(
    model: nn.Module, entries: list[LayerEntry], own_sites: dict[int, list[Site]]
) -> None:
    """A parameter shared by several modules (a tied embedding and head) is counted at the
    line of the module holding it under its first name, as ``model.parameters()`` counts
    it; the other lines say where (``tied``) and how much of theirs that is (``shared``)."""
    canonical: dict[int, str] = {}
    shared_ids: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in canonical:
            shared_ids.add(id(p))
        else:
            canonical[id(p)] = name
    if not shared_ids:
        return
    modules = dict(model.named_modules())
    shared = [
        (name, p)
        for name, p in model.named_parameters(remove_duplicate=False)
        if id(p) in shared_ids
    ]
    for index, entry in enumerate(entries):
        site = (entry.file, entry.line)
        paths = [n for n, m in modules.items() if n and site in own_sites.get(id(m), [])]
        elsewhere: dict[Site, int] = {}
        seen: set[int] = set()
        for name, p in shared:
            if id(p) in seen:
                continue
            if not any(name.startswith(f"{path}.") for path in paths):
                continue  # not held by this line's modules
            seen.add(id(p))
            first = canonical[id(p)]
            if any(first.startswith(f"{path}.") for path in paths):
                continue  # counted here
            owner = modules.get(first.rpartition(".")[0])
            sites = own_sites.get(id(owner), []) if owner is not None else []
            if sites:
                elsewhere[sites[0]] = elsewhere.get(sites[0], 0) + p.numel()
        if elsewhere:
            entries[index] = dataclasses.replace(
                entry, shared=sum(elsewhere.values()), tied=tuple(sorted(elsewhere))
            )


def _qualtype(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def measure(
    model: nn.Module,
    spec: ClassSpec,
    file: str,
    recorder: SiteRecorder,
    detail: bool = True,
    calls: Mapping[int, list[ModuleCall]] | None = None,
) -> ModelResult:
    """Totals always; per-line layers and the module tree only with ``detail``; with
    ``calls`` (forward() ran), each line's and each module's shapes."""
    params = list(model.parameters())  # unique by identity, as torch counts them
    buffers = list(model.buffers())
    layers: list[LayerEntry] = []
    tree: list[TreeRow] = []
    if detail:
        names: dict[int, str] = {}
        for name, p in model.named_parameters():
            names.setdefault(id(p), name)
        layers, first_site = _layers(model, recorder, names, calls or {})
        tree = _tree(model, first_site, calls or {})
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return ModelResult(
        name=spec.name,
        file=file,
        line=spec.line,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffer_numel=sum(b.numel() for b in buffers),
        param_bytes=sum(_nbytes(p) for p in params),
        buffer_bytes=sum(_nbytes(b) for b in buffers),
        dtypes=tuple(sorted({_dtype_name(p.dtype) for p in params})),
        ctor=spec.ctor or "",
        layers=tuple(layers),
        tree=tuple(tree),
        kind=spec.kind,
        model_class=_qualtype(model),
    )


_MISSING_ARGS = re.compile(
    r"__init__\(\) missing \d+ required (?:positional|keyword-only) arguments?: (.*)"
)


def _needs_args(spec: ClassSpec, exc: BaseException, file: str) -> ErrorInfo | None:
    """An all-default guess that the constructor refused: a note, not an exception.

    Discovery cannot see the signatures a class inherits from torch (``class
    LayerNorm(nn.LayerNorm)``) or forwards with ``*args, **kwargs``; Python names them.
    """
    if spec.ctor_source != "default arguments" or not isinstance(exc, TypeError):
        return None
    match = _MISSING_ARGS.search(exception_text(exc))
    if match is None:
        return None
    names = re.findall(r"'(\w+)'", match.group(1))
    example = ", ".join(f"{name}=..." for name in names)
    hint = f'[tool.paramlens.models]\n{spec.name} = "{spec.name}({example})"'
    message = f"{spec.name} needs constructor arguments: {', '.join(names)}"
    return ErrorInfo(message, file, spec.line, "needs-args", hint)


def _namespace(spec: ClassSpec, module_namespace: dict[str, object]) -> dict[str, object]:
    """The module's namespace plus the workspace names the expression refers to."""
    if not spec.refs:
        return module_namespace
    namespace = dict(module_namespace)
    for name, target in spec.refs:
        namespace[name] = _resolve(target)
    return namespace


def _resolve(qualified: str) -> object:
    """``pkg.mod.Name``: the longest importable module prefix, then attributes."""
    parts = qualified.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            value = getattr(value, attr)
        return value
    raise ImportError(f"cannot import {qualified}")


@dataclasses.dataclass
class BuildContext:
    """What every class of one job is built with."""

    namespace: dict[str, object]  # the module's
    file: str
    device: str
    recorder: SiteRecorder
    is_user_file: Callable[[str], bool]
    memory_mb: int
    # module classes whose per-line figures a factory of this job already kept; None: keep all
    detailed: set[str] | None = None
    shapes: bool = True  # run forward() with an example input
    optimizer: str = "adamw"  # whose state the training-memory estimate counts
    dims: tuple[tuple[str, int], ...] = ()  # named dimensions of shape annotations
    precision: str = "fp32"  # training memory under "bf16" or "fp16" autocast
    line_shapes: bool = True  # trace forward()'s lines for the shapes they assign

    def error(self, exc: BaseException) -> ErrorInfo:
        return error_from_exception(exc, self.is_user_file, self.memory_mb)


def build_class(spec: ClassSpec, ctx: BuildContext) -> ModelResult:
    """Construct ``spec`` (see :func:`_build_class`). Example arguments guessed from
    parameter names are only a try: if the class refuses them, it needs real ones."""
    result = _build_class(spec, ctx)
    if spec.ctor_source != EXAMPLE_SOURCE:
        return result
    for alternative in spec.alternatives:  # wider values, if the class refused the small ones
        if result.error is None or result.error.kind in ("timeout", "memory", "blocked", "crash"):
            break
        result = _build_class(dataclasses.replace(spec, ctor=alternative), ctx)
    if result.error is None:
        note = f"built with example arguments guessed from parameter names: {result.ctor}"
        return dataclasses.replace(result, example=True, notes=(note, *result.notes))
    if result.error.kind in ("timeout", "memory", "blocked", "crash"):
        return result
    message = (
        f"{spec.name} needs constructor arguments: {', '.join(spec.missing_args)} "
        f"(example arguments failed: {result.error.message})"
    )
    error = ErrorInfo(message, ctx.file, spec.line, "needs-args", spec.fix_hint)
    return dataclasses.replace(result, error=error)


def _build_class(spec: ClassSpec, ctx: BuildContext) -> ModelResult:
    """Construct ``spec`` from its expression on ``ctx.device`` (meta falls back to CPU).

    A factory made only of module classes already in ``ctx.detailed`` is measured by its
    totals only (a file of 100 ``vit_*`` factories needs per-line figures for each kind
    of block once, not 100 times).
    """
    started = time.perf_counter()
    file = ctx.file
    if spec.ctor is None:
        error = ErrorInfo(
            f"{spec.name} needs constructor arguments: {', '.join(spec.missing_args)}",
            file,
            spec.line,
            "needs-args",
            spec.fix_hint,
        )
        return ModelResult.failed(spec, file, error)
    code = _compiled(spec.ctor, spec)
    placed = _placed(spec, code, _namespace(spec, ctx.namespace), ctx)
    if isinstance(placed, ModelResult):
        return placed
    model, used, notes = placed
    if not isinstance(model, nn.Module):
        message = f"TypeError: {spec.ctor} returned {type(model).__name__}, not an nn.Module"
        return ModelResult.failed(spec, file, ErrorInfo(message, file, spec.line))
    kinds = {_qualtype(m) for m in model.modules()}
    detailed = ctx.detailed
    detail = detailed is None or spec.kind == "class" or not kinds <= detailed
    if detailed is not None:
        detailed |= kinds
    forward, calls = None, None
    if detail and ctx.shapes:
        forward, calls = _forward(model, spec, ctx, used)
    result = measure(model, spec, file, ctx.recorder, detail, calls)
    if forward is not None:
        result = dataclasses.replace(result, forward=forward)
    if not detail:
        result = dataclasses.replace(result, parts=_parts(model, ctx.is_user_file))
    elapsed = (time.perf_counter() - started) * 1000
    return dataclasses.replace(result, device=used, notes=tuple(notes), build_ms=round(elapsed, 2))


def _placed(
    spec: ClassSpec, code: types.CodeType, namespace: dict[str, object], ctx: BuildContext
) -> tuple[object, str, list[str]] | ModelResult:
    """The constructed model, the device it was built on, and notes; or the failure.

    Meta first; a constructor that reads values gets its small tensors on the CPU (at once
    when an ``__init__`` of its file reads values); one whose small CPU tensors meet meta
    ones, or that fails on meta otherwise, is built on the CPU.
    """
    file = ctx.file
    small_first = ctx.device == "meta" and _init_reads_values(file)
    try:
        if small_first and (built := _with_small_on_cpu(code, namespace, ctx)) is not None:
            model, read = built
            return model, ctx.device, [_SMALL_ON_CPU] if read else []
        return _construct(code, namespace, torch.device(ctx.device), ctx.recorder), ctx.device, []
    except (BuildTimeout, MemoryError) as exc:
        return ModelResult.failed(spec, file, ctx.error(exc))
    except Exception as exc:  # the user's constructor may raise anything
        needs_args = _needs_args(spec, exc, file)
        if needs_args is not None:
            return ModelResult.failed(spec, file, needs_args)
        first = ctx.error(exc)
    if ctx.device != "meta" or first.kind != "exception":
        return ModelResult.failed(spec, file, first)
    try:
        reads = not small_first and _NEEDS_VALUES.search(first.message)  # give it values
        if reads and (built := _with_small_on_cpu(code, namespace, ctx)) is not None:
            note = f"{_SMALL_ON_CPU} (meta alone failed: {first.message})"
            return built[0], ctx.device, [note]
        model = _construct(code, namespace, torch.device("cpu"), ctx.recorder)
    except BuildTimeout as retry_exc:
        return ModelResult.failed(spec, file, ctx.error(retry_exc))
    except Exception as retry_exc:
        retry = ctx.error(retry_exc)
        return ModelResult.failed(spec, file, first if retry.kind == "memory" else retry)
    return model, "cpu", [f"built on CPU because the meta device failed: {first.message}"]


_SMALL_ON_CPU = "built on meta, with the small tensors its constructor reads on the CPU"


def _with_small_on_cpu(
    code: types.CodeType, namespace: dict[str, object], ctx: BuildContext
) -> tuple[object, bool] | None:
    """Built with the small tensors it makes on the CPU, then held on meta; and whether it
    read a value. None if that failed (small CPU tensors met meta ones, or anything else);
    a timeout is the build's to report."""
    small = _SmallOnCpu()
    try:
        model = _construct(code, namespace, small, ctx.recorder)
        _hold_on_meta(model)
    except BuildTimeout:
        raise
    except Exception:
        return None
    return model, small.read


FORWARD_BUDGET_S = 5.0  # at most; and at most half of what the class has left


def _compiled(ctor: str, spec: ClassSpec) -> types.CodeType:
    return compile(ctor, f"<paramlens: {spec.ctor_source or spec.name}>", "eval")


def _forward_pass(
    model: nn.Module, recorder: SiteRecorder, spec: ClassSpec, ctx: BuildContext, device: str
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]]:
    def site(module: nn.Module) -> Site | None:
        sites = recorder.sites(module)
        return sites[0] if sites else None

    forward = ForwardContext(
        namespace=_namespace(spec, ctx.namespace),
        device=device,
        is_user_file=ctx.is_user_file,
        error_from=ctx.error,
        names={id(m): n for n, m in model.named_modules() if n},
        site=site,
        dims=dict(ctx.dims),
        line_shapes=ctx.line_shapes,
    )
    return run_forward(model, spec.input, spec.input_source, forward)


# what meta tensors cannot do: code that reads values (.item(), if x.sum() > 0, x[x > 0])
_NEEDS_VALUES = re.compile(r"meta tensor|on meta|data-independent|'Meta' backend", re.IGNORECASE)


def _forward_on_cpu(
    model: nn.Module, spec: ClassSpec, ctx: BuildContext, why: str
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]]] | None:
    """forward() again on a copy of the model built on the CPU, with random weights and
    input, when meta failed because the code reads values; None if it would not fit."""
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    if spec.ctor is None or held * 2 > ctx.memory_mb * 2**20:
        return None
    code = _compiled(spec.ctor, spec)
    recorder = SiteRecorder(ctx.is_user_file)
    real = _construct(code, _namespace(spec, ctx.namespace), torch.device("cpu"), recorder)
    if not isinstance(real, nn.Module):
        return None
    with torch.no_grad():  # weight initialisation was skipped: give the code numbers to read
        for p in real.parameters():
            p.normal_(0.0, 0.02)
    info, calls = _forward_pass(real, recorder, spec, ctx, "cpu")
    # the calls belong to the copy's modules: give them to the model's, by position
    pairs = zip(
        real.named_modules(remove_duplicate=False), model.named_modules(remove_duplicate=False)
    )
    same = {id(r): id(m) for (rn, r), (mn, m) in pairs if rn == mn}
    calls = {same[k]: v for k, v in calls.items() if k in same}
    if info is not None:
        note = f"forward() ran on the CPU (random weights) because meta failed: {why}"
        info = dataclasses.replace(info, device="cpu", note=note)
    return info, calls


def _with_training_memory(
    model: nn.Module, info: ForwardInfo, spec: ClassSpec, ctx: BuildContext
) -> ForwardInfo:
    """``info`` with one training step's memory; under mixed precision, with the
    activations autograd saves under autocast (measured again, on fake CPU tensors)."""
    activations, precision, note = info.activation_bytes, "", info.note
    if ctx.precision in AUTOCAST_DTYPES:
        try:
            namespace = _namespace(spec, ctx.namespace)
            activations = autocast_saved_bytes(model, info.input, namespace, ctx.precision)
            precision = ctx.precision
        except (BuildTimeout, MemoryError):
            raise
        except Exception as exc:
            why = ctx.error(exc).message
            note = "; ".join(
                n for n in (note, f"{ctx.precision} autocast could not be measured ({why})") if n
            )
    return dataclasses.replace(
        info,
        activation_bytes=activations,
        train_bytes=training_bytes(model, activations, ctx.optimizer),
        optimizer=ctx.optimizer,
        precision=precision,
        note=note,
    )


def _forward(
    model: nn.Module, spec: ClassSpec, ctx: BuildContext, device: str
) -> tuple[ForwardInfo | None, dict[int, list[ModuleCall]] | None]:
    """forward() with an example input, on the device the model was built on (meta, then
    the CPU if the code needs real values and the model fits)."""
    # forward() gets part of what is left of the class's time: when it runs out, the
    # parameters measured so far stand, with a note that forward() took too long
    remaining = signal.getitimer(signal.ITIMER_REAL)[0] if has_itimer() else 0.0
    budget = min(FORWARD_BUDGET_S, remaining / 2) if remaining else 0.0
    started = time.monotonic()
    if budget:
        signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        info, calls = _forward_pass(model, ctx.recorder, spec, ctx, device)
        error = info.error if info is not None else None
        if error is not None and device == "meta" and _NEEDS_VALUES.search(error.message):
            retried = _forward_on_cpu(model, spec, ctx, error.message)
            if retried is not None:
                info, calls = retried
        if info is not None and info.error is None:
            info = _with_training_memory(model, info, spec, ctx)
        return info, calls
    except BuildTimeout:
        if not budget or time.monotonic() - started < budget - 0.05:
            raise  # the class's own deadline
        message = f"forward() took longer than {budget:.1f} s; paramlens stopped it"
        return ForwardInfo(
            input="", input_source="", error=ErrorInfo(message, kind="forward")
        ), None
    except MemoryError:
        raise
    except Exception as exc:  # a model odd enough to defeat the input guess: no shapes
        error = dataclasses.replace(ctx.error(exc), kind="forward")
        return ForwardInfo(input="", input_source="", error=error), None
    finally:
        if budget:
            left = remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _parts(model: nn.Module, is_user_file: Callable[[str], bool]) -> tuple[Part, ...]:
    """How many modules of each workspace class, of which size, ``model`` holds."""
    counts: dict[tuple[str, int], int] = {}
    user_types: dict[type, bool] = {}
    for module in list(model.modules())[1:]:
        cls = type(module)
        if cls not in user_types:
            source = getattr(sys.modules.get(cls.__module__), "__file__", None)
            user_types[cls] = isinstance(source, str) and is_user_file(source)
        if user_types[cls]:
            key = (_qualtype(module), sum(p.numel() for p in module.parameters()))
            counts[key] = counts.get(key, 0) + 1
    return tuple(Part(q, n, c) for (q, n), c in counts.items())


_INIT_SKIP_NUMEL = 1 << 16


class _SkipWeightInit(TorchFunctionMode):
    """While building, in-place writes to parameters and large tensors do nothing.

    Weight initialisation (``nn.init.*``, ``reset_parameters``, timm's ``trunc_normal_``)
    is all in-place ops on parameters, and nobody reads those values: on the CPU fallback,
    filling 86M of them costs seconds; on meta, their decompositions still cost 60% of a
    ViT's build. Small tensors (schedules, masks read with ``.item()``) compute as usual.
    """

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: Sequence[object] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and name != "requires_grad_":
            # ``nn.init.normal_(w)`` reaches a mode as ``tensor=w``; ``w.normal_()`` as args
            target = args[0] if args else (kwargs or {}).get("tensor")
            if isinstance(target, nn.Parameter) or (
                isinstance(target, torch.Tensor) and target.numel() >= _INIT_SKIP_NUMEL
            ):
                return target
        return func(*args, **(kwargs or {}))


def _construct(
    code: types.CodeType,
    namespace: dict[str, object],
    placement: contextlib.AbstractContextManager[object],
    recorder: SiteRecorder,
) -> object:
    """Evaluate the constructor expression with tensors made where ``placement`` puts them
    (``torch.device("meta")``, or :class:`_SmallOnCpu`), weight initialisation skipped."""
    recorder.clear()
    with recording(recorder), _SkipWeightInit(), placement:
        return eval(code, namespace)


_SMALL_NUMEL = 1 << 12  # built on the CPU when a constructor reads values
_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
}
# a constructor that reads a tensor's value, in the source of an __init__
_READ_CALL = re.compile(r"\.(item|tolist)\(\)")


@functools.cache  # as code_objects: a job's files do not change while it runs
def _init_reads_values(filename: str) -> bool:
    """Does an ``__init__`` written in this file call ``.item()`` or ``.tolist()`` (timm's
    ``[x.item() for x in torch.linspace(0, rate, depth)]``)? Its classes are then built
    with small tensors on the CPU at once: on meta, everything the constructor did before
    that call (vit-pytorch's CCT: 4 s of Python) would run twice."""
    if not _READ_CALL.search("".join(linecache.getlines(filename))):
        return False  # most files: no compiling
    return any(
        in_init and not {"item", "tolist"}.isdisjoint(code.co_names)
        for code, in_init in code_objects(filename)
    )


_SMALL_BUDGET_BYTES = 64 << 20  # all of them together; past that, meta again


class _SmallOnCpu(TorchFunctionMode):
    """Tensors made with no device named: on the CPU if small, where their values can be
    read (timm-style ``[x.item() for x in torch.linspace(0, 0.1, depth)]``), else on meta,
    as parameters are (and a constructor's trial forward() on an 8-frame video clip)."""

    def __init__(self) -> None:
        super().__init__()
        from torch.utils._device import _device_constructors

        self.factories = _device_constructors()
        self.left = _SMALL_BUDGET_BYTES
        # did the constructor read a value (.item(), .tolist(), if t:) once it had small
        # tensors on the CPU? (a tensor it made on the CPU itself says nothing of meta)
        self.read = False

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: Sequence[object] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        kwargs = kwargs or {}
        if func in _READS and self.left < _SMALL_BUDGET_BYTES:  # it read, after we placed
            self.read = True
        if func not in self.factories or kwargs.get("device") is not None:
            return func(*args, **kwargs)
        made = func(*args, **{**kwargs, "device": "meta"})  # its size, for nothing
        if isinstance(made, torch.Tensor) and made.numel() <= _SMALL_NUMEL:
            size = made.numel() * made.element_size()
            if size <= self.left:
                self.left -= size
                return func(*args, **{**kwargs, "device": "cpu"})
        return made


def _hold_on_meta(model: object) -> None:
    """Move what the model holds (parameters, buffers) to meta, each tensor once: tied
    weights stay tied."""
    if not isinstance(model, nn.Module):
        return
    moved: dict[int, torch.Tensor] = {}

    def to_meta(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in moved:
            meta = tensor.detach().to("meta")
            if isinstance(tensor, nn.Parameter):
                meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
            moved[id(tensor)] = meta
        return moved[id(tensor)]

    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and not param.is_meta:
                module._parameters[name] = typing.cast(nn.Parameter, to_meta(param))
        for name, buffer in module._buffers.items():
            if buffer is not None and not buffer.is_meta:
                module._buffers[name] = to_meta(buffer)
