"""The engine both front ends share: from a file to measured models and per-line figures.

``Engine.analyze(path)`` reads the workspace (:mod:`paramlens.analysis`), chooses how to
construct each model class (:mod:`.constructors`), sends one job per file to the worker in
the user's interpreter (:mod:`.worker_client`) and returns a :class:`FileReport` (its
per-line figures: :mod:`.lines`). A class
that cannot be built on its own still gets per-line figures through the models
of files that import it, which are built too. Results are cached by the content
of the file and of every workspace file it imports, so asking again for
unchanged files does no work (:mod:`.cache`).

Imports :mod:`paramlens.analysis`, :mod:`paramlens.config`, the worker's protocol and
the other modules of this package; nothing of the front ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import subprocess
import threading
import weakref
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, config
from ..analysis.libraries import Libraries
from ..analysis.notebook import is_notebook
from ..analysis.reading import module_name
from ..analysis.source import SourceError, read_source
from ..analysis.workspace import (
    ScanCache,
    ScanLimits,
    Workspace,
    list_python_files,
    other_files_stamp,
    scan,
)
from ..config import Settings
from ..worker import protocol
from ..worker.protocol import BuildJob, ErrorInfo, JobResult, LayerEntry, ModelResult
from .cache import ResultCache, ScanStore, dump, load
from .constructors import (
    SettingsProblem,
    constructor,
    factory_spec,
    more_configurations,
    settings_problems,
    with_input,
)
from .lines import carriers, held_instances, lines_of, with_instances, without_figures
from .real_args import (
    config_failures,
    config_specs,
    read_again,
    without_failed_configurations,
)
from .spawn import library_paths, worker_python
from .worker_client import State, WorkerClient


@dataclass(frozen=True)
class FileReport:
    """What paramlens knows about one file: its models and the figures of its lines."""

    path: str
    models: tuple[ModelResult, ...]
    lines: Mapping[int, LayerEntry]  # 1-based line -> what that line creates
    isolation: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    syntax_error: ErrorInfo | None = None
    complete: bool = True  # False if a timeout or a crash cut a result short: not saved
    shapes_pending: bool = False  # a first look: parameters, forward()'s shapes to follow
    cut_short: str | None = None  # the workspace scan stopped early: why, and how to widen it
    # settings not applied as written (a bare class name several classes answer to)
    settings_problems: tuple[SettingsProblem, ...] = ()


class _InFlight:
    """Jobs being built, by key: a second request for one joins it instead of building it
    again (a folder summary asks for a file's job itself and again as another file's
    dependent; an edit's analysis joins the build of its class started during the
    debounce). A joiner of a staged job gets the classes staged so far, then the rest as
    they come. A job is cancelled when every request for it has been."""

    @dataclass
    class _Job:
        future: asyncio.Future[JobResult | None] = dataclasses.field(init=False)
        waiting: int = 0
        staged: list[ModelResult] = dataclasses.field(default_factory=list)
        listeners: list[Callable[[ModelResult], None]] = dataclasses.field(default_factory=list)

        def stage(self, model: ModelResult) -> None:
            self.staged.append(model)
            for listener in list(self.listeners):
                listener(model)

    def __init__(self) -> None:
        self._jobs: dict[str, _InFlight._Job] = {}

    def waiting(self) -> int:
        """Requests waiting for a job, all jobs together."""
        return sum(job.waiting for job in self._jobs.values())

    async def join(
        self,
        key: str,
        start: Callable[[Callable[[ModelResult], None]], Awaitable[JobResult | None]],
        on_staged: Callable[[ModelResult], None] | None = None,
    ) -> JobResult | None:
        """``start(stage)`` builds the job, handing each staged class to ``stage``."""
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _InFlight._Job()
            job.future = asyncio.ensure_future(start(job.stage))
        if on_staged is not None:
            for model in job.staged:  # what came before this request joined
                on_staged(model)
            job.listeners.append(on_staged)
        job.waiting += 1
        try:
            return await asyncio.shield(job.future)
        finally:
            job.waiting -= 1
            if on_staged is not None:
                job.listeners.remove(on_staged)
            if not job.waiting:
                del self._jobs[key]
                job.future.cancel()  # a no-op once it is done


@dataclass(frozen=True)
class _Ahead:
    """An edit's text to read ahead of its analysis (:meth:`Engine.edited`)."""

    root: Path
    texts: dict[str, str]
    python: str
    limits: ScanLimits
    settings: Settings  # the edited file's
    focus: tuple[tuple[int, int], ...]
    build_at: float  # the event loop's time: its focused classes are not built before
    # the open files built before that import the edited one: each one's settings, focus
    users: tuple[tuple[str, Settings, tuple[tuple[int, int], ...]], ...] = ()


def _ignore(model: ModelResult) -> None:
    """A staged class nobody shows yet (an analysis joining its job shows it)."""


def training_for(settings: Settings) -> protocol.Training:
    """How the worker simulates a training step under ``settings``: the card named by
    ``gpu`` as its bytes and cuBLAS workspace (:func:`paramlens.config.gpu_card`). A card
    the settings could not read (they report it) is no card: nothing to fit."""
    try:
        card = config.gpu_card(settings.gpu)
    except ValueError:
        card = None
    return protocol.Training(
        optimizer=settings.optimizer,
        precision=settings.precision,
        batch=settings.batch,
        attention=settings.attention,
        checkpoint=settings.checkpoint,
        loss=settings.loss,
        gpu=settings.gpu if card else "",
        gpu_bytes=card.memory if card else 0,
        workspace_bytes=card.workspace if card else 0,
        gpus=settings.gpus,
        strategy=settings.strategy if settings.gpus > 1 else "",
        wrap=settings.wrap,
    )


def import_roots(module_root: str, workspace_root: Path) -> tuple[str, ...]:
    """A job's ``sys_path``: the folder its module imports from, then the workspace's."""
    return tuple(dict.fromkeys([module_root, str(workspace_root)]))


def job_workspace(module: str, module_root: str, root: Path) -> str:
    """What the worker treats as the user's code: the workspace, or, for a file inside a
    package that reaches above it (a loose file of timm/models/, no project marker), that
    whole package: its optional imports get placeholders there as in a project."""
    package = Path(module_root) / module.partition(".")[0]
    return str(package if "." in module and root.is_relative_to(package) else root)


def prepare_job(path: Path, root: Path, settings: Settings) -> BuildJob:
    """A job with no class, for the worker to get ready for those of ``path``: what
    :meth:`Engine.job_for` will send, as far as it can be known before the scan."""
    module, module_root = module_name(path)
    return BuildJob(
        file=str(path),
        module=module,
        sys_path=import_roots(str(module_root), root),
        workspace=job_workspace(module, str(module_root), root),
        classes=(),
        memory_mb=settings.memory_mb,
        device=settings.device,
    )


class Engine:
    def __init__(
        self,
        settings_for: Callable[[Path], Settings],
        log: Callable[[str], None] = lambda _: None,
        cache_folder: Path | None = None,
        eager_worker: bool = False,
        line_shapes: bool = True,
    ) -> None:
        self.settings_for = settings_for
        self.log = log
        self.workers: dict[str, WorkerClient] = {}
        self.cache = ResultCache(folder=cache_folder)
        self._scan_cache: ScanCache = {}
        self._scan_locks: dict[Path, threading.Lock] = {}
        # the last workspace read of each project root, given again by a scan that reads
        # every Python file the same, with its lookups; and the stamp of its other files
        # (configs, docs: :func:`other_files_stamp`), whose readings stand while it does
        self._last_scan: dict[Path, tuple[Workspace, Hashable]] = {}
        # jobs made from a workspace (an edit's reading makes those its analyses ask for)
        self._jobs_made: weakref.WeakKeyDictionary[Workspace, dict[Hashable, BuildJob | None]]
        self._jobs_made = weakref.WeakKeyDictionary()
        self.libraries: dict[str, Libraries] = {}  # by interpreter
        self._scan_store = ScanStore(cache_folder) if cache_folder is not None else None
        self._loaded_roots: dict[Path, bool] = {}  # root -> loose
        self.jobs_run = 0  # jobs actually sent to a worker (cache misses)
        self._in_flight = _InFlight()
        # one job of a workspace at a time (it fills the workspace's lazy caches), by root:
        # a big workspace's first job must not hold up another workspace's
        self._job_locks: dict[Path, threading.Lock] = {}
        # The language server wants its worker anyway: start it while the workspace is read.
        # The CLI does not: a cached answer must not cost a torch import.
        self.eager_worker = eager_worker
        self._starting: list[asyncio.Future[object]] = []
        # whether forward()'s lines are traced for their shapes: not for output that shows
        # none (the summary table), where tracing would double forward()'s time
        self.line_shapes = line_shapes
        self._built: set[str] = set()  # files built in this session: edits come focused
        self._last_ms: dict[str, dict[str, float]] = {}  # their classes' last build, by name
        self._read: dict[str, Workspace] = {}  # the reading each file was last analysed in
        # reading ahead during an edit's debounce (:meth:`edited`), by file: the task, and
        # the newest text's arguments it takes next
        self._ahead: dict[str, asyncio.Future[None]] = {}
        self._ahead_next: dict[str, _Ahead] = {}
        # the jobs an edit's analyses will ask for first, built during its debounce
        # (:meth:`_build_early`)
        self._early: list[asyncio.Future[JobResult | None]] = []
        # the builds of files with models of their own under way (:meth:`report`)
        self._own_builds: set[asyncio.Future[None]] = set()

    def adopt_worker(self, python: str, process: subprocess.Popen[bytes]) -> None:
        """The worker for ``python``, started already (by the command line, first thing)."""
        self.workers[python] = WorkerClient(python, self.log, started=process)

    def worker_for(self, python: str) -> WorkerClient:
        if python not in self.workers:
            self.workers[python] = WorkerClient(python, self.log)
        return self.workers[python]

    def python_for(self, root: Path, settings: Settings) -> str:
        return worker_python(root, settings.python)

    def scan(
        self,
        root: Path,
        texts: Mapping[str, str] | None = None,
        python: str | None = None,
        *,
        loose: bool = False,
        limits: ScanLimits | None = None,
        include: Sequence[str] = (),
    ) -> Workspace:
        """The workspace at ``root`` (a ``loose`` one: its own files only); ``python``, the
        interpreter whose installed libraries count, and ``limits``, how much to read (by
        default the root's settings: give them when not on the event loop, as reading the
        settings may warn the user)."""
        # one scan of a root at a time: two files opened together each read the whole of a
        # cold workspace otherwise, and the cache kept the second's reading of each file,
        # not the one whose call sites the first file's job had parsed (transformers: the
        # first edit after opening parsed them all again, 2.5 s before its jobs left)
        with self._scan_locks.setdefault(root, threading.Lock()):
            if self._scan_store is not None and root not in self._loaded_roots:
                self._loaded_roots[root] = loose
                for path, entry in self._scan_store.load(root).items():
                    self._scan_cache.setdefault(path, entry)
            if python is None or limits is None:
                settings = self.settings_for(root)
                python = python or self.python_for(root, settings)
                limits = limits or self.scan_limits(root, settings, loose)
            if python not in self.libraries:  # asked only if a base is not the workspace's
                self.libraries[python] = Libraries(lambda: library_paths(python, self.log))
            libraries = self.libraries[python]
            if not limits.recursive:  # a loose folder ("/", the home folder): read anew
                return scan(root, texts, self._scan_cache, libraries, limits, include)
            previous, stamp = self._last_scan.get(root, (None, ()))
            workspace = scan(root, texts, self._scan_cache, libraries, limits, include, previous)
            now = other_files_stamp(root)
            if workspace is previous and now != stamp:  # a README, a YAML changed
                read_again(workspace)
                self._jobs_made.pop(workspace, None)
            self._last_scan[root] = (workspace, now)
            return workspace

    @staticmethod
    def scan_limits(root: Path, settings: Settings, loose: bool) -> ScanLimits:
        return ScanLimits(max_files=settings.max_files, recursive=not loose)

    def save_scan(self) -> None:
        """Persist what was read and parsed (a no-op when nothing new was)."""
        if self._scan_store is not None:
            for root, loose in list(self._loaded_roots.items()):
                self._scan_store.save(root, self._scan_cache, loose)

    def job_for(
        self,
        path: str,
        workspace: Workspace,
        settings: Settings,
        texts: Mapping[str, str],
        detail: bool = False,
        part: str = "all",
        names: Names = None,
        staged: bool = False,
    ) -> BuildJob | None:
        """The job for ``path``: its classes, factories and configurations, or only
        ``part`` of them: ``"classes"`` (with their config files), ``"factories"``,
        ``"configs"`` (the other ways the project builds its classes: documentation
        examples, calls; built after the rest in the editor); of those, only ``names``
        when given: a set, or ``("except", set)``; ``staged``: each class's result sent as
        it comes. Made once per workspace and arguments: an edit's reading makes the jobs
        its analyses ask for again. (The workspace holds the open files' texts already;
        which of them are unsaved is the disk's to say.)"""
        unsaved = tuple(p for p, text in sorted(texts.items()) if _unsaved(p, text))
        named: Hashable = None
        if isinstance(names, set):
            named = frozenset(names)
        elif isinstance(names, tuple):
            named = (names[0], frozenset(names[1]))
        key = (path, repr(settings), unsaved, detail, part, named, staged)
        made = self._jobs_made.setdefault(workspace, {})
        if key not in made:
            made[key] = self._make_job(
                path, workspace, settings, texts, detail, part, names, staged
            )
        return made[key]

    def _make_job(
        self,
        path: str,
        workspace: Workspace,
        settings: Settings,
        texts: Mapping[str, str],
        detail: bool,
        part: str,
        names: Names,
        staged: bool,
    ) -> BuildJob | None:
        classes = workspace.models_in(path) if part in ("all", "classes") else []
        factories = workspace.factories_in(path) if part in ("all", "factories") else []
        if names is not None:
            classes = [c for c in classes if _named(c.name, names)]
            factories = [f for f in factories if _named(f.name, names)]
        built = [
            with_input(constructor(c, workspace, settings), c, workspace, settings) for c in classes
        ]
        specs = [
            *built,
            *(factory_spec(f) for f in factories),
            *(config_specs(path, workspace) if part in ("all", "classes") else ()),
        ]
        if part in ("all", "configs"):  # the project's other ways to build its classes
            own = workspace.models_in(path)
            if len(built) != len(own):  # what the classes are built from is not built again
                built = [constructor(c, workspace, settings) for c in own]
            specs += more_configurations(
                path, workspace, {c.qualname: spec for c, spec in zip(own, built)}
            )
        if not specs:
            return None
        info = workspace.files[path]
        imported = [path, *sorted(workspace.imported_files(path))]
        return BuildJob(
            file=path,
            module=info.module,
            sys_path=import_roots(info.root, workspace.root),
            workspace=job_workspace(info.module, info.root, workspace.root),
            classes=tuple(specs),
            overrides=tuple(
                (p, text) for p in imported if (text := _override(p, texts, workspace)) is not None
            ),
            timeout_s=settings.timeout,
            memory_mb=settings.memory_mb,
            device=settings.device,
            detail=detail,
            shapes=settings.shapes,
            training=training_for(settings),
            dims=tuple(sorted(settings.dims.items())),
            line_shapes=self.line_shapes,
            staged=staged,
        )

    def cache_key(self, job: BuildJob, workspace: Workspace, python: str) -> str:
        """Content of the file and of every workspace file it imports (as the scan read them:
        unsaved buffers included), the job's settings, and the interpreter."""
        digest = hashlib.sha256()
        digest.update(f"{__version__}\0{_worker_code_stamp()}\0{python}\0".encode())
        job_without_texts = protocol.to_json(job)
        job_without_texts.pop("overrides")
        digest.update(json.dumps(job_without_texts, sort_keys=True).encode())
        for path in [job.file, *sorted(workspace.imported_files(job.file))]:
            info = workspace.files.get(path)
            digest.update(f"\0{path}\0{info.digest if info else ''}".encode())
        digest.update(_mtime_ns(python).encode())
        return digest.hexdigest()[:32]

    def requests_waiting(self) -> int:
        """Build requests waiting for a job in the worker (those sharing a job count each)."""
        return self._in_flight.waiting()

    async def build(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool = False,
        part: str = "all",
        shapes: bool = True,
        names: Names = None,
        on_staged: Callable[[ModelResult], None] | None = None,
    ) -> JobResult | None:
        """The result of ``path``'s job (``part`` of it, ``names`` of that; without
        forward() unless ``shapes``), from the cache if nothing it depends on changed.
        ``on_staged`` takes each class's result as it comes (:meth:`WorkerClient.build`)."""
        key, job, python = await self._keyed_job(
            path, workspace, texts, detail, part, shapes, names, on_staged is not None
        )
        if job is None:
            return None
        return await self._build_job(key, job, python, on_staged)

    async def _build_job(
        self,
        key: str,
        job: BuildJob,
        python: str,
        on_staged: Callable[[ModelResult], None] | None = None,
    ) -> JobResult | None:
        """:meth:`build`, its job made: the cache's result, or the worker's (joined, if the
        same job is being built)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached

        async def run(stage: Callable[[ModelResult], None]) -> JobResult | None:
            self.jobs_run += 1
            result = await self.worker_for(python).build(job, stage if job.staged else None)
            if _cacheable(result):
                self.cache.put(key, result)
            return result

        return await self._in_flight.join(key, run, on_staged)

    async def _keyed_job(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool,
        part: str,
        shapes: bool = True,
        names: Names = None,
        staged: bool = False,
    ) -> tuple[str, BuildJob | None, str]:
        """The job and its cache key, computed in a thread: the first job of a file in a big
        package looks for call sites across it (1.6 s in timm), which would hold up the
        editor's requests and the worker's messages. One job at a time: the workspace fills
        its lazy caches as it goes."""
        settings = self.settings_for(Path(path))  # here: it may warn the user
        if not shapes:
            settings = dataclasses.replace(settings, shapes=False)
        python = self.python_for(workspace.root, settings)

        lock = self._job_locks.setdefault(workspace.root, threading.Lock())

        def keyed() -> tuple[str, BuildJob | None]:
            with lock:
                job = self.job_for(path, workspace, settings, texts, detail, part, names, staged)
                return (self.cache_key(job, workspace, python) if job else ""), job

        key, job = await asyncio.to_thread(keyed)
        return key, job, python

    async def analyze(
        self,
        path: str,
        root: Path,
        texts: Mapping[str, str] | None = None,
        on_partial: Callable[[FileReport], None] | None = None,
        loose: bool = False,
        focus: Sequence[tuple[int, int]] = (),
    ) -> FileReport:
        """Read the workspace (a ``loose`` root: its own files only), then build the models
        of ``path`` and of the files using them; the classes at the ``focus`` line ranges
        first (:meth:`report`)."""
        texts = dict(texts or {})
        if self.eager_worker:
            self.start_worker(path, root)
        # until its own models are built (or it is found to have none), a file without any
        # waits for it (:meth:`_own_builds_done`): an edit's analyses start together
        own_built = self._own_build_started()
        try:
            await self._read_ahead_done(path)
            workspace = await self.read_workspace(root, texts, loose=loose, include=(path,))
            self._read[path] = workspace
            report = await self.report(
                path, workspace, texts, on_partial=on_partial, focus=focus, own_built=own_built
            )
        finally:
            self._own_build_done(own_built)
        self.save_scan()
        return report

    def _own_build_started(self) -> asyncio.Future[None]:
        own_built = asyncio.get_running_loop().create_future()
        self._own_builds.add(own_built)
        return own_built

    def _own_build_done(self, own_built: asyncio.Future[None]) -> None:
        self._own_builds.discard(own_built)
        if not own_built.done():
            own_built.set_result(None)

    async def read_workspace(
        self,
        root: Path,
        texts: Mapping[str, str] | None = None,
        *,
        loose: bool = False,
        include: Sequence[str] = (),
    ) -> Workspace:
        """The workspace, read in a thread: a cold scan of a large one takes a while, and
        the event loop stays free meanwhile. Cancelled (its document closed, or edited
        again), the scan stops reading files."""
        settings = self.settings_for(root)
        python = self.python_for(root, settings)
        cancelled = threading.Event()
        limits = dataclasses.replace(self.scan_limits(root, settings, loose), stop=cancelled.is_set)
        scan = functools.partial(self.scan, loose=loose, limits=limits, include=include)
        try:
            return await asyncio.to_thread(scan, root, texts, python)
        finally:
            cancelled.set()  # a no-op once it is done

    async def report(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str] | None = None,
        detail: bool = False,
        on_partial: Callable[[FileReport], None] | None = None,
        focus: Sequence[tuple[int, int]] = (),
        own_built: asyncio.Future[None] | None = None,
    ) -> FileReport:
        """Build the models of ``path`` (and of the files that use them) in ``workspace``.

        With ``detail``, every factory's layer tree is kept (a file of 100 factories
        otherwise keeps one per kind of block: what lenses need). With ``on_partial`` (a
        file opened in the editor), what is quick comes first: its classes' parameters
        without forward(), then their shapes, then its factories (timm's
        vision_transformer.py: 6 classes in a fraction of a second, then 163 factories).

        With ``focus`` (line ranges of the file's current text: where the user edits or
        looks) and ``on_partial``, a file built before is rebuilt in that order: the
        classes at those lines, and the file's classes that use them, are built and shown
        first; then its other classes; its factories last."""
        texts = texts or {}
        info = workspace.files.get(path)
        if info is not None and info.syntax_error is not None:
            message, line = info.syntax_error
            error = ErrorInfo(message, path, line, "syntax")
            return FileReport(path, (), {}, syntax_error=error, cut_short=workspace.cut_short)
        qualnames = {c.name: c.qualname for c in workspace.models_in(path)}

        def show(result: JobResult | None, shapes_pending: bool = False) -> None:
            if on_partial is not None and result is not None:
                report = self._file_report(path, workspace, result, [result], qualnames)
                on_partial(dataclasses.replace(report, shapes_pending=shapes_pending))

        own_built = own_built or self._own_build_started()
        try:
            editor = on_partial is not None
            own = await self._own(path, workspace, texts, detail, editor, focus, show)
        finally:
            self._own_build_done(own_built)
        results = [own] if own else []
        failed = False
        missing = without_figures(own.models if own else (), qualnames)
        if missing or not own:
            if not qualnames:
                await self._own_builds_done()
            dependents = dependents_to_build([path], workspace, missing, own is not None, texts)
            built_deps, failed = await self._build_each(dependents, workspace, texts)
            results += built_deps
            # a block only other blocks build (SABlock in TransformerBlock, which only the
            # models of vit.py build): the users of the blocks that hold it, one level up
            further = carriers(missing, qualnames, built_deps)
            if further:
                names = set().union(*further.values())
                done = {path, *dependents}
                above = dependents_to_build(list(further), workspace, names, True, skip=done)
                built_above, failed_above = await self._build_each(above, workspace, texts)
                results += built_above
                failed = failed or failed_above
        report = self._file_report(path, workspace, own, results, qualnames)
        complete = not failed and all(_cacheable(r) for r in results)
        if own is not None:
            self._built.add(path)
            self._last_ms[path] = {m.name: m.build_ms for m in own.models if m.kind == "class"}
        problems = settings_problems(Path(path), self.settings_for(Path(path)), workspace)
        return dataclasses.replace(report, complete=complete, settings_problems=problems)

    async def _build_each(
        self, paths: Sequence[str], workspace: Workspace, texts: Mapping[str, str]
    ) -> tuple[list[JobResult], bool]:
        """Build ``paths`` one at a time, as the file's own jobs: a file whose users hang
        until their timeout holds one build slot, not all of them (another file's job waits
        then). Their results, and whether any build failed."""
        results: list[JobResult] = []
        failed = False
        for dependent in paths:
            try:
                built = await self.build(dependent, workspace, texts)
            except Exception:
                failed = True
                continue
            results += [built] if built is not None else []
        return results, failed

    async def _own_builds_done(self) -> None:
        """Wait until no file with models of its own is being built: a file without any
        (``configuration_llama.py``) takes its line figures from its importers' builds,
        the open one's if it is open, and finds that one cached then instead of racing it
        (an edit of ``LlamaConfig`` built three other importers beside ``modeling_llama.py``
        on the two cores)."""
        while self._own_builds:
            await asyncio.wait(set(self._own_builds))

    async def _own(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool,
        editor: bool,
        focus: Sequence[tuple[int, int]],
        show: Callable[..., None],
    ) -> JobResult | None:
        """The build of ``path``'s own models (:meth:`report`); ``editor``: shown as they
        come (``show``), the classes at ``focus`` first."""
        # a first look in the editor at a file not built before: what is quick comes first
        whole_key, whole_job = "", None
        if editor and workspace.models_in(path):
            whole_key, whole_job, _ = await self._keyed_job(path, workspace, texts, detail, "all")
        first_look = whole_job is not None and self.cache.get(whole_key) is None
        focused = focus_classes(path, workspace, texts, focus) if editor else set()
        if first_look and self._has_built(path, workspace):
            # built before (edited, or a file it imports was): its figures stay, stale,
            # until each class's new ones come; no parameters-only pass first
            own = await self._focused_first(path, workspace, texts, detail, focused, show)
            if own is not None and _cacheable(own):
                self.cache.put(whole_key, own)
        else:
            quick_first = whole_job is not None and whole_job.shapes
            own = await self._whole(
                path, workspace, texts, detail, show, first_look, whole_key, quick_first
            )
        return own

    async def _whole(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool,
        show: Callable[..., None],
        first_look: bool,
        whole_key: str,
        quick_first: bool,
    ) -> JobResult | None:
        """The file's job; on a first look in the editor, what is quick first."""
        if first_look and quick_first:
            # forward() takes longer than building: parameters first
            quick = await self.build(path, workspace, texts, detail, "classes", shapes=False)
            show(quick, shapes_pending=True)
        if first_look and await self._has_later(path, workspace, texts, detail):
            first = await self.build(path, workspace, texts, detail, "classes")
            show(first)
            rest = await self._later(path, workspace, texts, detail)
            own = _merged(first, rest)
            if own is not None and first is not None and rest is not None and _cacheable(own):
                self.cache.put(whole_key, own)  # what the CLI, or the next session, asks for
            return own
        return await self.build(path, workspace, texts, detail)

    def edited(
        self,
        path: str,
        root: Path,
        texts: Mapping[str, str],
        loose: bool = False,
        focus: Sequence[tuple[int, int]] = (),
        others: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        """An edit of ``path`` (``texts``: the open documents' texts; ``focus``: the line
        ranges where the user edits, as for :meth:`report`; ``others``: the other open
        documents' focus) whose analysis waits for the editor's debounce: what that
        analysis, and those of the open files that import ``path``, will do first is
        started now, in the background. The worker runs the edited module again
        (:meth:`_prepare_edit`), and the workspace is read again with the new text, its
        jobs' call sites included (:meth:`_read_ahead`: 0.2-0.4 s in timm's
        vision_transformer.py); then the classes at ``focus`` are built, and those of the
        importers (:meth:`_build_early`). A newer edit stops those builds."""
        # the open files built before that import it (one look per edit: it walks imports)
        importers = [u for u in texts if u != path and u in self._built and self.imports(u, path)]
        self._prepare_edit(path, dict(texts), importers)
        for early in self._early:
            early.cancel()  # an older text's: the worker stops it
        self._early.clear()
        where = others or {}
        users = tuple((u, self.settings_for(Path(u)), tuple(where.get(u, ()))) for u in importers)
        if path in self._built or users:
            settings = self.settings_for(root)  # here, on the loop: it may warn the user
            limits = self.scan_limits(root, settings, loose)
            python = self.python_for(root, settings)
            file_settings = self.settings_for(Path(path))
            # built once the typing pauses: half the debounce after the edit, or the reading
            build_at = asyncio.get_running_loop().time() + file_settings.debounce_ms / 2000
            ahead = _Ahead(
                root, dict(texts), python, limits, file_settings, tuple(focus), build_at, users
            )
            self._ahead_next[path] = ahead
            running = self._ahead.get(path)
            if running is None or running.done():
                self._ahead[path] = asyncio.ensure_future(self._read_ahead(path))

    async def _read_ahead(self, path: str) -> None:
        """Read the workspace with the newest text of ``path``; make the jobs of its classes
        at the edit, and of its open importers' classes, and build them
        (:meth:`_build_early`), then make the file's whole job (its call sites, parsed once
        per text, are kept with the text's reading): the analyses after the debounce find
        them ready. One at a time per file, the newest text next (an older one is not
        built, nor its whole job made); a failure is left for the analysis to meet."""
        while path in self._ahead_next:
            ahead = self._ahead_next.pop(path)
            try:
                workspace, early = await asyncio.to_thread(self._read_for_job, path, ahead)
            except Exception:
                continue
            if path in self._ahead_next:
                continue  # typed on meanwhile
            for key, job, python in early:
                self._build_early(ahead.build_at, key, job, python)
            if path in self._built:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._whole_job, path, workspace, ahead)

    def _read_for_job(
        self, path: str, ahead: _Ahead
    ) -> tuple[Workspace, list[tuple[str, BuildJob, str]]]:
        """The workspace read with ``ahead``'s texts, and the jobs the analyses will build
        first (each one's key, the job, the interpreter): the classes at the edit
        (:func:`focus_classes`), then the open importers' classes at their focus, or all
        of them, staged, as :meth:`_focused_first` asks for them."""
        workspace = self.scan(
            ahead.root, ahead.texts, ahead.python, limits=ahead.limits, include=(path,)
        )
        jobs = []
        focused = focus_classes(path, workspace, ahead.texts, ahead.focus)
        if focused and path in self._built:
            jobs += self._staged_jobs(path, workspace, ahead.texts, ahead.settings, focused)
        for user, settings, focus in ahead.users:
            if user in workspace.files:
                focused = focus_classes(user, workspace, ahead.texts, focus)
                jobs += self._staged_jobs(user, workspace, ahead.texts, settings, focused)
        return workspace, jobs

    def _staged_jobs(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        settings: Settings,
        focused: set[str],
    ) -> list[tuple[str, BuildJob, str]]:
        """The jobs of :meth:`_classes_side_by_side`, with their keys and interpreter."""
        python = self.python_for(workspace.root, settings)
        found = []
        with self._job_locks.setdefault(workspace.root, threading.Lock()):
            for share in self._shares(path, workspace, focused):
                job = self.job_for(path, workspace, settings, texts, False, "classes", share, True)
                if job is not None:
                    found.append((self.cache_key(job, workspace, python), job, python))
        return found

    def _whole_job(self, path: str, workspace: Workspace, ahead: _Ahead) -> None:
        with self._job_locks.setdefault(workspace.root, threading.Lock()):
            self.job_for(path, workspace, ahead.settings, ahead.texts)

    def _build_early(self, build_at: float, key: str, job: BuildJob, python: str) -> None:
        """Build a job an edit's analysis will ask for first during its debounce, once the
        typing pauses (at ``build_at``), its classes staged as they come
        (:meth:`_focused_first`). The analysis after the debounce joins it (the same job:
        the same key, the same text), or finds its result in the cache. A result is only
        ever shown through the job of the text it was built from: a newer text's analysis
        asks for another job, and the newer edit cancelled this one, or its wait
        (:meth:`edited`)."""

        async def build() -> JobResult | None:
            await asyncio.sleep(build_at - asyncio.get_running_loop().time())
            return await self._build_job(key, job, python, on_staged=_ignore)

        task = asyncio.ensure_future(build())
        # its failure is met again, and shown, by the analysis that joins or repeats it
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._early.append(task)

    async def _read_ahead_done(self, path: str) -> None:
        """Wait for the reading ahead of ``path`` (:meth:`edited`), if one is under way:
        the analysis would otherwise parse the same text beside it."""
        running = self._ahead.get(path)
        if running is not None and not running.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(running)

    def _prepare_edit(self, path: str, texts: Mapping[str, str], importers: Sequence[str]) -> None:
        """Send an edit's texts to the worker at once, for a zygote that imported its
        package to run its modules again during the debounce (``prepare-edit``,
        :func:`paramlens.worker.processes.zygote.prepare_main`); only for a file built
        before in this session, or imported by an open file that was (``importers``:
        ``configuration_llama.py``, which has no model, for ``modeling_llama.py``: the
        zygote's first look at what its ``LlamaConfig`` made took 2.7 s of the first edit).
        The second is prepared as its importer's jobs will come: the zygote imports the
        importer's module first, so that it runs again too. The texts as those jobs will
        carry them (:meth:`job_for`), as far as the last reading of the workspace tells: a
        job with other texts is built the usual way."""
        workspace = self._read.get(path)
        if workspace is None or path not in workspace.files:
            return
        target = path if path in self._built else next(iter(importers), None)
        if target is None:
            return
        info = workspace.files.get(target)
        settings = self.settings_for(Path(target))
        worker = self.workers.get(self.python_for(workspace.root, settings))
        if worker is None or worker.state is not State.RUNNING:
            return
        if info is None or "." not in info.module:
            return
        imported = [target, *sorted(workspace.imported_files(target))]
        overrides = tuple(
            (p, text) for p in imported if (text := _override(p, texts, workspace)) is not None
        )
        if not overrides:
            return
        job = BuildJob(
            file=target,
            module=info.module,
            sys_path=import_roots(info.root, workspace.root),
            workspace=job_workspace(info.module, info.root, workspace.root),
            classes=(),
            overrides=overrides,
            timeout_s=settings.timeout,
            memory_mb=settings.memory_mb,
            device=settings.device,
        )
        worker.prepare_edit(job)

    def imports(self, user: str, path: str) -> bool:
        """Whether ``user`` imports ``path``, directly or not, as the workspace was when
        ``user`` was last analysed: an edit of ``path`` changes ``user``'s figures (a config
        class's default, a block)."""
        workspace = self._read.get(user)
        return workspace is not None and path in workspace.imported_files(user)

    def _has_built(self, path: str, workspace: Workspace) -> bool:
        """Whether ``path`` was built before in this session (edited, not opened)."""
        return path in self._built

    async def _focused_first(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool,
        focused: set[str],
        show: Callable[[JobResult | None], None],
    ) -> JobResult | None:
        """The focused classes, then the file's other classes, then its factories: each
        shown as it comes, the whole returned. A focused class is shown as soon as its
        parameters and shapes are known, its training step's peak said to follow, then
        again with it; the others keep their figures, stale, meanwhile. With no focus (a
        file analysed again because a file it imports was edited: ``LlamaConfig``'s default
        in ``configuration_llama.py`` changes every class of ``modeling_llama.py``), all
        its classes are staged, in the file's order."""
        staged: dict[str, ModelResult] = {}

        def show_staged(model: ModelResult) -> None:
            staged[model.name] = model
            show(JobResult(models=tuple(staged.values())))

        first = await self._classes_side_by_side(
            path, workspace, texts, detail, focused, show_staged
        )
        show(first)
        own = first
        if focused:
            rest = await self.build(
                path, workspace, texts, detail, "classes", names=("except", focused)
            )
            own = _merged(first, rest)
        if await self._has_later(path, workspace, texts, detail):
            show(own)
            later = await self._later(path, workspace, texts, detail)
            own = _merged(own, later)
        return own

    async def _classes_side_by_side(
        self,
        path: str,
        workspace: Workspace,
        texts: Mapping[str, str],
        detail: bool,
        focused: set[str],
        on_staged: Callable[[ModelResult], None],
    ) -> JobResult | None:
        """The ``focused`` classes of ``path`` (none: all of them), staged, in shares built
        side by side (:meth:`_shares`), merged in the file's order."""
        shares = self._shares(path, workspace, focused)
        builds = [
            self.build(path, workspace, texts, detail, "classes", names=s, on_staged=on_staged)
            for s in shares
        ]
        merged = None
        for result in await asyncio.gather(*builds):
            merged = _merged(merged, result)
        if merged is None or len(shares) == 1:
            return merged
        order = {c.name: i for i, c in enumerate(workspace.models_in(path))}
        models = sorted(merged.models, key=lambda m: order.get(m.name, len(order)))
        return dataclasses.replace(merged, models=tuple(models))

    def _shares(self, path: str, workspace: Workspace, focused: set[str]) -> list[Names]:
        """The ``focused`` classes of ``path`` (none: all), as :func:`class_shares` deals
        them by their last build's time: the names of each job."""
        names = [c.name for c in workspace.models_in(path) if not focused or c.name in focused]
        memory_mb = self.settings_for(Path(path)).memory_mb
        shares = class_shares(names, self._last_ms.get(path, {}), memory_mb)
        return list(shares) if len(shares) > 1 else [focused or None]

    async def _has_later(
        self, path: str, workspace: Workspace, texts: Mapping[str, str], detail: bool
    ) -> bool:
        """Whether ``path`` has builds that come after its classes in the editor: factories,
        or other configurations of its classes."""
        if workspace.factories_in(path):
            return True
        _, configs, _ = await self._keyed_job(path, workspace, texts, detail, "configs")
        return configs is not None

    async def _later(
        self, path: str, workspace: Workspace, texts: Mapping[str, str], detail: bool
    ) -> JobResult | None:
        """What comes after the file's classes: its factories, in shares built side by side
        (:func:`factory_shares`; timm's vision_transformer.py has 163, 10 s in one job), and
        the other ways the project builds its classes (x-transformers: 44 examples of its
        README, 43 calls in its tests), merged in that order."""
        names = [f.name for f in workspace.factories_in(path)]
        shares = factory_shares(names, self.settings_for(Path(path)).memory_mb) if names else []
        whole = len(shares) == 1  # one job: the same as the whole file's factories
        builds = [
            self.build(path, workspace, texts, detail, "factories", names=None if whole else s)
            for s in shares
        ]
        builds.append(self.build(path, workspace, texts, detail, "configs"))
        built = await asyncio.gather(*builds)
        merged = None
        for result in built:
            merged = _merged(merged, result)
        return merged

    @staticmethod
    def _file_report(
        path: str,
        workspace: Workspace,
        own: JobResult | None,
        results: Sequence[JobResult],
        qualnames: Mapping[str, str],
    ) -> FileReport:
        everything = [m for r in results for m in r.models]
        held = held_instances(everything)
        models = tuple(
            with_instances(m, qualnames, held)
            for m in without_failed_configurations(own.models if own else ())
        )
        if qualnames:  # configs that could not be read, at their own lines
            models += tuple(config_failures(path, workspace))
        return FileReport(
            path=path,
            models=models,
            lines=lines_of(path, everything, workspace),
            isolation=own.isolation if own else (),
            notes=own.notes if own else (),
            cut_short=workspace.cut_short,
        )

    def answer_key(self, root: Path, target: Path, detail: bool, loose: bool = False) -> str | None:
        """What the answer for one file depends on, found without reading any file: the
        size and mtime of every Python file the scan would read (as the scan store keys
        them) and of the pyproject.toml (its lines are in the answer), the settings, the
        interpreter and paramlens itself. None without a cache folder."""
        if self._scan_store is None:
            return None
        settings = self.settings_for(target)
        python = self.python_for(root, settings)
        digest = hashlib.sha256(
            f"{__version__}\0{_answer_code_stamp()}\0{python}\0{_mtime_ns(python)}\0"
            f"{target}\0{detail}\0{self.line_shapes}\0{settings!r}\0".encode()
        )
        limits = self.scan_limits(root, self.settings_for(root), loose)
        listed, _ = list_python_files(root, limits)
        pyproject = config.find_pyproject(target)  # its lines, where settings problems are
        listed += [pyproject] if pyproject is not None else []
        if target.is_file() and target not in listed:  # read whatever the limits say
            listed.append(target)
        for path in listed:
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
        return digest.hexdigest()[:32]

    def saved_answer(self, key: str) -> list[FileReport] | None:
        """The reports saved under :meth:`answer_key`: a warm run that reads no source."""
        if self._scan_store is None:
            return None
        reports = load(self._scan_store.folder / f"answer-{key}.pickle", __version__)
        if not isinstance(reports, list):
            return None
        self.log("the workspace is unchanged since the last run: its saved answer, no file read")
        return reports

    def save_answer(self, key: str, reports: list[FileReport]) -> None:
        """Unless a timeout or a crash cut a result short: those are tried again."""
        if self._scan_store is not None and all(r.complete for r in reports):
            dump(self._scan_store.folder / f"answer-{key}.pickle", __version__, reports)

    def analysed_before(self, root: Path) -> bool:
        """Whether a scan of ``root`` persisted from an earlier run (CLI or editor)."""
        return self._scan_store is not None and self._scan_store.exists(root)

    def start_worker_unless_cached(self, path: str, root: Path) -> None:
        """The CLI's first step: with no cache, or none yet for this workspace (its scan
        was never saved), every answer needs the worker, so torch starts importing while
        the workspace is read. Otherwise the cache may answer everything: the worker
        starts only if a job misses, and a fully cached run never imports torch."""
        if not self.analysed_before(root):
            self.start_worker(path, root)

    def start_worker(self, path: str, root: Path) -> None:
        """Let torch, and the package of ``path``, import in the worker while the workspace
        is being read (not the package if the workspace was analysed before: its results
        may all be cached, and that import would only compete with reading them)."""
        settings = self.settings_for(Path(path))
        worker = self.worker_for(self.python_for(root, settings))
        if worker.state is State.STOPPED or worker.state is State.EXITED:
            task: asyncio.Future[object] = asyncio.ensure_future(
                worker.prepare(prepare_job(Path(path), root, settings))
                if path.endswith(".py") and not self.analysed_before(root)
                else worker.start()
            )
            # a failure is raised again, with its message, by the build that needs the worker
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._starting = [t for t in self._starting if not t.done()] + [task]

    def terminate(self) -> None:
        self._ahead_next.clear()
        for early in self._early:
            early.cancel()
        for task in self._starting:
            task.cancel()
        for worker in self.workers.values():
            worker.terminate()

    async def close(self) -> None:
        self._ahead_next.clear()
        for early in self._early:
            early.cancel()
        for task in self._starting:  # a worker still starting (no job came) is stopped
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        for worker in self.workers.values():
            await worker.stop()


def _code_stamp(folder: Path) -> str:
    """The Python files under ``folder``, by path, size and mtime."""
    stamps = []
    for path in sorted(folder.rglob("*.py")):
        stat = path.stat()
        stamps.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]


@functools.cache
def _worker_code_stamp() -> str:
    """The worker's own code, by size and mtime: results from an older worker (an editable
    install being developed, an upgrade without a version bump) are not reused. Its
    subpackages too (processes/, build/, forward/)."""
    return _code_stamp(Path(protocol.__file__).parent)


@functools.cache
def _answer_code_stamp() -> str:
    """All of paramlens's code: a saved answer (the reports of a whole run) is also what the
    engine, the analysis and the renderer made of the results, so a change to any of them
    is a new answer, not the last one shown again."""
    return _code_stamp(Path(protocol.__file__).parents[1])


def _mtime_ns(python: str) -> str:
    """The interpreter's, through its symlinks: a rebuilt venv invalidates the cache."""
    try:
        return str(Path(python).resolve().stat().st_mtime_ns)
    except OSError:
        return ""


def _override(path: str, texts: Mapping[str, str], workspace: Workspace) -> str | None:
    """The text the worker imports ``path`` from instead of the disk: an unsaved buffer's,
    or a notebook's module text (the worker reads Python files, not notebooks)."""
    if is_notebook(path):
        info = workspace.files.get(path)
        return texts.get(path, info.text if info is not None else None)
    text = texts.get(path)
    return text if text is not None and _unsaved(path, text) else None


def _unsaved(path: str, text: str) -> bool:
    """Whether an open buffer differs from its file on disk. One that does not is no
    override: the worker's zygote, which imported the file from disk, can build it (opening
    timm's vision_transformer.py otherwise imported all of timm again: 2.6 s)."""
    try:
        stat = os.stat(path)
        return _disk_text(path, stat.st_mtime_ns, stat.st_size) != text
    except (OSError, SourceError):
        return True


@functools.lru_cache(maxsize=16)
def _disk_text(path: str, mtime_ns: int, size: int) -> str:
    """A file's text, read once per version of it (a file's first look asks for up to
    four jobs, each comparing the open buffers it imports with the disk)."""
    return read_source(Path(path))


def _cacheable(result: JobResult | None) -> bool:
    """Not a result that a timeout or a crash cut short: those are tried again."""
    return result is not None and not any(
        m.error and m.error.kind in ("timeout", "crash") for m in result.models
    )


Names = set[str] | tuple[str, set[str]] | None  # some names, or ("except", names)


def _named(name: str, names: Names) -> bool:
    if isinstance(names, tuple):
        return name not in names[1]
    return names is None or name in names


def focus_classes(
    path: str, workspace: Workspace, texts: Mapping[str, str], focus: Sequence[tuple[int, int]]
) -> set[str]:
    """The classes of ``path`` at the ``focus`` line ranges (the innermost at each line),
    and the file's classes whose text names one of them: a block that needs arguments is
    measured inside the model that builds it (an edit inside ViT's ``Block`` shows in
    ``Block`` and ``VisionTransformer``)."""
    classes = workspace.models_in(path)
    found: set[str] = set()
    for first, last in focus:
        inside = [c for c in classes if c.line <= last and c.end_line >= first]
        at_line = [c for c in inside if c.line <= first <= c.end_line]
        chosen = [max(at_line, key=lambda c: c.line)] if at_line and first == last else inside
        found.update(c.name for c in chosen)
    if not found:
        return found
    text = texts.get(path)
    if text is None:
        try:
            text = read_source(Path(path))
        except (OSError, SourceError):
            return found
    lines = text.splitlines()
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(found))) + r")\b")
    for c in classes:
        if c.name not in found and pattern.search("\n".join(lines[c.line : c.end_line])):
            found.add(c.name)
    return found


MAX_SHARES = 2  # factory jobs of one file built side by side
MIN_SHARE = 16  # factories a share is worth (each share imports the edited module again)


def factory_shares(names: Sequence[str], memory_mb: int) -> list[set[str]]:
    """A file's factories cut in consecutive shares to build side by side: one per core
    (at most :data:`MAX_SHARES`), as many as the memory available holds at each build's
    cap, and at least :data:`MIN_SHARE` factories each; otherwise all in one. Each share
    keeps per-line figures for the kinds of block it meets first (a forward() more per
    share and kind, for half the wall time of the whole)."""
    count = _side_by_side(len(names) // MIN_SHARE or 1, memory_mb)
    size = -(-len(names) // count)
    return [set(names[i : i + size]) for i in range(0, len(names), size)] or [set()]


SIDE_BY_SIDE_MS = 1000  # a file's classes whose last build took longer: two shares


def class_shares(
    names: Sequence[str], last_ms: Mapping[str, float], memory_mb: int
) -> list[set[str]]:
    """A file's classes in shares to build side by side, one per core (at most
    :data:`MAX_SHARES`, as many as the memory available holds at each build's cap), when
    their last build took longer than :data:`SIDE_BY_SIDE_MS` (``last_ms``: each class's,
    by name); otherwise all in one. Dealt in turn in the file's order: neighbours, often
    alike in cost (``LlamaModel``, then ``LlamaForCausalLM``, each LLaMA-7B's forward()
    on meta), go to different cores, and each share's first classes come early."""
    count = _side_by_side(len(names), memory_mb)
    if count < 2 or sum(last_ms.get(n, 0.0) for n in names) < SIDE_BY_SIDE_MS:
        return [set(names)]
    return [set(names[i::count]) for i in range(count)]


def _side_by_side(most: int, memory_mb: int) -> int:
    """How many jobs of ``memory_mb`` each to build side by side: one per core, at most
    :data:`MAX_SHARES` and ``most``, as many as the memory available holds."""
    count = min(MAX_SHARES, os.cpu_count() or 1, most)
    return max(1, min(count, _available_mb() // max(memory_mb, 1)))


def _available_mb() -> int:
    """Memory available to new processes (Linux's estimate); 0 where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


MAX_DEPENDENTS = 3  # importers built to measure a file's classes that need arguments
# their models and factories, all told, beyond the first importer's: opening timm's
# mlp.py builds mlp_mixer.py (21) and convnext.py (35), not maxxvit.py (72) too
MAX_DEPENDENT_MODELS = 64


def dependents_to_build(
    paths: Collection[str],
    workspace: Workspace,
    missing: set[str],
    built_own: bool,
    opened: Collection[str] = (),
    skip: Collection[str] = (),
) -> list[str]:
    """The users of ``paths`` (their importers, and the files that take their classes
    through a package that re-exports them: :meth:`Workspace.users`), but those of
    ``skip``, worth building to measure their classes still without figures, a few at
    most (LLaMA's blocks are imported by dozens of transformers models, timm's layers by
    a hundred models), with few models between them
    (:data:`MAX_DEPENDENT_MODELS`). Picked one at a time: the file that names most of the
    classes not yet named by a file picked before, then most of them all, then the one
    with fewer models and factories to build (for timm's ``Attention`` and
    ``AttentionRope``: ``deepseek_vit.py``, 7, before ``eva.py``, 69, which names both
    too). A file with nothing of its own to build takes its line figures from any direct
    importer with models, or only from those ``opened`` in the editor if there are (the
    user's, built for their own lenses: ``modeling_llama.py`` for ``configuration_llama.py``).
    In the order of how many classes each names."""
    used = {
        p: missing & workspace.files[p].words()
        for path in paths
        for p in workspace.users(path)
        if p not in skip
        and p not in paths
        and (workspace.models_in(p) or workspace.factories_in(p))
    }
    if not built_own:
        direct = {p for path in paths for p in workspace.importers(path)}
        used = {p: names for p, names in used.items() if p in direct}
        if used.keys() & set(opened):
            used = {p: names for p, names in used.items() if p in opened}
    cost = {p: len(workspace.models_in(p)) + len(workspace.factories_in(p)) for p in used}
    left, spent = set(missing), 0
    candidates = [p for p in used if used[p] or not built_own]
    chosen: list[str] = []
    while candidates and len(chosen) < MAX_DEPENDENTS:
        best = max(candidates, key=lambda p: (len(used[p] & left), len(used[p]), -cost[p]))
        candidates.remove(best)
        if chosen and spent + cost[best] > MAX_DEPENDENT_MODELS:
            continue
        chosen.append(best)
        left -= used[best]
        spent += cost[best]
    return sorted(chosen, key=lambda p: -len(used[p]))


def _merged(first: JobResult | None, rest: JobResult | None) -> JobResult | None:
    if first is None or rest is None:
        return first or rest
    return JobResult(
        models=first.models + rest.models,
        isolation=first.isolation,
        notes=tuple(dict.fromkeys(first.notes + rest.notes)),
        elapsed_ms=first.elapsed_ms + rest.elapsed_ms,
    )
