"""Wire types between the paramlens server and its worker.

This is the only module both sides import. It runs inside the user's interpreter
too, so it uses the standard library only and must stay compatible with
Python 3.10. Every type is a frozen dataclass of ints, strings, tuples and other
such dataclasses, so it crosses the process boundary as one JSON line.

Messages (one JSON object per line):

- server -> worker: ``{"type": "build", "id": N, "job": BuildJob}``,
  ``{"type": "cancel", "id": N}``, ``{"type": "shutdown"}``.
- worker -> server: ``{"type": "ready", "info": WorkerInfo}`` (or ``{"type": "fatal",
  "message": str}`` if torch cannot be imported), ``{"type": "result", "id": N, "result":
  JobResult}``, ``{"type": "cancelled", "id": N}``, ``{"type": "building", "id": N,
  "name": str}`` (the job's child started that class: named if the worker dies meanwhile).

A job names its ``kind`` ("build" today) so later kinds (a forward pass with an
example input) can be added without changing the framing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

PROTOCOL_VERSION = 1
CALL_SITE_INPUT = "called at"  # ClassSpec.input_source of an input read from a call
EXAMPLE_SOURCE = "example arguments"  # ClassSpec.ctor_source of arguments guessed from names
# ClassSpec.source_kind / ModelResult.source_kind: where a constructor's arguments came from
SOURCE_PYPROJECT = "pyproject"  # [tool.paramlens.models]
SOURCE_DEFAULTS = "defaults"  # the constructor's own default arguments
SOURCE_CONFIG_CLASS = "config class"  # a config class that builds with no arguments
SOURCE_CALL_SITE = "call site"  # a call with literal arguments (file:line)
SOURCE_CONFIG_METHOD = "config method"  # GPT.get_default_config(), Model.from_config()
SOURCE_SCRIPT = "script"  # a model a script builds at module level (file:line)
SOURCE_CONFIG_FILE = "config file"  # a Hydra / LightningCLI YAML or a config.json (path:line)
SOURCE_DOC = "doc example"  # a README code block or a docstring's >>> example (path:line)
SOURCE_EXAMPLE = "example"  # example sizes guessed from parameter names
SOURCE_FACTORY = "factory"  # a model factory function called with no arguments


@dataclass(frozen=True)
class ClassSpec:
    """One class to build: its name and the expression that constructs it."""

    name: str
    line: int
    ctor: str | None  # a Python expression evaluated in the module; None: cannot build
    ctor_source: str = ""  # where the expression came from, for messages
    missing_args: tuple[str, ...] = ()  # set when ctor is None
    fix_hint: str = ""  # the pyproject.toml line that would fix a missing ctor
    kind: str = "class"  # "class", or "factory": a function returning a model (resnet18)
    # names the expression uses that its module may not define: (name, "pkg.module.Attr")
    refs: tuple[tuple[str, str], ...] = ()
    # further expressions to try, in order, if ``ctor`` fails (wider example arguments)
    alternatives: tuple[str, ...] = ()
    # the example input for forward() (``torch.randn(1, 784)``) and where it came from;
    # None: the worker looks for one (``example_input_array``, a guess from the first layer)
    input: str | None = None
    input_source: str = ""
    # what kind of place the arguments came from (SOURCE_*), ``ctor_source`` saying which;
    # ``example``: some of them are example sizes all the same (a config's open fields)
    source_kind: str = ""
    example: bool = False
    # further constructors to try, in order, if ``ctor`` fails: (expression, where its
    # arguments came from, whether some are examples, their kind: SOURCE_*); the result
    # says which one built it
    candidates: tuple[tuple[str, str, bool, str], ...] = ()


@dataclass(frozen=True)
class Training:
    """How the simulated training step runs: the options users change (``[tool.paramlens]``)."""

    optimizer: str = "adamw"  # adamw, adam, sgd-momentum, sgd, none
    precision: str = "fp32"  # fp32; "bf16"/"fp16": autocast; "bf16-pure": bfloat16 weights
    batch: int = 0  # the input's batch dimension; 0: the example input's own
    attention: str = "auto"  # scaled_dot_product_attention: auto (the GPU's choice), math...
    checkpoint: tuple[str, ...] = ()  # module classes whose activations are recomputed
    loss: str = ""  # an expression of ``output``; "": the sum of its floating tensors
    gpu: str = ""  # as the user wrote it: "24GB", "A100-80GB"; "": no card to fit
    gpu_bytes: int = 0  # that card's memory
    workspace_bytes: int = 0  # the cuBLAS workspace torch allocates on that card
    gpus: int = 1  # data-parallel ranks; ``batch`` is each one's
    strategy: str = ""  # with gpus > 1: ddp, zero1, zero2, zero3 or fsdp (= zero3)
    wrap: tuple[str, ...] = ()  # FSDP's units (module classes); (): the repeated blocks
    step: bool = True  # simulate the step (off: the sum estimate only)


@dataclass(frozen=True)
class BuildJob:
    """Build the classes of one workspace file and report their parameters."""

    file: str  # absolute path of the file whose classes are built
    module: str  # dotted module name under which the file is imported
    sys_path: tuple[str, ...]  # import roots of the workspace, first wins
    workspace: str  # files under this folder count as "user code" for line mapping
    classes: tuple[ClassSpec, ...]
    overrides: tuple[tuple[str, str], ...] = ()  # (path, text) of unsaved buffers
    timeout_s: float = 10.0
    memory_mb: int = 2048
    device: str = "meta"  # "meta" or "cpu"
    kind: str = "build"
    detail: bool = False  # keep every factory's layers, not one factory per kind of block
    shapes: bool = True  # run forward() with an example input
    training: Training = dataclasses.field(default_factory=Training)
    dims: tuple[tuple[str, int], ...] = ()  # values of named dimensions in shape annotations
    # the shapes forward()'s own lines assign (inlay hints, annotate): off where none is shown
    line_shapes: bool = True
    # each class's result sent as soon as it is known ("staged"), before the job's end, and
    # once before its training step too (ForwardInfo.step_pending): the edited class first
    staged: bool = False


# Why a model (or its forward()) has no figures; the server words and ranks them by kind.
ErrorKind = Literal[
    "exception",  # the constructor raised
    "import",  # importing the model's file raised (every class of the file gets it)
    "needs-args",  # the constructor needs arguments paramlens could not find (a note)
    "timeout",  # the job's deadline struck (importing, building or forward())
    "memory",  # the build went past the memory cap
    "blocked",  # the sandbox refused something the code tried (network, writes, processes)
    "crash",  # the build process died (a crash in C, a kill) or sent invalid data
    "forward",  # forward() raised with the example input (ForwardInfo.error)
    "input",  # the example input expression itself failed (ForwardInfo.error)
    "syntax",  # the file could not be read or parsed (found by the server, never built)
]
# Kinds that end a class's attempts: trying other example arguments would end the same way
FINAL_KINDS: frozenset[ErrorKind] = frozenset({"timeout", "memory", "blocked", "crash"})


@dataclass(frozen=True)
class ErrorInfo:
    """Why a model could not be built, at the user's line that failed."""

    message: str  # one line, "ExcType: text"
    file: str | None = None
    line: int | None = None
    kind: ErrorKind = "exception"
    traceback: str = ""


@dataclass(frozen=True)
class ParamInfo:
    name: str  # full dotted name from the root model, e.g. "stack.0.weight"
    shape: tuple[int, ...]
    numel: int
    trainable: bool
    dtype: str  # e.g. "float32"


@dataclass(frozen=True)
class LineSize:
    """Instances of one size among those a source line created (a helper called with
    several widths): their common description, how many, and the parameters of one."""

    describe: str  # "Conv2d(16 -> 16, 3x3)"
    count: int
    params: int
    # set by the server when a line's sizes come from several builds: the model whose
    # build made this size (the first that did)
    model: str = ""


@dataclass(frozen=True)
class LayerEntry:
    """What one source line created: modules and/or parameters."""

    file: str
    line: int
    type: str  # class name of what the line creates, e.g. "Linear"
    count: int  # instances created by the line
    params: int  # unique parameters of all instances together
    parameters: tuple[ParamInfo, ...]
    describe: str = ""  # short form of the layer, e.g. "Linear(784 -> 512)"
    trainable: int = 0
    nbytes: int = 0
    # Parameters shared with modules created elsewhere (tied weights): how many of
    # ``params`` are counted at another line, and those lines as (file, line).
    shared: int = 0
    tied: tuple[tuple[str, int], ...] = ()
    calls: tuple[Call, ...] = ()  # forward() with an example input: distinct shapes
    # the instances by size, in the order built, when they are not all of one size
    sizes: tuple[LineSize, ...] = ()
    # Set by the server when lines are merged from several builds: the model whose build
    # measured the line, and whether that build used example arguments (no build with
    # real arguments reached the line).
    model: str = ""
    example: bool = False
    # the other models (real arguments) whose builds made sizes of this line that
    # ``model``'s did not: their sizes are in ``sizes``, each naming its model
    merged_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """Calls of the modules one source line created, with the same shapes."""

    inputs: str  # "[1, 784]"; several arguments: "([1, 16], [1, 16])"
    output: str
    count: int
    macs: int  # multiply-adds of these calls together
    saved_bytes: int = 0  # what autograd saved for backward during these calls together


@dataclass(frozen=True)
class InlineShape:
    """The shapes a workspace line assigned to a name while forward() ran."""

    file: str
    line: int
    column: int  # 0-based, just after the name (``return``: after the keyword)
    name: str
    shapes: tuple[str, ...]  # distinct shapes, in the order seen (a loop: several)


@dataclass(frozen=True)
class ShapeFix:
    """The one number in a layer's declaration that makes forward() run."""

    file: str
    line: int  # the declaration
    layer: str  # "Linear"
    param: str  # "in_features"
    old: int
    new: int
    # not the model's first layer: the input fitted that one, and the model disagrees with
    # itself (a bug whatever the input, even a guessed one)
    internal: bool = False


@dataclass(frozen=True)
class ModuleMemory:
    """One module's part in the simulated training step."""

    module: str  # dotted path in the model ("" the model itself)
    type: str
    kept: int  # bytes its forward() left allocated for backward (and its output)
    peak: int  # the step's highest total while it ran (forward or backward)


@dataclass(frozen=True)
class StepMemory:
    """One simulated training step (forward, loss, backward, optimizer step, zero_grad) at
    its peak: every storage once, at its exact size, as torch's allocator accounts it."""

    peak: int
    phase: str  # where the peak is: "forward", "loss", "backward", "optimizer", "zero_grad"
    module: str  # the module running at the peak (dotted path; "" the model's own code)
    # what is allocated at the peak, by kind (they add up to ``peak``)
    parameters: int = 0
    buffers: int = 0
    inputs: int = 0
    activations: int = 0  # made in forward() and the loss, kept for backward
    gradients: int = 0
    optimizer_state: int = 0
    temporaries: int = 0  # made in backward() or the optimizer step, then freed
    batch: int = 0
    input: str = ""  # the step's input expression, at ``batch``
    optimizer: str = ""
    foreach: bool = False  # the optimizer's multi-tensor implementation (the GPU's default)
    precision: str = "fp32"
    attention: str = ""  # kernels assumed for scaled_dot_product_attention ("efficient")
    checkpointed: int = 0  # modules whose activations are recomputed in backward
    gpus: int = 1  # the figures are one rank's of that many
    strategy: str = ""
    units: int = 0  # modules FSDP sharded one by one (besides the model itself)
    # the GPU's view: what torch.cuda.max_memory_allocated() would report (each allocation
    # rounded to 512 B, the cuBLAS workspace included), and an estimate of what the caching
    # allocator would reserve
    gpu_allocated: int = 0
    gpu_workspace: int = 0
    gpu_reserved: int = 0
    gpu: str = ""  # the card fitted against, as written
    gpu_bytes: int = 0
    fits: bool | None = None  # None: no card given
    max_batch: int = 0  # the largest batch whose step fits (0: none, or not searched)
    search: str = ""  # how the largest batch was found, or why the search stopped
    modules: tuple[ModuleMemory, ...] = ()  # the modules that keep the most, most first


@dataclass(frozen=True)
class ForwardInfo:
    """What forward() did with an example input."""

    input: str  # the expression, e.g. "torch.randn(1, 784)"
    input_source: str  # "pyproject.toml", "example_input_array", "guessed from Linear(784 -> …)"
    guessed: bool = False
    input_shape: str = ""
    output_shape: str = ""
    macs: int = 0
    activation_bytes: int = 0  # tensors autograd saved for backward (training keeps them)
    # one training step's memory: parameters, gradients, optimizer state, activations
    train_bytes: int = 0
    optimizer: str = ""
    precision: str = ""  # "bf16"/"fp16": activations measured under autocast to it
    error: ErrorInfo | None = None  # at the user's line in forward() that raised
    declared: tuple[str, int] | None = None  # the failing layer's declaration (file, line)
    fix: ShapeFix | None = None
    lines: tuple[InlineShape, ...] = ()
    device: str = "meta"  # "cpu" when the code read values meta tensors do not have
    note: str = ""
    step: StepMemory | None = None  # the simulated training step (None: not run, or failed)
    step_error: str = ""  # why the step could not be simulated
    step_pending: bool = False  # a staged result: the step is being simulated (no sum shown)

    def code_at_fault(self) -> bool:
        """forward() failed because of the user's code: with an input they gave, or with a
        guess that fitted the first layer while a later layer disagrees with the one before
        (a guess that does not fit at all is the guess's fault: pin an input instead)."""
        if self.error is None:
            return False
        return not self.guessed or (self.fix is not None and self.fix.internal)


@dataclass(frozen=True)
class TreeRow:
    """One module of the model tree, in depth-first order (for the summary table)."""

    path: str  # attribute path from the root, "" for the root
    type: str
    depth: int
    params: int  # unique parameters of the module and its descendants
    own_params: int  # parameters registered directly on the module
    own_shapes: tuple[tuple[int, ...], ...]
    trainable: str  # "True", "False", "Partial" or "--" for no parameters
    line: int | None = None
    file: str | None = None
    leaf: bool = True
    qualtype: str = ""  # module.QualName of the module's class, to find a class's instances
    # the parameters registered directly on the module, in the order of own_shapes
    own_names: tuple[str, ...] = ()
    own_trainable: tuple[bool, ...] = ()
    input_shape: str = ""  # its first call's, when forward() ran
    output_shape: str = ""
    macs: int = 0  # all its calls'


@dataclass(frozen=True)
class Part:
    """Modules of one workspace class inside a model, with the same parameter count."""

    qualtype: str  # module.QualName
    params: int  # parameters of one such module
    count: int


@dataclass(frozen=True)
class Instance:
    """Instances of a class measured inside a model built from another class or factory."""

    model: str  # the model they were measured in
    file: str  # where that model is defined
    count: int
    params: int  # parameters of one instance (all instances of this entry have this count)


@dataclass(frozen=True)
class ModelResult:
    name: str
    file: str
    line: int
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    buffer_numel: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    dtypes: tuple[str, ...] = ()
    device: str = "meta"
    ctor: str = ""
    notes: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    layers: tuple[LayerEntry, ...] = ()
    tree: tuple[TreeRow, ...] = ()
    build_ms: float = 0.0
    kind: str = "class"  # as ClassSpec.kind
    model_class: str = ""  # module.QualName of what was built (a factory's class)
    instances: tuple[Instance, ...] = ()  # filled by the engine, not the worker
    example: bool = False  # built with example arguments guessed from parameter names
    # workspace classes inside the model (when the tree was not kept, a factory's totals-only
    # result): where the engine finds instances of classes that need arguments
    parts: tuple[Part, ...] = ()
    forward: ForwardInfo | None = None  # None: no example input found, or not built
    # where the constructor's arguments came from: a kind (SOURCE_*) and the place
    # ("configs/model/mnist.yaml:4", "main.py:140", "GPT.get_default_config()")
    source_kind: str = ""
    source: str = ""

    @classmethod
    def failed(cls, spec: ClassSpec, file: str, error: ErrorInfo) -> ModelResult:
        """The result of a class that could not be built."""
        return cls(
            spec.name,
            file,
            spec.line,
            ctor=spec.ctor or "",
            error=error,
            kind=spec.kind,
            source_kind=spec.source_kind,
            source=spec.ctor_source,
        )


@dataclass(frozen=True)
class JobResult:
    models: tuple[ModelResult, ...]
    isolation: tuple[str, ...] = ()  # which isolation layers were active
    notes: tuple[str, ...] = ()
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class WorkerInfo:
    python: str
    python_version: str
    torch_version: str
    pid: int
    fork: bool
    protocol: int = PROTOCOL_VERSION
    notes: tuple[str, ...] = ()
    startup_ms: float = 0.0


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, which runs user code: its ``__str__`` may raise, or not return a str."""
    try:
        text = str(exc)
    except BaseException:  # even SystemExit from a __str__
        return f"(str() of this {type_name(exc)} failed)"
    return text if isinstance(text, str) else ""


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """``ExcType: the first line of its text``: the form of :attr:`ErrorInfo.message`."""
    lines = exception_text(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f"{type_name(exc)}: {message}" if message else type_name(exc)


def type_name(obj: object) -> str:
    """The name of ``obj``'s class; a user may have replaced even that with anything."""
    name = getattr(type(obj), "__name__", None)
    return name if isinstance(name, str) else "?"


# -- (de)serialisation --------------------------------------------------------


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(obj: Any) -> tuple[str, ...] | None:
    """The fields of a dataclass instance (looked up once per class); None for the rest."""
    names = _FIELDS.get(type(obj))
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    return names


def to_json(obj: Any) -> Any:
    """Dataclasses to plain JSON values (tuples become lists)."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    names = _field_names(obj)
    if names is not None:
        return {name: to_json(getattr(obj, name)) for name in names}
    if isinstance(obj, (list, tuple)):
        return [to_json(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


def json_default(obj: Any) -> Any:
    """``json.dumps(..., default=json_default)``: a dataclass as the dict of its fields.
    The result equals ``json.dumps(to_json(obj))``, with the lists, dicts and numbers left
    to json's C encoder: one Python call per dataclass instead of one per value (a folder
    of 1,965 timm models: 5 million calls of to_json)."""
    names = _field_names(obj)
    if names is None:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
    return {name: getattr(obj, name) for name in names}


def dumps(message: object) -> str:
    return json.dumps(message, separators=(",", ":"), default=json_default)


def _tuple(values: Any) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def class_spec(d: dict[str, Any]) -> ClassSpec:
    return ClassSpec(
        **{
            **d,
            "missing_args": tuple(d.get("missing_args", ())),
            "refs": tuple((n, t) for n, t in d.get("refs", ())),
            "alternatives": tuple(d.get("alternatives", ())),
            "candidates": tuple((c, s, e, k) for c, s, e, k in d.get("candidates", ())),
        }
    )


def build_job(d: dict[str, Any]) -> BuildJob:
    return BuildJob(
        **{
            **d,
            "sys_path": tuple(d["sys_path"]),
            "classes": tuple(class_spec(c) for c in d["classes"]),
            "overrides": tuple((p, t) for p, t in d.get("overrides", ())),
            "dims": tuple((n, v) for n, v in d.get("dims", ())),
            "training": training(d.get("training", {})),
        }
    )


def training(d: dict[str, Any]) -> Training:
    return Training(
        **{
            **d,
            "checkpoint": tuple(d.get("checkpoint", ())),
            "wrap": tuple(d.get("wrap", ())),
        }
    )


def step_memory(d: dict[str, Any] | None) -> StepMemory | None:
    if d is None:
        return None
    return StepMemory(**{**d, "modules": tuple(ModuleMemory(**m) for m in d.get("modules", ()))})


def error_info(d: dict[str, Any] | None) -> ErrorInfo | None:
    return None if d is None else ErrorInfo(**d)


def param_info(d: dict[str, Any]) -> ParamInfo:
    return ParamInfo(**{**d, "shape": tuple(d["shape"])})


def layer_entry(d: dict[str, Any]) -> LayerEntry:
    return LayerEntry(
        **{
            **d,
            "parameters": tuple(param_info(p) for p in d["parameters"]),
            "tied": tuple((f, n) for f, n in d.get("tied", ())),
            "calls": tuple(Call(**c) for c in d.get("calls", ())),
            "sizes": tuple(LineSize(**x) for x in d.get("sizes", ())),
            "merged_from": tuple(d.get("merged_from", ())),
        }
    )


def forward_info(d: dict[str, Any] | None) -> ForwardInfo | None:
    if d is None:
        return None
    declared = d.get("declared")
    fix = d.get("fix")
    return ForwardInfo(
        **{
            **d,
            "error": error_info(d.get("error")),
            "declared": None if declared is None else (declared[0], declared[1]),
            "fix": None if fix is None else ShapeFix(**fix),
            "lines": tuple(
                InlineShape(**{**x, "shapes": tuple(x["shapes"])}) for x in d.get("lines", ())
            ),
            "step": step_memory(d.get("step")),
        }
    )


def tree_row(d: dict[str, Any]) -> TreeRow:
    return TreeRow(
        **{
            **d,
            "own_shapes": _tuple(d["own_shapes"]),
            "own_names": tuple(d.get("own_names", ())),
            "own_trainable": tuple(d.get("own_trainable", ())),
        }
    )


def model_result(d: dict[str, Any]) -> ModelResult:
    return ModelResult(
        **{
            **d,
            "dtypes": tuple(d.get("dtypes", ())),
            "notes": tuple(d.get("notes", ())),
            "error": error_info(d.get("error")),
            "layers": tuple(layer_entry(x) for x in d.get("layers", ())),
            "tree": tuple(tree_row(x) for x in d.get("tree", ())),
            "instances": tuple(Instance(**x) for x in d.get("instances", ())),
            "parts": tuple(Part(**x) for x in d.get("parts", ())),
            "forward": forward_info(d.get("forward")),
        }
    )


def job_result(d: dict[str, Any]) -> JobResult:
    return JobResult(
        models=tuple(model_result(m) for m in d["models"]),
        isolation=tuple(d.get("isolation", ())),
        notes=tuple(d.get("notes", ())),
        elapsed_ms=d.get("elapsed_ms", 0.0),
    )


def worker_info(d: dict[str, Any]) -> WorkerInfo:
    return WorkerInfo(**{**d, "notes": tuple(d.get("notes", ()))})


# -- checking what a build child sent ------------------------------------------


_Check = typing.Callable[[Any, str], None]


def check_types(obj: Any) -> None:
    """Raise TypeError unless every field of the dataclass ``obj`` has its declared type.

    Build children run user code: what they send is parsed, then checked, before the
    worker trusts it (a string where a count belongs would break the server later). The
    check of each type is made once from its hints (a LLaMA-70B result: 3,900 objects).
    """
    cls: type = type(obj)
    _dataclass_check(cls)(obj, cls.__name__)


@functools.cache
def _dataclass_check(cls: type) -> _Check:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, f"{cls.__name__}.{f.name}") for f in dataclasses.fields(cls)]
    checks: list[tuple[str, str, _Check]] = []

    def check(obj: Any, where: str) -> None:
        if not checks:  # filled on first use: a field may hold this very class
            checks.extend((name, at, _check(hints[name])) for name, at in fields)
        for name, at, check_field in checks:
            check_field(getattr(obj, name), at)

    return check


@functools.cache
def _check(hint: Any) -> _Check:
    """The check of one type hint: a dataclass, int, float, str, bool, None, a union, a
    fixed or variable-length tuple of those."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:

        def literal(value: Any, where: str) -> None:
            if not isinstance(value, str) or value not in args:
                raise TypeError(f"{where}: expected one of {', '.join(args)}, got {value!r:.40}")

        return literal
    if origin in (typing.Union, types.UnionType):
        options = [_check(option) for option in args]

        def one_of(value: Any, where: str) -> None:
            for option in options:
                try:
                    option(value, where)
                    return
                except TypeError:
                    pass
            raise TypeError(f"{where}: unexpected {type(value).__name__}")

        return one_of
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _check(args[0])

            def items(value: Any, where: str) -> None:
                if not isinstance(value, tuple):
                    raise TypeError(f"{where}: expected a list, got {type(value).__name__}")
                for each in value:
                    item(each, where)

            return items
        checks = [_check(arg) for arg in args]

        def fixed(value: Any, where: str) -> None:
            if not isinstance(value, tuple):
                raise TypeError(f"{where}: expected a list, got {type(value).__name__}")
            if len(value) != len(checks):
                raise TypeError(f"{where}: expected {len(checks)} items, got {len(value)}")
            for each, check in zip(value, checks):
                check(each, where)

        return fixed
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        fields = _dataclass_check(hint)

        def dataclass_value(value: Any, where: str) -> None:
            if not isinstance(value, hint):
                _wrong(value, hint, where)
            fields(value, hint.__name__)

        return dataclass_value
    if hint is int or hint is float:  # a bool is an int to isinstance, not to a count
        numbers = (int,) if hint is int else (int, float)

        def number(value: Any, where: str) -> None:
            if type(value) is not hint and (
                not isinstance(value, numbers) or isinstance(value, bool)
            ):
                _wrong(value, hint, where)

        return number

    def instance(value: Any, where: str) -> None:  # str, bool, None
        if not isinstance(value, hint):
            _wrong(value, hint, where)

    return instance


def _wrong(value: Any, hint: Any, where: str) -> typing.NoReturn:
    raise TypeError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r:.40}")
