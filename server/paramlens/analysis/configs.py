"""Configuration files that build models, read and never run: Hydra / OmegaConf YAML
(``_target_``, nested targets, ``${a.b}`` interpolations, the defaults lists of the usual
``configs/`` layout, ``# @package _global_``) and LightningCLI YAML (``class_path`` /
``init_args``). Each mapping with a target is a :class:`ConfigBuild`: the class, its
arguments as plain values (nested targets as :class:`Target`), and the file and line they
came from. Neither Hydra nor OmegaConf is imported: the subset of their composition
models need is done here. YAML is parsed with PyYAML's safe composer (the parser OmegaConf
uses), keeping each value's line. Imports :mod:`.source` and :mod:`.workspace`'s folder
rules only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .model import Target
from .workspace import walk_folders

if TYPE_CHECKING:  # imported where a file is parsed: a warm run parses none
    import yaml

MAX_CONFIG_FILES = 2_000  # YAML files one workspace offers at most
MAX_CONFIG_BYTES = 256 * 1024  # a model's config is small: larger YAML is data
CONFIG_ROOTS = ("configs", "config", "conf", "cfg", "cfgs")
_TARGET_KEYS = ("_target_", "class_path")
_HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
_INTERPOLATION = re.compile(r"\$\{([^${}]+)\}")


@dataclass
class Value:
    """A YAML value with where it was written."""

    value: object  # a scalar, dict[str, Value] or list[Value]
    file: str
    line: int  # 1-based


@dataclass(frozen=True)
class ConfigBuild:
    """One model a config builds: ``model/mnist.yaml (net)`` -> SimpleDenseNet(...)."""

    name: str  # the config path, from the config root, and the key inside it if nested
    file: str  # the YAML file (absolute)
    line: int  # of its ``_target_``
    build: Target | None
    error: str = ""  # why it cannot be built: an interpolation that failed
    target: str = ""  # what it builds (also when it cannot)


@dataclass
class ConfigError:
    """A YAML file that does not parse: reported at its line, its models skipped."""

    file: str
    line: int
    message: str
    targets: tuple[str, ...]  # the targets its text names, to say whose config it was


class ConfigProblem(Exception):
    def __init__(self, message: str, file: str, line: int) -> None:
        super().__init__(message)
        self.message, self.file, self.line = message, file, line


# -- reading one file --------------------------------------------------------------


def _value(node: yaml.Node, file: str, loader: yaml.SafeLoader) -> Value:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Value] = {}
        for key, item in node.value:
            items[str(loader.construct_object(key))] = _value(item, file, loader)
        return Value(items, file, line)
    if isinstance(node, yaml.SequenceNode):
        return Value([_value(item, file, loader) for item in node.value], file, line)
    return Value(loader.construct_object(node), file, line)


@dataclass
class YamlFile:
    path: str
    root: Value | None = None
    package_global: bool = False
    error: ConfigError | None = None


_FILES: dict[str, tuple[tuple[int, int], YamlFile]] = {}


def read_yaml(path: str, text: str | None = None) -> YamlFile:
    """``path`` parsed, with the lines of its values; a YAML error kept, never raised."""
    if text is None:
        try:
            stat = os.stat(path)
        except OSError:
            return YamlFile(path)
        key = (stat.st_mtime_ns, stat.st_size)
        known = _FILES.get(path)
        if known is not None and known[0] == key:
            return known[1]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_CONFIG_BYTES + 1)
        except (OSError, UnicodeDecodeError):
            return YamlFile(path)
        read = _parse(path, text)
        _FILES[path] = (key, read)
        return read
    return _parse(path, text)


def _parse(path: str, text: str) -> YamlFile:
    if len(text) > MAX_CONFIG_BYTES:
        return YamlFile(path)
    header = "\n".join(text.split("\n", 3)[:3])
    read = YamlFile(path, package_global="@package _global_" in header)
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        read.root = _value(node, path, loader) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        targets = tuple(re.findall(r"(?:_target_|class_path):\s*['\"]?([\w.]+)", text))
        read.error = ConfigError(path, line, f"YAML error: {problem}", targets)
    except (RecursionError, ValueError, TypeError) as exc:  # deep nesting, odd keys
        read.error = ConfigError(path, 1, f"YAML error: {type(exc).__name__}: {exc}", ())
    finally:
        loader.dispose()
    return read


# -- finding config files --------------------------------------------------------


def config_files(root: Path) -> list[str]:
    """The YAML files of a workspace that may build models (bounded, in a stable order)."""
    found: list[str] = []
    for dirpath, filenames in walk_folders(root):
        for name in filenames:
            if name.endswith((".yaml", ".yml")):
                found.append(os.path.join(dirpath, name))
                if len(found) >= MAX_CONFIG_FILES:
                    return found
    return found


def config_root(path: str, workspace: Path) -> Path:
    """The folder config names are relative to: the outermost ``configs/`` (``conf/``...)
    holding the file, else the workspace."""
    folder = Path(path).parent
    found = None
    for parent in [folder, *folder.parents]:
        if parent == workspace or not parent.is_relative_to(workspace):
            break
        if parent.name in CONFIG_ROOTS:
            found = parent
    return found or workspace


# -- composing, as Hydra does for what models need ----------------------------------


def _merge(base: Value, over: Value) -> Value:
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        merged = dict(base.value)
        for key, item in over.value.items():
            merged[key] = _merge(merged[key], item) if key in merged else item
        return Value(merged, over.file, over.line)
    return over


def _at(package: str, value: Value) -> Value:
    """``value`` placed under ``package`` ("model" -> {"model": value})."""
    for key in reversed([p for p in package.split(".") if p]):
        value = Value({key: value}, value.file, value.line)
    return value


def _defaults(root: Value) -> list[tuple[str, str | None, bool]]:
    """``defaults:`` entries as (group, option, plain): ``- model: mnist`` -> ("model",
    "mnist", False), ``- override /model: mnist`` -> ("/model", "mnist", False),
    ``- logger: null`` -> ("logger", None, False), ``- _self_`` / ``- db/mysql`` -> (the
    text, None, True)."""
    entries: list[tuple[str, str | None, bool]] = []
    items = root.value.get("defaults") if isinstance(root.value, dict) else None
    if items is None or not isinstance(items.value, list):
        return entries
    for item in items.value:
        if isinstance(item.value, str):
            entries.append((item.value, None, True))
        elif isinstance(item.value, dict):
            for key, option in item.value.items():
                group = key.split()[-1]  # "override /model", "optional local"
                choice = option.value
                if choice is None or isinstance(choice, (str, int, float)):
                    entries.append((group, None if choice is None else str(choice), False))
    return entries


class Composer:
    """Composes the configs of one config root (each file read once)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, group: str, option: str) -> str | None:
        base = self.root / group.lstrip("/")
        for suffix in (".yaml", ".yml"):
            candidate = base / f"{option}{suffix}"
            if candidate.is_file():
                return str(candidate)
        return None

    def compose(
        self,
        path: str,
        package: str,
        select: Mapping[str, str] | None = None,
        depth: int = 0,
    ) -> Value:
        """The file's content with its defaults list applied, under ``package`` (Hydra's
        default: its group; ``_global_``: the root); ``select`` chooses options of groups
        (as a command line's ``model=other`` does)."""
        read = read_yaml(path)
        if read.error is not None:
            raise ConfigProblem(read.error.message, read.error.file, read.error.line)
        own = read.root or Value({}, path, 1)
        if read.package_global:
            package = ""
        if depth > 8:
            return _at(package, own)
        body = Value(
            {k: v for k, v in own.value.items() if k != "defaults"}
            if isinstance(own.value, dict)
            else {},
            own.file,
            own.line,
        )
        entries = _defaults(own)
        if not any(group == "_self_" for group, _, _ in entries):
            entries.append(("_self_", None, True))
        chosen = dict(select or {})
        listed = {g.lstrip("/") for g, _, plain in entries if not plain}
        for group, choice in chosen.items():  # a selected group the defaults do not list
            if group not in listed:
                entries.append((group, choice, False))
        composed = Value({}, path, 1)
        here = Path(path).parent.relative_to(self.root).as_posix()
        here = "" if here == "." else here
        for group, option, plain in entries:
            if group == "_self_":
                composed = _merge(composed, _at(package, body))
                continue
            name = group.lstrip("/")
            if not group.startswith("/") and here:  # relative to this config's group
                name = f"{here}/{name}"
            if plain:  # ``- db/mysql``: a config of that group's folder
                name, _, option = name.rpartition("/")
            else:
                option = chosen.get(name, option)
            if not option:
                continue  # ``logger: null``: nothing chosen
            found = self._file(name, option)
            if found is None:
                continue  # a plugin's config (hydra/hydra_logging), an optional one
            inner = self.compose(found, name.replace("/", "."), None, depth + 1)
            composed = _merge(composed, inner)
        return composed


def _lookup(root: Value, dotted: str) -> Value | None:
    current: Value | None = root
    for key in dotted.split("."):
        if current is None or not isinstance(current.value, dict):
            return None
        current = current.value.get(key)
    return current


def resolve(value: Value, root: Value, seen: frozenset[str] = frozenset()) -> object:
    """The plain value of ``value``: ``${a.b}`` from the composed ``root`` (absolute keys,
    as OmegaConf resolves them), nested mappings and lists resolved too."""
    raw = value.value
    if isinstance(raw, dict):
        return {k: resolve(v, root, seen) for k, v in raw.items()}
    if isinstance(raw, list):
        return [resolve(v, root, seen) for v in raw]
    if raw == "???":  # OmegaConf's mandatory value: the command line's to give
        message = "a mandatory value (???) that the command line gives"
        raise ConfigProblem(message, value.file, value.line)
    if not isinstance(raw, str) or "${" not in raw:
        return raw
    whole = _INTERPOLATION.fullmatch(raw.strip())
    parts: list[str] = []
    last = 0
    for match in _INTERPOLATION.finditer(raw):
        key = match.group(1).strip()
        if ":" in key or key.startswith("."):
            raise ConfigProblem(
                f"cannot resolve ${{{key}}}: paramlens resolves ${{a.b}} keys only",
                value.file,
                value.line,
            )
        if key in seen:
            raise ConfigProblem(f"${{{key}}} refers to itself", value.file, value.line)
        found = _lookup(root, key)
        if found is None:
            raise ConfigProblem(f"${{{key}}}: no such key", value.file, value.line)
        resolved = resolve(found, root, seen | {key})
        if whole is not None:
            return resolved
        parts += [raw[last : match.start()], str(resolved)]
        last = match.end()
    return "".join([*parts, raw[last:]])


def _target_of(value: Value) -> tuple[str, Value] | None:
    if not isinstance(value.value, dict):
        return None
    for key in _TARGET_KEYS:
        found = value.value.get(key)
        if found is not None and isinstance(found.value, str):
            return found.value, found
    return None


def to_target(value: Value, root: Value) -> object:
    """A mapping with a target as a :class:`Target` (its arguments resolved), others as
    plain values."""
    found = _target_of(value)
    if found is None:
        if isinstance(value.value, dict):
            return {k: to_target(v, root) for k, v in value.value.items()}
        if isinstance(value.value, list):
            return [to_target(v, root) for v in value.value]
        return resolve(value, root)
    target, _ = found
    assert isinstance(value.value, dict)
    items = value.value
    if "class_path" in items:  # LightningCLI: init_args hold the arguments
        init = items.get("init_args")
        kwargs = init.value if init is not None and isinstance(init.value, dict) else {}
        return Target(target, (), tuple((k, to_target(v, root)) for k, v in kwargs.items()))
    args = items.get("_args_")
    listed = args.value if args is not None and isinstance(args.value, list) else []
    positional = tuple(to_target(v, root) for v in listed)
    partial = items.get("_partial_")
    kwargs_ = tuple((k, to_target(v, root)) for k, v in items.items() if k not in _HYDRA_KEYS)
    return Target(target, positional, kwargs_, bool(partial and partial.value is True))


def _targets(value: Value, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Value]]:
    """Every mapping with a target, with its key path."""
    if _target_of(value) is not None:
        yield keys, value
    if isinstance(value.value, dict):
        for key, item in value.value.items():
            yield from _targets(item, (*keys, key))
    elif isinstance(value.value, list):
        for index, item in enumerate(value.value):
            yield from _targets(item, (*keys, str(index)))


def _written_in(value: Value, file: str) -> bool:
    """Whether any part of ``value`` was written in ``file``."""
    if value.file == file:
        return True
    if isinstance(value.value, dict):
        return any(_written_in(v, file) for v in value.value.values())
    if isinstance(value.value, list):
        return any(_written_in(v, file) for v in value.value)
    return False


@dataclass
class WorkspaceConfigs:
    """Every model-building config of a workspace, and the YAML files that did not parse."""

    builds: list[ConfigBuild] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)


def _primaries(root: Path) -> list[str]:
    """Configs at the top of a config root that compose others (``train.yaml``)."""
    found = []
    for suffix in ("*.yaml", "*.yml"):
        for path in sorted(root.glob(suffix)):
            read = read_yaml(str(path))
            if read.root is not None and _defaults(read.root):
                found.append(str(path))
    return found


def read_configs(workspace: Path, files: list[str] | None = None) -> WorkspaceConfigs:
    """The models the workspace's config files build, each named by its config path."""
    out = WorkspaceConfigs()
    seen: set[tuple[str, str]] = set()
    primaries: dict[Path, list[str]] = {}
    for path in files if files is not None else config_files(workspace):
        read = read_yaml(path)
        if read.error is not None:
            out.errors.append(read.error)
            continue
        if read.root is None or not (_text_keys(read.root) & {*_TARGET_KEYS, "defaults"}):
            continue
        root = config_root(path, workspace)
        if root not in primaries:
            primaries[root] = _primaries(root)
        relative = Path(path).relative_to(root)
        group = relative.parent.as_posix()
        group = "" if group == "." else group
        composer = Composer(root)
        try:
            if path in primaries[root] or not group or not primaries[root]:
                composed = composer.compose(path, group.replace("/", "."))
                package = "" if read.package_global else group.replace("/", ".")
            else:
                primary = primaries[root][0]
                composed = composer.compose(primary, "", {group: relative.stem})
                package = "" if read.package_global else group.replace("/", ".")
        except ConfigProblem as exc:
            out.errors.append(ConfigError(exc.file, exc.line, exc.message, ()))
            continue
        except (RecursionError, OSError, ValueError) as exc:
            out.errors.append(ConfigError(path, 1, f"{type(exc).__name__}: {exc}", ()))
            continue
        label = relative.as_posix()
        for keys, value in _targets(composed):
            if not _written_in(value, path):
                continue  # another file's model, named by that file
            inner = keys[len(package.split(".")) :] if package else keys
            if package and keys[: len(package.split("."))] != tuple(package.split(".")):
                inner = keys
            inner = tuple(k for k in inner if k != "init_args")  # LightningCLI's nesting
            name = label + (f" ({'.'.join(inner)})" if inner else "")
            found = _target_of(value)
            assert found is not None
            file, line = (path, found[1].line) if found[1].file == path else (path, value.line)
            try:
                build = to_target(value, composed)
            except ConfigProblem as exc:
                failed = ConfigBuild(name, exc.file, exc.line, None, exc.message, found[0])
                out.builds.append(failed)
                continue
            assert isinstance(build, Target)
            key = (name, repr(build))
            if key not in seen:
                seen.add(key)
                out.builds.append(ConfigBuild(name, file, line, build, target=found[0]))
    return out


def _text_keys(value: Value) -> set[str]:
    keys: set[str] = set()
    if isinstance(value.value, dict):
        for key, item in value.value.items():
            keys.add(key)
            keys |= _text_keys(item)
    elif isinstance(value.value, list):
        for item in value.value:
            keys |= _text_keys(item)
    return keys
