"""How to construct each model class: a ``[tool.paramlens.models]`` entry, its defaults,
a config class that builds with no arguments, a call site with literal arguments, else
example sizes; forward()'s example input; model factories called without weights. Pure
(reads the :class:`~paramlens.analysis.workspace.Workspace`, runs nothing); imports
:mod:`paramlens.analysis`, :mod:`paramlens.config` and the worker's protocol."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..analysis.arguments import main_blocks
from ..analysis.example_args import NO_WEIGHTS, VARIANTS, example_value
from ..analysis.literals import refs_in, without_weights
from ..analysis.model import ClassInfo, FactoryInfo, InitParam, ModelCall, Target
from ..analysis.notebook import is_notebook, load_notebook
from ..analysis.reading import relative_path
from ..analysis.source import SourceError
from ..analysis.workspace import Workspace
from ..config import Settings, find_pyproject, key_line
from ..worker import protocol
from ..worker.protocol import CALL_SITE_INPUT, EXAMPLE_SOURCE, ClassSpec
from .real_args import (
    Configuration,
    Names,
    config_method_spec,
    configuration_specs,
    doc_configurations,
    doc_constructors,
    expression,
    script_spec,
)

CONFIG_PARAM_NAMES = frozenset({"config", "cfg", "conf", "args", "params", "hparams", "hp", "opts"})
CONFIG_SUFFIXES = ("config", "cfg", "args", "params", "hparams", "options", "settings")


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


def _no_arg_class(qualname: str, workspace: Workspace) -> ClassInfo | None:
    """A workspace class (not a model) that builds with no arguments: a config class."""
    cls = workspace.classes.get(workspace.resolve(qualname))
    if cls is None or cls.qualname in workspace.module_classes:
        return None
    if cls.is_dataclass:
        return cls
    params = workspace.init_params(cls) or ()
    return None if any(p.required for p in params) else cls


def _config_class(
    param_name: str, annotation: str | None, workspace: Workspace, cls: ClassInfo
) -> ClassInfo | None:
    """A config class that builds with no arguments, for this parameter: the one the class
    declares for ``config`` (transformers' ``config: CLIPConfig`` in the class body), else
    the annotation's (from any workspace module), else one of the same module by name."""
    info = workspace.files[cls.file]
    declared = workspace.declared_config(cls) if param_name == "config" else None
    if declared is not None and (found := _no_arg_class(declared, workspace)) is not None:
        return found
    if annotation:
        # where the name means something: the module of the class, else that of the base
        # whose __init__ it inherits (modular_mistral's MistralModel gets LlamaModel's
        # ``config: LlamaConfig``, a name modeling_llama imports)
        owner = workspace.init_owner(cls)
        head, _, rest = annotation.partition(".")
        for path in dict.fromkeys([cls.file, owner.file if owner else cls.file]):
            module = workspace.files[path]
            base = module.symbols.get(head, f"{module.module}.{head}")
            found = _no_arg_class(f"{base}.{rest}" if rest else base, workspace)
            if found is not None:
                return found
    candidates = {
        c.name: c for c in info.classes.values() if _no_arg_class(c.qualname, workspace) is not None
    }
    # then classes it imports (transformers: `from .configuration_llama import LlamaConfig`)
    for local, target in info.symbols.items():
        if local not in candidates and local[:1].isupper() and target != f"{info.module}.{local}":
            found = _no_arg_class(target, workspace)
            if found is not None:
                candidates[local] = found
    by_name = [c for n, c in candidates.items() if _norm(n) == _norm(param_name)]
    if by_name:
        return by_name[0]
    if param_name.lower() in CONFIG_PARAM_NAMES:
        configs: list[ClassInfo] = []
        for suffix in CONFIG_SUFFIXES:  # "...Config" first: not TransformersKwargs
            configs = configs or [c for n, c in candidates.items() if n.lower().endswith(suffix)]
        own = [c for c in configs if c.file == cls.file]
        # the most derived one: LlamaConfig, not the PreTrainedConfig it extends
        bases = {workspace.resolve(b) for c in configs for b in c.bases}
        leaves = [c for c in own or configs if c.qualname not in bases]
        if len(leaves) == 1:
            return leaves[0]
    return None


def _path_key(cls: ClassInfo, workspace: Workspace) -> str:
    return f"{relative_path(cls.file, workspace.root)}::{cls.name}"


def _unpicked(name: str, table: Mapping[str, str], workspace: Workspace) -> list[ClassInfo]:
    """The model classes called ``name`` that no ``path::Class`` key of ``table`` picks:
    those a bare ``name`` key may mean."""
    return [c for c in workspace.models_named(name) if _path_key(c, workspace) not in table]


def settings_key(cls: ClassInfo, table: Mapping[str, str], workspace: Workspace) -> str | None:
    """The key of ``[tool.paramlens.models]`` (or ``.inputs``) that names ``cls``: its
    ``path::Class``, else its bare name if that can mean only ``cls`` (no other model class
    of the workspace has that name, or a ``path::Class`` key picks each other one). A bare
    name that could mean several applies to none of them: see :func:`ambiguous_keys`."""
    own = _path_key(cls, workspace)
    if own in table:
        return own
    if cls.name in table and [c.qualname for c in _unpicked(cls.name, table, workspace)] == [
        cls.qualname
    ]:
        return cls.name
    return None


@dataclass(frozen=True)
class AmbiguousKey:
    """A bare class name in ``[tool.paramlens.<table>]`` that names several model classes
    of the workspace, and so is applied to none of them."""

    table: str  # "models" or "inputs"
    key: str
    classes: tuple[str, ...]  # each as a path::Class key picks it

    def message(self) -> str:
        listed = ", ".join(self.classes)
        return (
            f'"{self.key}" in [tool.paramlens.{self.table}] names {len(self.classes)} '
            f"classes ({listed}) and is applied to none: to pick one, key it by "
            f'"path.py::Class", e.g. "{self.classes[0]}"'
        )


def ambiguous_keys(settings: Settings, workspace: Workspace) -> list[AmbiguousKey]:
    """The bare class names in ``models`` and ``inputs`` that several classes answer to."""
    found = []
    for table, entries in (("models", settings.models), ("inputs", settings.inputs)):
        for key in entries:
            if "::" in key or key == "*":
                continue
            classes = _unpicked(key, entries, workspace)
            if len(classes) > 1:
                found.append(
                    AmbiguousKey(table, key, tuple(_path_key(c, workspace) for c in classes))
                )
    return found


@dataclass(frozen=True)
class SettingsProblem:
    """A setting that is not applied as written, at its line of pyproject.toml (``file``
    and ``line`` None: it came from the editor's settings)."""

    message: str
    file: str | None = None
    line: int | None = None


def settings_problems(
    path: Path, settings: Settings, workspace: Workspace
) -> tuple[SettingsProblem, ...]:
    """What is wrong with the settings ``path`` is analysed with, given its workspace: bare
    class names that several classes answer to, each at its pyproject.toml line."""
    found = ambiguous_keys(settings, workspace)
    pyproject = find_pyproject(path) if found else None
    problems = []
    for ambiguous in found:
        line = None if pyproject is None else key_line(pyproject, ambiguous.table, ambiguous.key)
        file = str(pyproject) if line is not None else None
        problems.append(SettingsProblem(ambiguous.message(), file, line))
    return tuple(problems)


def _ref(cls: ClassInfo) -> tuple[str, str]:
    return cls.name, cls.qualname


def constructor(cls: ClassInfo, workspace: Workspace, settings: Settings) -> ClassSpec:
    """How to build ``cls``: the first of pyproject entry, defaults, config class, call site."""
    key = settings_key(cls, settings.models, workspace)
    if key is not None:
        return ClassSpec(
            cls.name,
            cls.line,
            settings.models[key],
            "pyproject.toml",
            source_kind=protocol.SOURCE_PYPROJECT,
        )
    params = workspace.init_params(cls) or ()
    required = [p for p in params if p.required]
    if not required:
        # never download weights: DeepLabV3(encoder_weights=None), FCN(pretrained=False)
        names = {p.name for p in params}
        args = ", ".join(f"{p}={v}" for p, v in NO_WEIGHTS.items() if p in names)
        # a constructor that passes *args, **kwargs on (vit-pytorch's DistillableViT(ViT))
        # may have no defaults to build with: then the calls of the project's code, the
        # documentation's examples, the calls of its tests (MONAI's SEResNet50(**kwargs)
        # gives SENet the spatial_dims it requires)
        documented, doc_refs = doc_constructors(cls, workspace)
        owner = workspace.init_owner(cls)
        sites = _calls(cls, workspace, params, []) if owner and owner.passes_on else []
        candidates = [
            *((c.ctor, c.where, False, protocol.SOURCE_CALL_SITE) for c in sites if not c.test),
            *((c, w, False, protocol.SOURCE_DOC) for c, w in documented),
            *((c.ctor, c.where, False, protocol.SOURCE_CALL_SITE) for c in sites if c.test),
        ]
        used = dict([*doc_refs, *(r for c in sites for r in c.refs)])
        return ClassSpec(
            cls.name,
            cls.line,
            f"{cls.name}({args})",
            "default arguments",
            refs=tuple(sorted(used.items())),
            source_kind=protocol.SOURCE_DEFAULTS,
            candidates=tuple(candidates),
        )
    configs = {p.name: _config_class(p.name, p.annotation, workspace, cls) for p in required}
    if all(configs.values()):
        found = {p: c for p, c in configs.items() if c is not None}
        args = ", ".join(f"{p}={c.name}()" for p, c in found.items())
        refs = tuple(sorted({_ref(c) for c in found.values()}))  # sorted: part of the cache key
        return ClassSpec(
            cls.name,
            cls.line,
            f"{cls.name}({args})",
            "config class",
            refs=refs,
            source_kind=protocol.SOURCE_CONFIG_CLASS,
        )
    method = config_method_spec(cls, workspace, required)
    if method is not None:
        return method
    fallback = _examples(cls, workspace, required, configs)
    # calls of the class in the project's code (the next if one does not build), else a
    # script's model, then the documentation's examples, then calls in its tests and demos
    # (sizes chosen to try the code, often tiny: x-transformers' TransformerWrapper in a
    # test, against the 19M-parameter one of its training script); then example
    # sizes: the first that builds (each one that fails says why in the result's notes)
    sites = _calls(cls, workspace, params, required)
    code = [(c.ctor, c.where, False, protocol.SOURCE_CALL_SITE) for c in sites if not c.test]
    tests = [(c.ctor, c.where, False, protocol.SOURCE_CALL_SITE) for c in sites if c.test]
    imports = dict([*fallback.refs, *(r for c in sites for r in c.refs)])
    chain = code
    if not chain:
        script = script_spec(cls, workspace)
        if script is not None and script.ctor is not None:
            chain.append((script.ctor, script.ctor_source, False, protocol.SOURCE_SCRIPT))
        documented, doc_refs = doc_constructors(cls, workspace)
        chain += [(c, where, False, protocol.SOURCE_DOC) for c, where in documented]
        imports.update(doc_refs)
    chain += tests
    if not chain:
        return fallback
    kind = protocol.SOURCE_EXAMPLE
    chain += [(c, EXAMPLE_SOURCE, True, kind) for c in (fallback.ctor, *fallback.alternatives) if c]
    (ctor, source, _, kind), *rest = chain
    return ClassSpec(
        cls.name,
        cls.line,
        ctor,
        source,
        missing_args=fallback.missing_args,
        fix_hint=fallback.fix_hint,
        refs=tuple(sorted(imports.items())),
        source_kind=kind,
        candidates=tuple(rest),
    )


MAX_CALL_SITES = 3  # calls of a class tried in turn as its constructor


def is_test_or_demo(path: str, line: int, workspace: Workspace) -> bool:
    """Whether a call at ``path``:``line`` is in the project's tests (a file under a
    ``tests``/``test`` folder of the workspace, or named like pytest's test modules:
    ``test_*.py``, ``*_test.py``, ``conftest.py``) or in a module's
    ``if __name__ == "__main__":`` block (its demo or smoke test): sizes chosen to try the
    code, often tiny."""
    file = Path(path)
    root = workspace.root
    parts = file.relative_to(root).parts if file.is_relative_to(root) else (file.name,)
    name = parts[-1] if parts else ""
    if (
        any(p in ("tests", "test") for p in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    ):
        return True
    info = workspace.files.get(path)
    return info is not None and any(a <= line <= b for a, b in main_blocks(info))


@dataclass(frozen=True)
class _Call:
    """A call of a class that gives all its required parameters, as a constructor."""

    ctor: str
    where: str
    refs: tuple[tuple[str, str], ...]
    test: bool  # in a test or demo: :func:`is_test_or_demo`
    build: Target  # the call, its classes resolved
    file: str
    line: int


def _calls(
    cls: ClassInfo,
    workspace: Workspace,
    params: Sequence[InitParam],
    required: Sequence[InitParam],
    limit: int | None = MAX_CALL_SITES,
) -> list[_Call]:
    """The first distinct calls of ``cls`` (``limit`` of them) that give all its required
    parameters: calls in the project's code first, then in its tests and ``__main__``
    blocks (:func:`is_test_or_demo`); of each, calls with literal arguments first, then
    those with local values (a test's first parametrize case)."""
    found: dict[str, _Call] = {}
    calls = [
        (is_test_or_demo(c.file, c.line, workspace), c) for c in workspace.call_sites(cls.qualname)
    ]
    for test, call in sorted(calls, key=lambda tc: (tc[0], bool(tc[1].note))):
        named = {k for k, _ in call.kwargs} | {p.name for p in params[: len(call.args)]}
        if not all(p.name in named for p in required):
            continue
        args = [_classes_resolved(a, workspace) for a in call.args]
        kwargs = [(k, _classes_resolved(v, workspace)) for k, v in without_weights(call.kwargs)]
        if _REFUSED in args or any(v is _REFUSED for _, v in kwargs):
            continue  # a nested call of something else than a class (a function's result)
        names = Names((cls.qualname, cls.name))
        open_weights = {p.name for p in params if p.name in NO_WEIGHTS} - named
        parts = [expression(a, names) for a in args]
        parts += [f"{k}={expression(v, names)}" for k, v in kwargs]
        # never download weights: a test's EfficientNetBN(...) whose `pretrained` is True
        # by default gets pretrained=False, as one that asks for them (without_weights)
        parts += [f"{p.name}={NO_WEIGHTS[p.name]}" for p in params if p.name in open_weights]
        ctor = f"{cls.name}({', '.join(parts)})"
        if ctor in found:
            continue
        where = site(call.file, call.line, workspace)
        where += f" ({call.note})" if call.note else ""
        values = [*args, *(v for _, v in kwargs)]
        used = {(r.local, r.target) for v in values for r in refs_in(v)} | {*names.refs.items()}
        build = Target(cls.qualname, tuple(args), tuple(kwargs))
        found[ctor] = _Call(ctor, where, tuple(sorted(used)), test, build, call.file, call.line)
        if len(found) == limit:
            break
    return list(found.values())


# how a class is built when the calls of it were looked at: they are its configurations too
_FROM_CALLS = frozenset({protocol.SOURCE_CALL_SITE, protocol.SOURCE_SCRIPT, protocol.SOURCE_DOC})


def more_configurations(
    path: str, workspace: Workspace, built: Mapping[str, ClassSpec]
) -> list[ClassSpec]:
    """The other ways the project builds ``path``'s model classes (``built``: how each is
    built, by qualified name), as configurations of their own: the documentation's
    examples, then the calls in its code and tests of the classes built from such calls
    (:func:`~paramlens.engine.real_args.configuration_specs`)."""
    calls: list[tuple[bool, str, int, Configuration]] = []
    for cls in workspace.models_in(path):
        spec = built.get(cls.qualname)
        if spec is None or spec.source_kind not in _FROM_CALLS:
            continue
        params = workspace.init_params(cls) or ()
        required = [p for p in params if p.required]
        kind = protocol.SOURCE_CALL_SITE
        calls += [
            (c.test, c.file, c.line, Configuration(cls, c.build, c.ctor, c.where, c.refs, kind))
            for c in _calls(cls, workspace, params, required, limit=None)
        ]
    # in the order of the code, then the tests: a call comes before those nested in it
    # (``TransformerWrapper(attn_pool=True, attn_layers=Decoder(...))``), which it builds
    calls.sort(key=lambda c: c[:3])
    found = doc_configurations(path, workspace) + [c[3] for c in calls]
    return configuration_specs(found, {q: spec.ctor or "" for q, spec in built.items()})


_REFUSED = object()


# a class of torch.nn (``nn.Linear``, ``torch.nn.modules.conv.Conv2d``), by its name's case
_TORCH_NN = re.compile(r"torch\.nn\.(?:[a-z_][a-z0-9_]*\.)*[A-Z]\w*")


def _classes_resolved(value: object, workspace: Workspace) -> object:
    """A call site's argument with each nested call's class resolved to where it is
    defined (``attn_layers=Decoder(...)``), or ``_REFUSED`` if one calls something other
    than a workspace class or a ``torch.nn`` one."""
    if isinstance(value, Target):
        target = workspace.resolve(value.target)
        if target not in workspace.classes and not _TORCH_NN.fullmatch(target):
            return _REFUSED
        args = tuple(_classes_resolved(a, workspace) for a in value.args)
        kwargs = tuple((k, _classes_resolved(v, workspace)) for k, v in value.kwargs)
        if _REFUSED in args or any(v is _REFUSED for _, v in kwargs):
            return _REFUSED
        return Target(target, args, kwargs, value.partial)
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (Target, list, tuple, dict)) for v in value
    ):
        items = [_classes_resolved(v, workspace) for v in value]
        if _REFUSED in items:
            return _REFUSED
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and any(
        isinstance(v, (Target, list, tuple, dict)) for v in value.values()
    ):
        resolved = {k: _classes_resolved(v, workspace) for k, v in value.items()}
        return _REFUSED if any(v is _REFUSED for v in resolved.values()) else resolved
    return value


def _examples(
    cls: ClassInfo,
    workspace: Workspace,
    required: list[InitParam],
    configs: dict[str, ClassInfo | None],
) -> ClassSpec:
    """Example sizes by the parameters' names, else what is missing and how to give it."""
    missing = tuple(p.name for p in required)
    example = ", ".join(f"{name}=..." for name in missing)
    hint = f'[tool.paramlens.models]\n{cls.name} = "{cls.name}({example})"'
    # Last, example values for sizes, with config classes where found (LlamaAttention(config,
    # layer_idx) -> LlamaAttention(config=LlamaConfig(), layer_idx=0)).
    ctors: list[str] = []
    for variant in VARIANTS:
        guessed = [
            (
                p.name,
                f"{c.name}()"
                if (c := configs[p.name])
                else example_value(p.name, p.annotation, variant),
            )
            for p in required
        ]
        if all(value is not None for _, value in guessed):
            ctor = f"{cls.name}({', '.join(f'{name}={value}' for name, value in guessed)})"
            if ctor not in ctors:
                ctors.append(ctor)
    if ctors:
        refs = tuple(sorted({_ref(c) for c in configs.values() if c is not None}))
        alternatives = tuple(ctors[1:])
        return ClassSpec(
            cls.name,
            cls.line,
            ctors[0],
            EXAMPLE_SOURCE,
            missing,
            hint,
            refs=refs,
            alternatives=alternatives,
            source_kind=protocol.SOURCE_EXAMPLE,
        )
    return ClassSpec(cls.name, cls.line, None, "", missing, hint)


def site(file: str, line: int, workspace: Workspace) -> str:
    """``models/net.py:12``; in a notebook, ``nb.ipynb:In[5]:2`` (its cell, the line in it)
    when the notebook on disk is the text that was read (an unsaved one: its module line)."""
    where = relative_path(file, workspace.root)
    info = workspace.files.get(file)
    if is_notebook(file) and info is not None:
        with contextlib.suppress(OSError, SourceError):
            notebook = load_notebook(Path(file))
            cell = notebook.locate(line) if notebook.text == info.text else None
            if cell is not None:
                return f"{where}:In[{cell[0]}]:{cell[1]}"
    return f"{where}:{line}"


def with_input(
    spec: ClassSpec, cls: ClassInfo, workspace: Workspace, settings: Settings
) -> ClassSpec:
    """``spec`` with forward()'s example input from ``[tool.paramlens.inputs]`` (or the
    editor's setting, or the CLI's --input), if one is given for the class."""
    key = "*" if "*" in settings.inputs else settings_key(cls, settings.inputs, workspace)
    if key is not None:  # "*": the command line's --input
        source = "command line" if key == "*" else "pyproject.toml"
        return dataclasses.replace(spec, input=settings.inputs[key], input_source=source)
    for call in workspace.model_calls(cls.qualname):  # net(torch.randn(64, 1, 28, 28))
        if spec.source_kind in _BUILT_BY_A_CALL and not _built_there(spec, call, workspace):
            continue  # a model of other sizes: Stack(dim=8) in a test, not Stack(dim=64)
        where = f"{CALL_SITE_INPUT} {site(call.file, call.line, workspace)}"
        return dataclasses.replace(spec, input=call.input, input_source=where)
    return spec


# a class built as a call (or a script's line) builds it: only a call of that model fits
_BUILT_BY_A_CALL = frozenset({protocol.SOURCE_CALL_SITE, protocol.SOURCE_SCRIPT})


def _built_there(spec: ClassSpec, call: ModelCall, workspace: Workspace) -> bool:
    """Whether ``call`` calls the model built by the call ``spec`` builds its class with
    (``tests/test_net.py:12``, perhaps with a note: ``(first loop value)``)."""
    built = spec.ctor_source.partition(" (")[0]
    return call.built_at > 0 and site(call.file, call.built_at, workspace) == built


def factory_spec(factory: FactoryInfo) -> ClassSpec:
    """Call a model factory (``resnet18()``) without ever asking for pretrained weights."""
    args = ", ".join(f"{p}={v}" for p, v in NO_WEIGHTS.items() if p in factory.params)
    return ClassSpec(
        factory.name,
        factory.line,
        f"{factory.name}({args})",
        "factory function",
        kind="factory",
        source_kind=protocol.SOURCE_FACTORY,
    )
