"""Constructors from the project's own arguments, for a class that needs some: its config
method (``GPT(config=GPT.get_default_config())``, the fields it leaves None filled from a
place that sets them, else example sizes by their names) and the model a script builds at
module level (``netG = Generator(ngpu)``, evaluated where the script's statements left
``ngpu``). Pure: reads the :class:`~paramlens.analysis.workspace.Workspace`, runs nothing.
Imports :mod:`paramlens.analysis` and the worker's protocol."""

from __future__ import annotations

import dataclasses
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..analysis.arguments import (
    ConfigMethod,
    FieldSite,
    asserted_fields,
    config_methods,
    field_sites,
    script_instances,
)
from ..analysis.configs import ConfigBuild, WorkspaceConfigs, config_root, read_configs
from ..analysis.docs import DocExample, doc_examples
from ..analysis.example_args import example_value
from ..analysis.json_configs import JsonFile, fitting_kwargs, json_files, read_json
from ..analysis.literals import refs_in
from ..analysis.model import ClassInfo, InitParam, Ref, Target
from ..analysis.reading import relative_path
from ..analysis.workspace import Workspace
from ..worker import protocol
from ..worker.protocol import ClassSpec, ErrorInfo, ModelResult

FIELDS_HELPER = "__paramlens_fields__"  # the worker's: sets a config's fields, returns it
IN_MODULE_HELPER = "__paramlens_in__"  # the worker's: evaluates an expression in a module

_CONFIG_NAMES = ("config", "cfg", "conf", "args", "params", "hparams", "hp", "opts", "settings")


def _config_param(required: Sequence[InitParam]) -> InitParam | None:
    """The parameter a config object goes to: the only required one, or the one named so."""
    if len(required) == 1:
        return required[0]
    named = [p for p in required if p.name.lower().endswith(_CONFIG_NAMES)]
    return named[0] if len(named) == 1 else None


def _sites(workspace: Workspace, cls: ClassInfo, method: ConfigMethod) -> list[FieldSite]:
    """The places that set fields of what the method returned to literals, those setting
    most of its open fields first."""
    sites = [
        site
        for info in workspace.files.values()
        if method.name in info.words()
        for site in field_sites(info, cls, method.name, workspace.resolve)
    ]
    opened = set(method.open_fields)
    return sorted(sites, key=lambda s: (-len(opened & dict(s.values).keys()), -len(s.values)))


MAX_SITES = 3  # places tried after the method's own defaults


def _values(values: Sequence[tuple[str, object]]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values)


def config_method_spec(
    cls: ClassInfo, workspace: Workspace, required: Sequence[InitParam]
) -> ClassSpec | None:
    """``cls`` built from its own config method, if it has one and needs only the config."""
    info = workspace.files.get(cls.file)
    methods = config_methods(info, cls) if info is not None else []
    if info is None or not methods:
        return None
    kind = protocol.SOURCE_CONFIG_METHOD
    factory = next((m for m in methods if m.returns_instance), None)
    if factory is not None:  # Model.from_config(): builds the class itself
        call = f"{cls.name}.{factory.name}()"
        return ClassSpec(cls.name, cls.line, call, call, source_kind=kind)
    param = _config_param(required)
    if param is None:
        return None
    method = methods[0]
    called = f"{cls.name}.{method.name}()"
    asserted = set(asserted_fields(info, cls, param.name))
    # as the places that set its open fields do, else its own defaults, else as another
    # place that sets its fields does (minGPT's default model_type "gpt" names no size:
    # projects/chargpt sets "gpt-mini")
    candidates: list[tuple[str, str, bool, str]] = []
    sites = _sites(workspace, cls, method)[:MAX_SITES]
    opened = set(method.open_fields)
    setting = [s for s in sites if opened & dict(s.values).keys()]
    # places that set its open fields, then its own defaults, then the other places
    for site in [*setting, None, *(s for s in sites if s not in setting)]:
        given = dict(site.values) if site is not None else {}
        # the open fields the class insists on, and no more: minGPT asserts vocab_size and
        # block_size, and refuses n_layer together with the model_type its default sets
        wanted = [f for f in method.open_fields if f in asserted and f not in given]
        examples = [(f, example_value(f, None)) for f in wanted]
        fields = [*((k, repr(v)) for k, v in given.items()), *examples]
        config = called
        if fields:
            filled = ", ".join(f"{name}={value}" for name, value in fields if value is not None)
            config = f"{FIELDS_HELPER}({called}, {filled})"
        source = called
        if site is not None:
            where = relative_path(site.file, workspace.root)
            source += f", {_values(site.values)} as set at {where}:{site.line}"
        if examples:
            source += f", example {', '.join(f'{f}={v}' for f, v in examples)}"
        ctor = f"{cls.name}({param.name}={config})"
        if all(c[0] != ctor for c in candidates):
            candidates.append((ctor, source, bool(examples), kind))
    (ctor, source, example, _), *rest = candidates
    return ClassSpec(
        cls.name,
        cls.line,
        ctor,
        source,
        source_kind=protocol.SOURCE_CONFIG_METHOD,
        example=example,
        candidates=tuple(rest),
    )


def script_spec(cls: ClassInfo, workspace: Workspace) -> ClassSpec | None:
    """``cls`` as a script builds it at module level, its own file's script first."""
    files = [workspace.files[cls.file]] if cls.file in workspace.files else []
    files += [f for p, f in sorted(workspace.files.items()) if p != cls.file]
    for info in files:
        if cls.name not in info.words():
            continue
        for instance in script_instances(info):
            if workspace.resolve(instance.target) != cls.qualname:
                continue
            ctor = instance.call
            if info.path != cls.file:  # the script's names, not the class's module's
                ctor = f"{IN_MODULE_HELPER}({instance.module!r}, {instance.call!r})"
            where = f"{relative_path(info.path, workspace.root)}:{instance.line}"
            return ClassSpec(cls.name, cls.line, ctor, where, source_kind=protocol.SOURCE_SCRIPT)
    return None


# -- configuration files -------------------------------------------------------------

_CONFIGS: weakref.WeakKeyDictionary[Workspace, WorkspaceConfigs] = weakref.WeakKeyDictionary()


def workspace_configs(workspace: Workspace) -> WorkspaceConfigs:
    """The workspace's model-building configs (read once per scan of the workspace)."""
    known = _CONFIGS.get(workspace)
    if known is None:
        known = _CONFIGS[workspace] = read_configs(workspace.root)
    return known


class Names:
    """Names a constructor expression gives the targets it builds: their last part,
    numbered when two differ (``Adam``, ``SimpleDenseNet``)."""

    def __init__(self, own: tuple[str, str]) -> None:
        self.refs: dict[str, str] = {}
        self.own = own  # (qualified, name) of the class itself: its module defines it

    def name(self, target: str) -> str:
        if target == self.own[0]:
            return self.own[1]
        base = target.rpartition(".")[2] or target
        alias, number = base, 1
        while self.refs.get(alias, target) != target or alias == self.own[1]:
            number += 1
            alias = f"{base}_{number}"
        self.refs[alias] = target
        return alias


def expression(value: object, names: Names) -> str:
    """Python source for a config value: targets as calls, the rest as literals."""
    if isinstance(value, Target):
        parts = [expression(a, names) for a in value.args]
        parts += [f"{k}={expression(v, names)}" for k, v in value.kwargs]
        callee = names.name(value.target)
        if value.partial:
            return f"{names.name('functools.partial')}({', '.join([callee, *parts])})"
        return f"{callee}({', '.join(parts)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {expression(v, names)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(expression(v, names) for v in value) + "]"
    if isinstance(value, tuple):
        items = [expression(v, names) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return repr(value)


# -- documentation examples ------------------------------------------------------------

_DOCS: weakref.WeakKeyDictionary[Workspace, dict[str, list[DocExample]]] = (
    weakref.WeakKeyDictionary()
)
MAX_DOC_CANDIDATES = 4  # a class's doc examples tried, the first by file order


def workspace_docs(workspace: Workspace) -> dict[str, list[DocExample]]:
    """The workspace's doc examples by the class they build (read once per scan)."""
    known = _DOCS.get(workspace)
    if known is None:
        known = {}
        for example in doc_examples(workspace):
            known.setdefault(example.build.target, []).append(example)
        _DOCS[workspace] = known
    return known


def doc_place(example: DocExample, root: Path) -> str:
    """``README.md:123``, ``vit_pytorch/cait.py:40 (docstring)``."""
    where = f"{relative_path(example.file, root)}:{example.line}"
    return f"{where} (docstring)" if example.docstring else where


def doc_constructors(
    cls: ClassInfo, workspace: Workspace
) -> tuple[list[tuple[str, str]], tuple[tuple[str, str], ...]]:
    """``cls`` as the project's documentation builds it: (expression, where) for each
    distinct doc example, first by file order, and the names the expressions use."""
    names = Names((cls.qualname, cls.name))
    refs: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    for example in workspace_docs(workspace).get(cls.qualname, []):
        ctor = expression(example.build, names)
        if any(c == ctor for c, _ in found):
            continue
        found.append((ctor, doc_place(example, workspace.root)))
        refs.update((r.local, r.target) for r in refs_in(example.build))
        if len(found) >= MAX_DOC_CANDIDATES:
            break
    refs.update(names.refs)
    return found, tuple(sorted(refs.items()))


def _config_class(build: ConfigBuild, workspace: Workspace, path: str) -> ClassInfo | None:
    """The workspace model class of ``path`` a config builds, if it builds one."""
    cls = workspace.classes.get(workspace.resolve(build.target))
    if cls is None or cls.file != path or cls.qualname not in workspace.module_classes:
        return None
    return cls


def config_specs(path: str, workspace: Workspace) -> list[ClassSpec]:
    """Every config that builds a model class of ``path``, as a constructor of its own."""
    specs = hf_config_specs(path, workspace) + json_config_specs(path, workspace)
    for build in workspace_configs(workspace).builds:
        cls = _config_class(build, workspace, path)
        if cls is None or build.build is None:
            continue
        names = Names((cls.qualname, cls.name))
        ctor = expression(build.build, names)
        where = f"{relative_path(build.file, workspace.root)}:{build.line}"
        specs.append(
            ClassSpec(
                build.name,
                cls.line,
                ctor,
                where,
                kind="config",
                refs=tuple(sorted(names.refs.items())),
                source_kind=protocol.SOURCE_CONFIG_FILE,
            )
        )
    return specs


def config_failures(path: str, workspace: Workspace) -> list[ModelResult]:
    """Configs of ``path``'s model classes that cannot be read: a YAML error or a value
    that does not resolve, at the config's own line (the other configs are unaffected)."""
    configs = workspace_configs(workspace)
    failed = []
    for build in configs.builds:
        cls = _config_class(build, workspace, path)
        if cls is not None and build.build is None:
            failed.append((build.name, cls, build.file, build.line, build.error))
    for error in configs.errors:
        for target in dict.fromkeys(error.targets):
            cls = _config_class(ConfigBuild("", "", 0, None, target=target), workspace, path)
            if cls is not None:
                root = config_root(error.file, workspace.root)
                name = relative_path(error.file, root)
                failed.append((name, cls, error.file, error.line, error.message))
    for cls, name, file, fields, problem, _ in _hf_configs(path, workspace):
        if fields is None:
            line = int(problem.split("line ")[1].split(":")[0]) if "line " in problem else 1
            failed.append((name, cls, file, line, problem))
    failed += _json_failures(path, workspace)
    return [
        ModelResult(
            name,
            cls.file,
            cls.line,  # a diagnostic on the class, pointing at the config's line
            error=ErrorInfo(message, file, line, "syntax"),
            kind="config",
            model_class=cls.qualname,
            source_kind=protocol.SOURCE_CONFIG_FILE,
            source=f"{relative_path(file, workspace.root)}:{line}",
        )
        for name, cls, file, line, message in failed
    ]


MAX_JSON_BYTES = 1 << 20


def _json_config(path: str) -> tuple[dict[str, object] | None, str]:
    """A ``config.json``'s fields, or why it cannot be read (and at which line)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_JSON_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read it: {exc}"
    if len(text) > MAX_JSON_BYTES:
        return None, "over 1 MB: not a model's config"
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"JSON error at line {exc.lineno}: {exc.msg}"
    return (loaded, "") if isinstance(loaded, dict) else (None, "not a JSON object")


def _declared_config_class(cls: ClassInfo, workspace: Workspace) -> ClassInfo | None:
    """The config class of a transformers-style model: declared in its body
    (``config_class = TinyConfig``) or the annotation of its ``config`` parameter."""
    declared = workspace.declared_config(cls)
    if declared is None:
        owner = workspace.init_owner(cls)
        param = next((p for p in workspace.init_params(cls) or () if p.name == "config"), None)
        if owner is None or param is None or not param.annotation:
            return None
        info = workspace.files[owner.file]
        head, _, rest = param.annotation.partition(".")
        base = info.symbols.get(head, f"{info.module}.{head}")
        declared = f"{base}.{rest}" if rest else base
    return workspace.classes.get(workspace.resolve(declared))


def _hf_configs(
    path: str, workspace: Workspace
) -> list[tuple[ClassInfo, str, str, dict[str, object] | None, str, ClassInfo]]:
    """The classes of a ``modeling_*.py`` that the ``config.json`` beside it builds: (class,
    config name, its path, its fields or None, why not, the config class)."""
    if not Path(path).name.startswith("modeling_"):
        return []
    config = Path(path).parent / "config.json"
    if not config.is_file():
        return []
    fields, problem = _json_config(str(config))
    names = fields.get("architectures") if fields is not None else None
    if fields is not None and not isinstance(names, list):
        return []
    name = relative_path(str(config), workspace.root)
    found = []
    for cls in workspace.models_in(path):
        if isinstance(names, list) and cls.name not in names:
            continue
        config_cls = _declared_config_class(cls, workspace)
        if config_cls is not None:
            found.append((cls, name, str(config), fields, problem, config_cls))
    return found


def hf_config_specs(path: str, workspace: Workspace) -> list[ClassSpec]:
    """A Hugging Face model folder: ``config.json`` beside ``modeling_*.py`` builds the
    classes its ``architectures`` names, from their config class, on meta (no weights)."""
    specs = []
    for cls, name, _, fields, _, config_cls in _hf_configs(path, workspace):
        if fields is None:
            continue  # reported by config_failures
        kwargs = {k: v for k, v in fields.items() if k.isidentifier()}
        alias = "__paramlens_config_class__"
        specs.append(
            ClassSpec(
                name,
                cls.line,
                f"{cls.name}({alias}(**{kwargs!r}))",
                f"{name}:1",
                kind="config",
                refs=((alias, config_cls.qualname),),
                source_kind=protocol.SOURCE_CONFIG_FILE,
            )
        )
    return specs


# -- more configurations: every documentation example, JSON config files -----------------

MAX_DOC_CONFIGS = 48  # documentation examples built as configurations of one file's classes
MAX_CALL_CONFIGS = 48  # calls in the project's code and tests, the same
MAX_JSON_CONFIGS = 8  # JSON config files built as configurations of one class

Switch = tuple[str, str, object]


def switches(value: object, owner: str = "", path: str = "") -> set[Switch]:
    """What a constructor expression sets, as (class, argument path, the value when it is
    a flag): ``Decoder(dim=512, use_scalenorm=True)`` sets (``…Decoder``, ``dim``, ``*``)
    and (``…Decoder``, ``use_scalenorm``, True); a JSON config's nested keys count by
    their path (``vision_cfg.timm_model_name``). Sizes count by name only: 512 or 1024
    wide builds the same blocks, a flag may build others, and so may a class given as an
    argument (``block=SEResNeXtBottleneck``), which counts by the class it names."""
    found: set[Switch] = set()
    if isinstance(value, Target):
        items = [*((str(i), a) for i, a in enumerate(value.args)), *value.kwargs]
        for name, item in items:
            found |= switches(item, value.target, name)
        return found
    if path:
        if isinstance(value, Ref):
            found.add((owner, path, value.text))
        else:
            found.add((owner, path, value if isinstance(value, bool) or value is None else "*"))
    if isinstance(value, dict):
        for key, item in value.items():
            found |= switches(item, owner, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= switches(item, owner, f"{path}[]")
    return found


@dataclass(frozen=True)
class Configuration:
    """A way the project builds a model class besides the one the class is built from: a
    documentation example, or a call in its code or tests (:func:`configuration_specs`)."""

    cls: ClassInfo
    build: Target  # the call, its classes resolved: what it sets (:func:`switches`)
    ctor: str
    where: str  # README.md:18, tests/test_blocks.py:40
    refs: tuple[tuple[str, str], ...]
    source_kind: str


def doc_configurations(path: str, workspace: Workspace) -> list[Configuration]:
    """The documentation's examples of ``path``'s model classes, in file order (paths,
    then lines), those nested in another example's call left out (built inside it)."""
    classes = {c.qualname: c for c in workspace.models_in(path)}
    docs = workspace_docs(workspace)
    examples = [e for q in classes for e in docs.get(q, []) if not e.nested]
    examples.sort(key=lambda e: (Path(e.file).as_posix(), e.line))
    found = []
    for example in examples:
        cls = classes[example.build.target]
        names = Names((cls.qualname, cls.name))
        ctor = expression(example.build, names)
        refs = dict((r.local, r.target) for r in refs_in(example.build))
        refs.update(names.refs)
        where = doc_place(example, workspace.root)
        refs_ = tuple(sorted(refs.items()))
        found.append(Configuration(cls, example.build, ctor, where, refs_, protocol.SOURCE_DOC))
    return found


# configurations built per file, by where they come from
MAX_CONFIGS = {protocol.SOURCE_DOC: MAX_DOC_CONFIGS, protocol.SOURCE_CALL_SITE: MAX_CALL_CONFIGS}


def configuration_specs(
    configurations: Sequence[Configuration], built: Mapping[str, str]
) -> list[ClassSpec]:
    """The ``configurations`` of a file's model classes beyond the one each class is built
    from (``built``: its constructor expression, by qualified name), as constructors of
    their own: x-transformers' README shows ``TransformerWrapper`` 47 times and its tests
    call it 60 times, each switching on other blocks (``use_scalenorm = True``,
    ``use_dynamic_tanh = True``), which only those builds make. Bounded: one is built only
    if it sets something (a flag, an argument) that none built before did (in the order
    given), at most :data:`MAX_CONFIGS` of each kind per file."""
    covered: set[Switch] = set()
    for configuration in configurations:
        if built.get(configuration.cls.qualname) == configuration.ctor:
            covered |= switches(configuration.build)
    seen = set(built.values())
    taken: dict[str, int] = {}
    specs: list[ClassSpec] = []
    for configuration in configurations:
        kind = configuration.source_kind
        sets = switches(configuration.build)
        full = taken.get(kind, 0) >= MAX_CONFIGS[kind]
        if configuration.ctor in seen or not sets - covered or full:
            continue
        seen.add(configuration.ctor)
        covered |= sets
        taken[kind] = taken.get(kind, 0) + 1
        specs.append(
            ClassSpec(
                configuration.where,
                configuration.cls.line,
                configuration.ctor,
                configuration.where,
                kind="config",
                refs=configuration.refs,
                source_kind=kind,
            )
        )
    return specs


_FAILED = {protocol.SOURCE_DOC: "the example at", protocol.SOURCE_CALL_SITE: "the call at"}


def without_failed_configurations(models: Sequence[ModelResult]) -> tuple[ModelResult, ...]:
    """``models`` with the documentation examples and calls built as configurations that
    failed as notes of their class, not as errors: a stale README example is the README's,
    a test's call may try a bad argument (the class still says why, in its notes)."""
    failed: dict[int, list[str]] = {}  # by the line of the class (a config's line)
    kept = []
    for m in models:
        if m.kind == "config" and m.source_kind in _FAILED and m.error is not None:
            failed.setdefault(m.line, []).append(
                f"{_FAILED[m.source_kind]} {m.source} failed: {m.error.message}"
            )
        else:
            kept.append(m)
    if not failed:
        return tuple(models)
    return tuple(
        dataclasses.replace(m, notes=(*m.notes, *failed.pop(m.line, ())))
        if m.kind == "class" and m.line in failed
        else m
        for m in kept
    )


_JSON: weakref.WeakKeyDictionary[Workspace, list[JsonFile]] = weakref.WeakKeyDictionary()


def read_again(workspace: Workspace) -> None:
    """Forget what was read beside ``workspace``'s Python files (configs, documentation,
    JSON): they are read again as for a new workspace."""
    for readings in (_CONFIGS, _DOCS, _JSON):
        readings.pop(workspace, None)


def workspace_json(workspace: Workspace) -> list[JsonFile]:
    """The workspace's JSON objects and the JSON files that do not parse (read once per
    scan of the workspace; each file once per version on disk)."""
    known = _JSON.get(workspace)
    if known is None:
        read = (read_json(p) for p in json_files(workspace.root))
        known = _JSON[workspace] = [f for f in read if f is not None]
    return known


def _json_fits(
    path: str, workspace: Workspace
) -> list[tuple[ClassInfo, JsonFile, dict[str, object]]]:
    """(class, file, keyword arguments) for the JSON objects that fit a model class of
    ``path``, at most :data:`MAX_JSON_CONFIGS` a class: those that set something (a
    key, a flag) no file taken before did, the most usual first; then other sizes."""
    classes = [c for c in workspace.models_in(path) if workspace.init_params(c)]
    files = [f for f in workspace_json(workspace) if f.data is not None] if classes else []
    found = []
    for cls in classes:
        params = workspace.init_params(cls) or ()
        fitting = []
        for file in files:
            assert file.data is not None
            kwargs = fitting_kwargs(file.data, params)
            if kwargs is not None:
                sets = switches(Target(cls.qualname, (), tuple(kwargs.items())))
                fitting.append((len(sets), file.path, file, kwargs, sets))
        # the most usual first (ViT-B-32.json: the keys most files set), then those that
        # set something new
        usual: dict[Switch, int] = {}
        for *_, sets in fitting:
            for switch in sets:
                usual[switch] = usual.get(switch, 0) + 1
        fitting.sort(key=lambda f: (-sum(usual[s] for s in f[4]) / max(len(f[4]), 1), f[1]))
        covered: set[Switch] = set()
        Fit = tuple[ClassInfo, JsonFile, dict[str, object]]
        new: list[Fit] = []
        same: list[Fit] = []  # then, to the cap, other sizes of what was taken
        for _, _, file, kwargs, sets in fitting:
            (new if sets - covered else same).append((cls, file, kwargs))
            covered |= sets
        found += [*new, *same][:MAX_JSON_CONFIGS]
    return found


def json_config_specs(path: str, workspace: Workspace) -> list[ClassSpec]:
    """The JSON files that configure ``path``'s model classes, as constructors of their
    own (:mod:`paramlens.analysis.json_configs`), named by their path."""
    specs = []
    fits = _json_fits(path, workspace)
    classes_of: dict[str, int] = {}
    for _, file, _ in fits:
        classes_of[file.path] = classes_of.get(file.path, 0) + 1
    for cls, file, kwargs in fits:
        name = relative_path(file.path, workspace.root)
        where = f"{name}:1"
        if classes_of[file.path] > 1:  # one file, several classes it fits
            name = f"{name} ({cls.name})"
        names = Names((cls.qualname, cls.name))
        ctor = expression(Target(cls.qualname, (), tuple(kwargs.items())), names)
        specs.append(
            ClassSpec(
                name,
                cls.line,
                ctor,
                where,
                kind="config",
                source_kind=protocol.SOURCE_CONFIG_FILE,
            )
        )
    return specs


def _json_failures(path: str, workspace: Workspace) -> list[tuple[str, ClassInfo, str, int, str]]:
    """The JSON files that do not parse in a folder whose other JSON files configure a
    model class of ``path``: an error of that class's configurations, at the file's line."""
    folders: dict[str, list[ClassInfo]] = {}
    for cls, file, _ in _json_fits(path, workspace):
        listed = folders.setdefault(os.path.dirname(file.path), [])
        if cls not in listed:
            listed.append(cls)
    failed = []
    for file in workspace_json(workspace):
        if file.data is None and os.path.dirname(file.path) in folders:
            name = relative_path(file.path, workspace.root)
            for cls in folders[os.path.dirname(file.path)]:
                failed.append((name, cls, file.path, file.line, file.error))
    return failed
