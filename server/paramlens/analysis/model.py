"""The data model of the analysis: what reading a file finds (:class:`FileInfo`: its
classes, factories, imports and constants) and what call sites say. Plain dataclasses,
pickled by the engine's scan store. Imports :mod:`.source` and :mod:`.notebook` only
(a file's text is read again lazily when it was persisted without it)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from .notebook import read_module_source
from .source import SourceError, content_digest


@dataclass(frozen=True)
class InitParam:
    name: str
    annotation: str | None  # dotted name of the annotation, if it is a plain name
    required: bool


@dataclass(frozen=True)
class ClassInfo:
    name: str
    qualname: str  # module.Class
    file: str
    line: int
    end_line: int
    bases: tuple[str, ...]  # qualified names, as far as they resolve
    params: tuple[InitParam, ...] | None  # None: the class defines no __init__
    is_dataclass: bool
    # its config class, as transformers' models declare it: `config: LlamaConfig` (or
    # `config_class = LlamaConfig`) in the class body, qualified
    config_class: str | None = None
    # its __init__ takes **kwargs beside its own parameters and passes them on (MONAI's
    # SEResNet50(layers=..., **kwargs) to SENet, which requires spatial_dims)
    passes_on: bool = False


@dataclass(frozen=True)
class FactoryInfo:
    """A module-level function with no required parameters that may return a model."""

    name: str
    line: int
    params: tuple[str, ...]  # names of its parameters
    registered: bool  # decorated like a model registry entry (@register_model)
    returns: tuple[str, ...]  # qualified names it returns: annotation, `return Cls(...)`


@dataclass(frozen=True)
class Ref:
    """A call-site argument naming a class or function, e.g. ``BasicBlock`` or ``nn.GELU``."""

    local: str  # the name the expression starts with
    target: str  # what that name is bound to, qualified: "pkg.blocks.BasicBlock", "torch.nn"
    text: str  # the expression as written

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Target:
    """A class to build, with its arguments: a config's ``_target_`` / ``class_path`` and the
    rest, or a call of a class in code (``attn_layers=Decoder(dim=512, depth=6)``)."""

    target: str  # dotted path of the class or function
    args: tuple[object, ...]  # plain values and Targets
    kwargs: tuple[tuple[str, object], ...]
    partial: bool = False  # ``_partial_: true``: functools.partial of the target


@dataclass(frozen=True)
class CallSite:
    target: str  # qualified name of the callee
    file: str
    line: int
    args: tuple[object, ...]  # literal values and Refs
    kwargs: tuple[tuple[str, object], ...]
    # how local values in the arguments were chosen, if they were one of several (the first
    # loop value, parametrize case): "" when every argument is the one value it can be
    note: str = ""


@dataclass(frozen=True)
class ModelCall:
    """A call of a model with literal tensors: ``net(torch.randn(64, 1, 28, 28))``, or
    ``x = torch.randn(...)`` then ``net(x)`` in the same function (read, never run)."""

    target: str  # qualified name of the model's class
    file: str
    line: int
    input: str  # the input as forward()'s example input: an expression, tuple or dict
    built_at: int = 0  # the line of the call that built the model called (0: not known)


@dataclass
class FileInfo:
    path: str
    module: str
    root: str  # the folder to put on sys.path so that ``module`` imports
    symbols: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    constants: dict[str, object] = field(default_factory=dict)
    # The text, kept to find call sites lazily (rarely needed, costly to collect); None once
    # persisted without it (the scan store keeps no copy of the sources): read from disk again.
    source: str | None = None
    imports: set[str] = field(default_factory=set)  # qualified names of imported modules
    syntax_error: tuple[str, int] | None = None
    factories: dict[str, FactoryInfo] = field(default_factory=dict)
    digest: str = ""  # of the text: what cache keys use (the text itself may not be loaded)
    found_call_sites: list[CallSite] | None = None  # parsed on first use, then kept
    found_model_calls: list[ModelCall] | None = None
    _words: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.digest and self.source is not None:
            self.digest = content_digest(self.source)

    @property
    def text(self) -> str:
        if self.source is None:
            try:
                self.source = read_module_source(Path(self.path))
            except (OSError, SourceError):
                self.source = ""
        return self.source

    def without_text(self) -> FileInfo:
        """This entry as persisted: its text stays on disk (the digest says which it was)."""
        return dataclasses.replace(self, source=None)

    def call_sites_known(self) -> bool:
        return self.found_call_sites is not None

    def words(self) -> frozenset[str]:
        """Every identifier in the text: which files could mention a name, cheaply."""
        if self._words is None:  # a file that does not parse has no call sites to offer
            self._words = frozenset() if self.syntax_error else frozenset(_WORD.findall(self.text))
        return self._words


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
