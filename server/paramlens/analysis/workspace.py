"""The workspace: which of its files to read (bounded in files and time, a loose folder
without its subfolders), reading them (:func:`scan`), and the questions answered across
files: which classes are ``nn.Module`` subclasses (whatever the import style, through
other workspace classes and installed libraries' models), what their constructors need,
which call sites could supply it, and which workspace files each file imports (for cache
keys and for building the models that use a class). Imports the other modules of
:mod:`paramlens.analysis` except :mod:`.libraries` (given as :class:`LibraryModels`)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from .calls import call_sites, model_calls
from .model import CallSite, ClassInfo, FactoryInfo, FileInfo, InitParam, ModelCall
from .notebook import NOTEBOOK_SUFFIX, read_module_source
from .reading import module_name, read_file
from .source import SourceError, content_digest

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "env",
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        "site-packages",
    }
)


_NOT_MODULES = frozenset({"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"})


# nn.Module subclasses of installed libraries that projects build their models on, by the
# names they are imported under (the scan reads the workspace only, not site-packages)
LIBRARY_MODULES = frozenset(
    {
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "lightning.pytorch.core.module.LightningModule",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "pytorch_lightning.core.module.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin",
        "diffusers.models.ModelMixin",
        "diffusers.models.modeling_utils.ModelMixin",
    }
)


_C = TypeVar("_C", "CallSite", "ModelCall")


def walk_folders(root: Path, recursive: bool = True) -> Iterator[tuple[str, list[str]]]:
    """``root`` and its subfolders, each with its file names, in a stable order: not the
    usual environment and build folders, nor hidden ones such as ``.ipynb_checkpoints``;
    (``recursive`` False) ``root`` alone."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = (
            sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            if recursive
            else []
        )
        yield dirpath, sorted(filenames)


def iter_python_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    """The Python files of ``folder`` (notebooks too), in a stable order
    (:func:`walk_folders`)."""
    for dirpath, filenames in walk_folders(folder, recursive):
        for name in filenames:
            if name.endswith((".py", NOTEBOOK_SUFFIX)):
                yield Path(dirpath) / name


MAX_FILES = 5_000  # Python files one scan reads (config's max-files)


# the files read beside the Python ones: documentation (docs.py), model configs (configs.py)
# and JSON (json_configs.py)
OTHER_SUFFIXES = (".md", ".markdown", ".rst", ".yaml", ".yml", ".json")


def other_files_stamp(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every documentation, config and JSON file under ``root`` (the folders a scan skips
    skipped; the first :data:`MAX_FILES`), with its mtime and size, in one walk: while
    this is the same, what was read from them stands."""
    stamps: list[tuple[str, int, int]] = []
    for dirpath, filenames in walk_folders(root):
        for name in filenames:
            if name.lower().endswith(OTHER_SUFFIXES) and len(stamps) < MAX_FILES:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    stat = os.stat(path)
                    stamps.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


SCAN_SECONDS = 60.0  # wall-clock time one scan spends listing and reading them


@dataclass(frozen=True)
class ScanLimits:
    """How much of a folder one scan reads: a folder that is no project (the home folder,
    ``/``, a checkout of many projects) must not be read for minutes."""

    max_files: int = MAX_FILES
    seconds: float = SCAN_SECONDS
    recursive: bool = True  # False: a loose folder, its own files only
    clock: Callable[[], float] = time.monotonic  # tests give a deterministic one
    stop: Callable[[], bool] = lambda: False  # True once nobody waits for the scan any more


def list_python_files(root: Path, limits: ScanLimits) -> tuple[list[Path], str | None]:
    """The Python files a scan of ``root`` reads, and why the list stopped short (a message
    for the user saying how to widen it), if it did."""
    started = limits.clock()
    found: list[Path] = []
    for path in iter_python_files(root, limits.recursive):
        if limits.stop():
            return found, None
        if len(found) >= limits.max_files:
            return found, files_cut_short(root, limits.max_files)
        if limits.clock() - started > limits.seconds:
            return found, time_cut_short(root, limits.seconds, len(found))
        found.append(path)
    return found, None


def files_cut_short(root: Path, max_files: int) -> str:
    return (
        f"paramlens read the first {max_files:,} Python files under {root} and stopped; "
        "set max-files in [tool.paramlens] or add a pyproject.toml to mark the project"
    )


def time_cut_short(root: Path, seconds: float, read: int) -> str:
    return (
        f"paramlens read Python files under {root} for {seconds:g} s ({read:,} of them) and "
        "stopped; add a pyproject.toml to mark the project, or open a smaller folder"
    )


def is_torch_module(qualname: str) -> bool:
    if not qualname.startswith("torch.nn."):
        return False
    last = qualname.rpartition(".")[2]
    return last[:1].isupper() and last not in _NOT_MODULES


class LibraryModels(Protocol):
    """Which classes of installed libraries are models (see :mod:`paramlens.libraries`)."""

    def is_module(self, qualname: str) -> bool: ...


class Workspace:
    """Every Python file of a folder, read with ``ast``; answers questions across files."""

    def __init__(
        self,
        root: Path,
        files: Iterable[FileInfo],
        libraries: LibraryModels | None = None,
        cut_short: str | None = None,
    ) -> None:
        self.root = root
        self.cut_short = cut_short  # why files were left unread, for the user; None if none
        self.files: dict[str, FileInfo] = {f.path: f for f in files}
        self.by_module: dict[str, FileInfo] = {}
        for f in self.files.values():
            self.by_module.setdefault(f.module, f)
        self.libraries = libraries
        self._packages = {m.partition(".")[0] for m in self.by_module}
        self.classes: dict[str, ClassInfo] = {
            c.qualname: c for f in self.files.values() for c in f.classes.values()
        }
        self.module_classes = self._find_module_classes()
        self._direct: dict[str, frozenset[str]] = {}  # path -> files it imports directly
        self._importers: dict[str, list[str]] | None = None
        self._users: dict[str, list[str]] | None = None
        self._models_by_name: dict[str, list[ClassInfo]] | None = None

    def resolve(self, qualname: str) -> str:
        """Follow re-exports (``from .layers import Block`` in ``__init__``) to a definition."""
        for _ in range(8):
            if qualname in self.classes:
                return qualname
            module, _, name = qualname.rpartition(".")
            info = self.by_module.get(module)
            if info is None or name not in info.symbols or info.symbols[name] == qualname:
                return qualname
            qualname = info.symbols[name]
        return qualname

    def _find_module_classes(self) -> set[str]:
        """The classes with a module base: torch's modules, an installed library's models
        (:meth:`_is_library_module`), or a workspace class found to be a module, followed
        from base to subclass once (every scan of transformers' 15,000 classes)."""
        found: set[str] = set()
        subclasses: dict[str, list[str]] = {}
        for cls in self.classes.values():
            for base in cls.bases:
                if is_torch_module(base):
                    found.add(cls.qualname)
                    continue
                resolved = self.resolve(base)
                if resolved in self.classes:
                    subclasses.setdefault(resolved, []).append(cls.qualname)
                elif self._is_library_module(resolved):
                    found.add(cls.qualname)
        pending = list(found)
        while pending:
            for subclass in subclasses.get(pending.pop(), ()):
                if subclass not in found:
                    found.add(subclass)
                    pending.append(subclass)
        return found

    def _is_library_module(self, resolved: str) -> bool:
        """An installed library's model (when the workspace is not that library itself)."""
        if resolved in LIBRARY_MODULES:
            return True
        return (
            self.libraries is not None
            and resolved.partition(".")[0] not in self._packages
            and self.libraries.is_module(resolved)
        )

    def models_named(self, name: str) -> list[ClassInfo]:
        """The model classes called ``name`` in any file (an ``MLP`` of one's own and
        nanoGPT's), by path."""
        if self._models_by_name is None:
            by_name: dict[str, list[ClassInfo]] = {}
            for qualname in sorted(self.module_classes):
                cls = self.classes[qualname]
                by_name.setdefault(cls.name, []).append(cls)
            for found in by_name.values():
                found.sort(key=lambda c: (c.file, c.line))
            self._models_by_name = by_name
        return self._models_by_name.get(name, [])

    def models_in(self, path: str) -> list[ClassInfo]:
        info = self.files.get(path)
        if info is None:
            return []
        classes = [c for c in info.classes.values() if c.qualname in self.module_classes]
        return sorted(classes, key=lambda c: c.line)

    def init_params(self, cls: ClassInfo) -> tuple[InitParam, ...] | None:
        """The constructor's parameters, inherited from workspace bases if not defined."""
        owner = self.init_owner(cls)
        return owner.params if owner is not None else ()

    def init_owner(self, cls: ClassInfo) -> ClassInfo | None:
        """The workspace class whose ``__init__`` ``cls`` runs (itself, or a base)."""
        return next((c for c in self._lineage(cls) if c.params is not None), None)

    def _lineage(self, cls: ClassInfo) -> Iterator[ClassInfo]:
        """``cls``, then its first workspace base, and so on (at most 16)."""
        current: ClassInfo | None = cls
        for _ in range(16):
            if current is None:
                return
            yield current
            current = next(
                (self.classes[q] for q in map(self.resolve, current.bases) if q in self.classes),
                None,
            )

    def declared_config(self, cls: ClassInfo) -> str | None:
        """The config class ``cls`` or a workspace base declares in its body, unless a class
        below that one defines ``__init__`` (its own annotation says more): transformers'
        ``CLIPPreTrainedModel`` has ``config: CLIPConfig`` and no ``__init__``, and
        ``PreTrainedModel.__init__`` annotates ``config`` with the base ``PreTrainedConfig``."""
        for current in self._lineage(cls):
            if current.config_class:
                return current.config_class
            if current.params is not None:
                return None
        return None

    def file_of_module(self, module: str) -> FileInfo | None:
        while module:
            if module in self.by_module:
                return self.by_module[module]
            module = module.rpartition(".")[0]
        return None

    def imported_files(self, path: str) -> set[str]:
        """Workspace files ``path`` imports, directly or not (itself excluded)."""
        found: set[str] = set()
        stack = [path]
        while stack:
            for target in self._direct_imports(stack.pop()):
                if target not in found and target != path:
                    found.add(target)
                    stack.append(target)
        return found

    def importers(self, path: str) -> list[str]:
        """Workspace files that import ``path`` directly."""
        if self._importers is None:  # filled, then published: a thread may be reading it
            importers: dict[str, list[str]] = {}
            for p in sorted(self.files):
                for target in self._direct_imports(p):
                    if target != p:
                        importers.setdefault(target, []).append(p)
            self._importers = importers
        return self._importers.get(path, [])

    def users(self, path: str) -> list[str]:
        """Workspace files that import ``path`` directly or take one of its classes from a
        module that re-exports it: timm's models write ``from timm.layers import SwiGLU``,
        which imports ``timm/layers/__init__.py`` (``from .mlp import SwiGLU``), not
        ``timm/layers/mlp.py``. By path."""
        if self._users is None:  # filled, then published: a thread may be reading it
            users: dict[str, set[str]] = {}
            for p in sorted(self.files):
                for target in self._classes_taken(p):
                    users.setdefault(target, set()).add(p)
            self._users = {t: sorted(found) for t, found in users.items()}
        direct = self.importers(path)
        return sorted({*direct, *self._users.get(path, ())})

    def _classes_taken(self, path: str) -> set[str]:
        """The files whose classes ``path`` imports by name, re-exports followed; its own
        and those of files it imports directly are left to :meth:`importers`."""
        info = self.files[path]
        direct = self._direct_imports(path)
        found: set[str] = set()
        for qualname in info.symbols.values():
            cls = self.classes.get(self.resolve(qualname))
            if cls is not None and cls.file != path and cls.file not in direct:
                found.add(cls.file)
        return found

    def _direct_imports(self, path: str) -> frozenset[str]:
        known = self._direct.get(path)
        if known is None:
            info = self.files.get(path)
            modules = info.imports if info is not None else ()
            known = frozenset(t.path for m in modules if (t := self.file_of_module(m)) is not None)
            self._direct[path] = known
        return known

    def call_sites(self, qualname: str) -> list[CallSite]:
        """Literal-argument calls of a class anywhere in the workspace (parsed on demand)."""
        return self._calls_of(qualname, call_sites)

    def model_calls(self, qualname: str) -> list[ModelCall]:
        """Calls of a model with literal tensors anywhere in the workspace (on demand)."""
        return self._calls_of(qualname, model_calls)

    def _calls_of(self, qualname: str, find: Callable[[FileInfo], list[_C]]) -> list[_C]:
        module, _, name = qualname.rpartition(".")  # only files that mention it are parsed,
        own = self.by_module.get(module)  # by its name or by another its module gives it
        names = {name} | {n for n, q in (own.symbols if own else {}).items() if q == qualname}
        return [
            call
            for f in self.files.values()
            if not names.isdisjoint(f.words())
            for call in find(f)
            if self.resolve(call.target) == qualname
        ]

    def factories_in(self, path: str) -> list[FactoryInfo]:
        """Functions of ``path`` that build a model with no arguments (resnet18, vit_base...)."""
        info = self.files.get(path)
        if info is None:
            return []
        return [
            f
            for f in info.factories.values()
            if f.registered
            or any(self.resolve(r) in self.module_classes or is_torch_module(r) for r in f.returns)
        ]


ScanCache = dict[str, tuple[object, str, FileInfo]]  # path -> (stat or text key, text, info)


def scan(
    root: Path,
    texts: Mapping[str, str] | None = None,
    cache: ScanCache | None = None,
    libraries: LibraryModels | None = None,
    limits: ScanLimits | None = None,
    include: Iterable[str] = (),
    previous: Workspace | None = None,
) -> Workspace:
    """Read the Python files under ``root``; ``texts`` overrides the disk (unsaved buffers).

    With a ``cache``, a file whose size and mtime did not change is not read again. With
    ``libraries``, classes built on an installed library's models are models too. Within
    ``limits`` (files, time): the open buffers and the files of ``include`` (the one asked
    about) first, whatever the limits; the workspace says if the rest was cut short.
    ``previous``, a workspace read before: returned again if every file read the same.
    """
    texts = texts or {}
    cache = {} if cache is None else cache
    limits = limits or ScanLimits()
    started = limits.clock()
    infos: list[FileInfo] = []
    listed, cut_short = list_python_files(root, limits)

    def inside(path: str) -> bool:
        return Path(path).is_relative_to(root) if limits.recursive else Path(path).parent == root

    first = sorted({p for p in [*texts, *include] if inside(p)})
    rest = sorted({str(p) for p in listed} - set(first))
    for number, path in enumerate([*first, *rest]):
        if number >= len(first):
            if limits.stop():
                break
            if limits.clock() - started > limits.seconds:
                cut_short = cut_short or time_cut_short(root, limits.seconds, len(infos))
                break
        text = texts.get(path)
        key: object
        if text is None:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            key = (stat.st_mtime_ns, stat.st_size)
            if path in cache and cache[path][0] == key:
                infos.append(cache[path][2])
                continue
            try:
                text = read_module_source(Path(path))
            except OSError:
                continue
            except SourceError as exc:  # reported on the file, never skipped silently
                info = FileInfo(path, *_module_and_root(Path(path)))
                info.syntax_error = (exc.message, exc.line)
                cache[path] = (key, "", info)
                infos.append(info)
                continue
        else:
            key = text
            known = cache.get(path)
            # an unsaved buffer equal to what was read before (the persisted scan keeps the
            # digest, not the text: a file opened unchanged is not parsed again)
            if known is not None and (known[1] == text or known[2].digest == content_digest(text)):
                infos.append(known[2])
                continue
        info = _read_file_isolated(Path(path), text)
        cache[path] = (key, text, info)
        infos.append(info)
    infos.sort(key=lambda info: info.path)  # the order they were always read in
    if _same_reading(previous, root, infos, libraries, cut_short):
        assert previous is not None
        return previous
    return Workspace(root, infos, libraries, cut_short)


def _same_reading(
    previous: Workspace | None,
    root: Path,
    infos: list[FileInfo],
    libraries: LibraryModels | None,
    cut_short: str | None,
) -> bool:
    """``previous`` holds exactly these readings: its answers stand, those it worked out
    on demand included (importers, users, models by name). An edit's scans (at the edit,
    then each open file's analysis) built the same 2,900-file transformers workspace and
    its lookups again, 0.1 s of CPU each, while the edit's builds needed the cores."""
    return (
        previous is not None
        and previous.root == root
        and previous.libraries is libraries
        and previous.cut_short == cut_short
        and len(previous.files) == len(infos)
        and all(previous.files.get(info.path) is info for info in infos)
    )


def _module_and_root(path: Path) -> tuple[str, str]:
    module, root = module_name(path)
    return module, str(root)


def _read_file_isolated(path: Path, text: str) -> FileInfo:
    """:func:`read_file`, with whatever goes wrong confined to this one file."""
    try:
        return read_file(path, text)
    except Exception as exc:  # a bug of ours must not take the other files' lenses
        info = FileInfo(str(path), *_module_and_root(path), source=text)
        info.syntax_error = (f"paramlens could not read this file: {type(exc).__name__}: {exc}", 1)
        return info
