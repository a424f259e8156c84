"""The paramlens language server (pygls 2.x): thin handlers over the shared engine.

Analysis runs as one asyncio task per document: on open and save (and, if the
user asks, debounced on change). A newer edit cancels the older task, which
cancels its job in the worker; results for text that changed meanwhile are kept
but shown as stale. Requests (code lens, inlay hint, hover, code action) answer from
:class:`~paramlens.lsp.documents.DocumentState` at once and never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import re
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import cattrs
from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from .. import __version__, config, render
from ..analysis.notebook import CellSpan, notebook_source
from ..config import Root, Settings, find_root, too_wide
from ..engine.constructors import SettingsProblem
from ..engine.engine import Engine, FileReport
from ..engine.worker_client import State, WorkerDied, WorkerError, WorkerStartError
from ..worker.protocol import ErrorInfo, ModelResult
from . import convert, notebooks
from .documents import DocumentState, OpenDocuments, document_key
from .idle import IdleCollector
from .notebooks import NotebookState

STATUS_NOTIFICATION = "paramlens/status"
SETTINGS_WAIT_S = 2.0


def uri_to_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")


def is_python(document: lsp.TextDocumentItem) -> bool:
    """A document to analyse: Python by its language, or by its file name."""
    path = uri_to_path(document.uri) or ""
    return document.language_id == "python" or path.endswith(PYTHON_SUFFIXES)


_ANSWERED = object()  # a request already answered (or a notification dropped) while parsed
logger = logging.getLogger(__name__)


class ParamlensProtocol(LanguageServerProtocol):
    """pygls, except that a request whose params do not fit its method (a string for a
    position, line -1 or 2**63) gets an InvalidParams error instead of no answer at all:
    pygls fails while parsing the message, before it has the id to answer. A notification
    whose params do not fit is dropped with a line in the log, not shown to the user."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "jsonrpc" in data and "method" in data and "id" not in data:
                # a notification nobody can be told about: pygls would show the user an
                # "Error in server" for each one (a client sending a storm of them)
                logger.warning("ignored %s: its params do not fit it", data["method"])
                return _ANSWERED
            msg_id = data.get("id") if "jsonrpc" in data and "method" in data else None
            if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
                raise  # a response: nobody to answer
            error = exc
            if isinstance(exc, JsonRpcInvalidParams) and exc.__cause__ is not None:
                details = _validation_details(exc.__cause__)
                error = JsonRpcInvalidParams(f"invalid params for {data['method']}: {details}")
            self._send_response(msg_id, None, error.to_response_error())
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is not _ANSWERED:
            super().handle_message(message)

    def _execute_handler(
        self,
        msg_id: str | int,
        handler: Callable[..., Any],
        callback: Callable[[Future[Any]], None],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """pygls's, without its leak: pygls 2.1 files the future of every notification run
        by a generator, coroutine or thread (didOpen, didChange, didSave...) in
        ``_request_futures`` under a fresh id and never takes it out: 1 KB per keystroke."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        if callback == self._check_handler_result:  # a notification's: no answer pops it
            future = self._request_futures.get(msg_id)
            if future is not None:
                # on the loop's next turn: pygls's shutdown cancels the pending futures while
                # it walks the dict, and a generator's future runs its callbacks right there
                loop = asyncio.get_running_loop()
                forget = functools.partial(self._request_futures.pop, msg_id, None)
                future.add_done_callback(lambda _: loop.call_soon_threadsafe(forget))

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: lsp.DidChangeTextDocumentParams) -> Any:
        """pygls's, for open documents only: an edit of one never opened (or closed since)
        raised KeyError, shown to the user as "Error in server"."""
        if unquote(params.text_document.uri) not in self.workspace.text_documents:
            logger.warning("ignored an edit of %s, which is not open", params.text_document.uri)
            return
        yield from super().lsp_text_document__did_change(params)

    @lsp_method(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def lsp_notebook_document__did_change(self, params: lsp.DidChangeNotebookDocumentParams) -> Any:
        """pygls's, for open notebooks only (it raised KeyError for another)."""
        if self.workspace.get_notebook_document(notebook_uri=params.notebook_document.uri) is None:
            logger.warning("ignored an edit of %s, which is not open", params.notebook_document.uri)
            return
        yield from super().lsp_notebook_document__did_change(params)


def _validation_details(exc: BaseException) -> str:
    try:
        messages = cattrs.transform_error(exc, path="$")
    except Exception:
        return str(exc)
    return "; ".join(messages)[:500]


class ParamlensServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "paramlens",
            __version__,
            protocol_cls=ParamlensProtocol,
            notebook_document_sync=notebooks.SYNC_OPTIONS,
        )
        self.documents = OpenDocuments()
        self.notebooks: dict[str, NotebookState] = {}  # by document_key of the notebook's URI
        # The disk cache: a reopened, unchanged project shows its figures before torch imports.
        self.engine = Engine(self.settings_for, self.log, config.cache_folder(), eager_worker=True)
        self.editor_settings: dict[str, Any] = {}
        self.settings_ready = asyncio.Event()  # set once the editor's settings were asked for
        self.client_python: str | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.reported: set[str] = set()
        self.cut_short_roots: set[Path] = set()  # roots whose scan stopped early, said once
        self._untitled = itertools.count(1)
        self._tokens = itertools.count(1)
        self.died_on: set[str] = set()  # documents whose build the worker died in
        self.deaths: list[float] = []  # when workers died (a worker that keeps dying)
        self._rebuild: asyncio.TimerHandle | None = None
        # the diagnostics last published on each pyproject.toml (by URI): settings problems
        self.settings_diagnostics: dict[str, list[lsp.Diagnostic]] = {}
        self.not_python: set[str] = set()  # documents opened that are not analysed (by key)
        self.collector = IdleCollector()  # full garbage collections between analyses

    # -- settings ------------------------------------------------------------

    def settings_for(self, path: Path) -> Settings:
        settings, problems = config.from_pyproject(path)
        settings, more = config.merge(settings, self.editor_settings, "paramlens settings")
        if not settings.python and self.client_python:
            settings = dataclasses.replace(settings, python=self.client_python)
        for problem in problems + more:
            self.warn_once(problem)
        return settings

    async def refresh_settings(self, pushed: Any = None) -> None:
        values = pushed.get("paramlens") if isinstance(pushed, dict) else None
        caps = self.client_capabilities.workspace
        if values is None and caps is not None and caps.configuration:
            params = lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="paramlens")])
            try:
                answer = await self.workspace_configuration_async(params)
                values = answer[0] if answer else None
            except Exception as exc:  # a client that cannot answer: keep the defaults
                self.log(f"workspace/configuration failed: {exc}")
        if values is not None and not isinstance(values, dict):
            self.warn_once("paramlens settings must be an object; using the defaults")
            values = None
        self.editor_settings = values or {}

    # -- messages to the user ------------------------------------------------

    def log(self, message: str) -> None:
        with contextlib.suppress(Exception):
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Log, message=message))

    def warn_once(self, message: str) -> None:
        if message in self.reported:
            return
        self.reported.add(message)
        self.window_show_message(
            lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=message)
        )
        self.log(message)

    def status(self, state: str, **extra: Any) -> None:
        self.protocol.notify(STATUS_NOTIFICATION, {"state": state, **extra})

    # -- documents -----------------------------------------------------------

    def folder_paths(self) -> list[Path]:
        paths = (uri_to_path(f.uri) for f in self.workspace.folders.values())
        return [Path(p) for p in paths if p]

    def root_for(self, path: str) -> Root:
        """The deepest workspace folder holding ``path``, but never ``/`` nor the home
        folder (an editor opened there: the file's own project, else its own folder)."""
        containing = [
            f for f in self.folder_paths() if Path(path).is_relative_to(f) and not too_wide(f)
        ]
        if containing:
            return Root(max(containing, key=lambda f: len(f.parts)))
        return find_root(Path(path))  # outside every folder: analysed on its own

    def open_document(
        self,
        uri: str,
        text: str,
        version: int | None,
        suffix: str = ".py",
        shown: list[str] | None = None,
    ) -> DocumentState:
        path = uri_to_path(uri)
        if path is None:  # untitled buffer: give it a name in the first folder
            folder = next(iter(self.folder_paths()), Path.cwd())
            name = re.sub(r"\W", "_", uri.rpartition(":")[2].rpartition("/")[2]) or "untitled"
            path = str(folder / f"{name}_{next(self._untitled)}{suffix}")
        state = DocumentState(uri, path, text, version, text_lines=shown or [])
        self.documents[uri] = state
        return state

    # -- notebooks: one document per notebook, shown in its cells ------------------

    def sync_notebook(self, uri: str, version: int | None) -> NotebookState | None:
        """Read the notebook's cells again (opened or changed): its module, its document."""
        document = self.workspace.get_notebook_document(notebook_uri=uri)
        if document is None:
            return None
        languages: dict[str, str | None] = {}
        texts: dict[str, str] = {}
        for cell in document.cells:
            text_document = self.workspace.text_documents.get(unquote(cell.document))
            if text_document is not None:
                languages[cell.document] = text_document.language_id
                texts[cell.document] = text_document.source
        cells = [c for c in notebooks.code_cells(document, languages) if c in texts]
        source = notebook_source([texts[c] for c in cells])
        notebook = self.notebooks.get(document_key(uri))
        if notebook is None:
            notebook = NotebookState(uri, cells, source)
            self.notebooks[document_key(uri)] = notebook
            for cell in document.cells:  # a cell opened as a file before: the notebook's now
                self.documents.pop(cell.document, None)
            self.open_document(uri, source.text, version, ".ipynb", source.shown_lines())
        else:
            notebook.cells, notebook.source = cells, source
            self.documents[uri].edit(source.text, version, source.shown_lines())
        return notebook

    def cell_of(self, uri: str) -> tuple[DocumentState, NotebookState, CellSpan] | None:
        """The notebook document a cell URI belongs to, and where the cell is in it."""
        document = self.workspace.get_notebook_document(cell_uri=uri)
        if document is None:
            return None
        notebook = self.notebooks.get(document_key(document.uri))
        state = self.documents.get(document.uri)
        span = notebook.span_of(uri) if notebook is not None else None
        if notebook is None or state is None or span is None:
            return None
        return state, notebook, span

    def close_document(self, uri: str) -> None:
        """Forget a document (a file or a notebook) and cancel its pending analysis."""
        self.documents.pop(uri, None)
        for pending in (self.tasks, self.timers):
            job = pending.pop(document_key(uri), None)
            if job is not None:
                job.cancel()

    def close_notebook(self, uri: str) -> None:
        notebook = self.notebooks.pop(document_key(uri), None)
        self.close_document(uri)
        if notebook is not None:
            for cell in {*notebook.cells, *notebook.published}:
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(uri=cell, diagnostics=[])
                )

    # -- analysis --------------------------------------------------------------

    def edited(self, state: DocumentState) -> None:
        """An open document's text changed: analysed again after the debounce, and so are
        the open documents that import it (their figures are built with its text: a
        config class's default edited in ``configuration_llama.py`` changes the models of
        ``modeling_llama.py``), shown stale meanwhile."""
        settings = self.settings_for(Path(state.path))
        if settings.analyze_on_change:
            texts = {s.path: s.text for s in self.documents.values()}
            root = self.root_for(state.path)
            # during the debounce: the edited module run again, the text read, its class
            # built, and the classes of the open files that import it
            others = {s.path: s.focus() for s in self.documents.values() if s is not state}
            self.engine.edited(state.path, root.path, texts, root.loose, state.focus(), others)
            self.schedule(state.uri, settings.debounce_ms / 1000)
            self.schedule_users(state, settings.debounce_ms / 1000)

    def saved(self, uri: str) -> None:
        state = self.documents.get(uri)
        if state is not None and self.settings_for(Path(state.path)).analyze_on_save:
            self.schedule(state.uri)
            self.schedule_users(state)

    def files_changed(self, paths: list[str]) -> None:
        """Files changed on disk, not through an open document (a README's example, a
        config, a block a ``git checkout`` replaced): the open documents of the workspaces
        holding them are analysed again, once, after the debounce; stale meanwhile."""
        opened = {state.path for state in self.documents.values()}
        changed = [Path(p) for p in paths if p not in opened]
        roots = {state.uri: self.root_for(state.path).path for state in self.documents.values()}
        affected = [
            state
            for state in self.documents.values()
            if any(p.is_relative_to(roots[state.uri]) for p in changed)
        ]
        for state in affected:
            state.stale = state.report is not None
            self.schedule(state.uri, self.settings_for(Path(state.path)).debounce_ms / 1000)
        if affected:
            self.refresh_views()

    def schedule_users(self, state: DocumentState, delay_s: float = 0.0) -> None:
        """The other open documents that import ``state``'s file: stale, analysed again."""
        users = [
            other
            for other in self.documents.values()
            if other is not state and self.engine.imports(other.path, state.path)
        ]
        for other in users:
            other.stale = other.report is not None
            self.schedule(other.uri, delay_s)
        if users:
            self.refresh_views()

    def schedule(self, uri: str, delay_s: float = 0.0) -> None:
        uri = document_key(uri)  # one task and one timer per document, however spelled
        timer = self.timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        if delay_s > 0:
            loop = asyncio.get_running_loop()
            self.timers[uri] = loop.call_later(delay_s, self.schedule, uri)
            return
        previous = self.tasks.get(uri)
        if previous is not None and not previous.done():
            previous.cancel()  # the newest text wins; the worker drops the old job
        self.collector.started()
        self.tasks[uri] = asyncio.create_task(self.analyze(uri))
        self.tasks[uri].add_done_callback(lambda _: self.collector.finished())

    async def analyze(self, uri: str) -> None:
        # a file opened as the editor starts waits for the editor's settings (its inputs,
        # its interpreter), which the server asks for once initialized; not forever
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.settings_ready.wait(), SETTINGS_WAIT_S)
        state = self.documents.get(uri)
        if state is None:
            return
        generation = state.generation
        texts = {s.path: s.text for s in self.documents.values()}
        root = self.root_for(state.path)
        settings = self.settings_for(Path(state.path))
        worker = self.engine.worker_for(self.engine.python_for(root.path, settings))
        worker.on_death = self.worker_died
        progress = None
        if worker.state is not State.RUNNING:
            progress = await self.begin_progress("Starting the PyTorch worker")
        names = [m.name for m in state.report.models] if state.report else []
        self.status("building", model=", ".join(names) or Path(state.path).name)
        try:
            partial = self._partial(uri, state, root.path)
            report = await self.engine.analyze(
                state.path, root.path, texts, partial, loose=root.loose, focus=state.focus()
            )
        except WorkerDied as exc:
            if exc.building is not None and exc.job.file == state.path:
                self.died_on.add(uri)  # not rebuilt by itself: it may be what kills the worker
                state.accept(died_report(state, exc), generation)
                self.publish(state)
                self.refresh_views()
            self.status("error", message=f"{exc}; restarting it")
            return
        except WorkerStartError as exc:
            self.status("error", message=str(exc))
            self.warn_once(f"paramlens: {exc}. Set paramlens.python to an interpreter with torch.")
            return
        except WorkerError as exc:  # an answer it could not read: that job's, said
            self.status("error", message=str(exc))
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one analysis take the server down
            self.log(traceback.format_exc())
            self.status("error", message="analysis failed; see the paramlens output")
            return
        finally:
            if progress is not None:
                self.end_progress(progress)
        self.say_cut_short(root.path, report)
        if self.documents.get(uri) is not state:
            return  # closed meanwhile
        report = self.keep_broken_cells(state, report)
        state.accept(report, generation)
        self.publish(state)
        self.publish_settings(state.path, report)
        models = len([m for m in report.models if m.error is None])
        self.status("ready", models=models, model=Path(state.path).name)
        self.refresh_views()

    def say_cut_short(self, root: Path, report: FileReport) -> None:
        """Once per root: its scan stopped early, and how to widen it."""
        if report.cut_short and root not in self.cut_short_roots:
            self.cut_short_roots.add(root)
            self.warn_once(report.cut_short)

    def worker_died(self, death: WorkerDied) -> None:
        """Restart at once and rebuild the open documents, except those whose build was
        running when it died (until they change); their lenses show stale meanwhile."""
        now = asyncio.get_running_loop().time()
        self.deaths = [t for t in self.deaths if now - t < 60] + [now]
        self.log(str(death))
        for state in self.documents.values():
            state.stale = state.report is not None
        self.refresh_views()
        if len(self.deaths) > 3:
            self.status("error", message="the paramlens worker keeps dying; save to retry")
            return
        if self._rebuild is None:  # every pending analysis fails at once: rebuild once
            self._rebuild = asyncio.get_running_loop().call_later(0.1, self._rebuild_documents)

    def _rebuild_documents(self) -> None:
        self._rebuild = None
        for uri in self.documents:
            if uri not in self.died_on:
                self.schedule(uri)
        self.died_on.clear()

    def _partial(self, uri: str, state: DocumentState, root: Path) -> Callable[[FileReport], None]:
        """A file's first analysis shows its classes before its factories are built; after
        an edit, the classes at the edit come first (the others stay, stale, meanwhile)."""
        generation = state.generation
        first = state.report is None

        def show(report: FileReport) -> None:
            self.say_cut_short(root, report)
            if self.documents.get(uri) is state:
                kept = self.keep_broken_cells(state, report)
                if first:
                    state.accept(kept, generation)
                else:
                    state.accept_partial(kept, generation)
                self.publish(state)
                self.refresh_views()

        return show

    def keep_broken_cells(self, state: DocumentState, report: FileReport) -> FileReport:
        """A notebook's cell that does not compile keeps its last figures (stale)."""
        notebook = self.notebooks.get(document_key(state.uri))
        if notebook is None:
            return report
        return notebooks.with_broken_cells_kept(
            report, state.report, state.lines, notebook, state.unchanged_line
        )

    def publish(self, state: DocumentState) -> None:
        notebook = self.notebooks.get(document_key(state.uri))
        if notebook is not None:
            module_uris = {document_key(state.uri), document_key(Path(state.path).as_uri())}
            diagnostics = convert.lsp_diagnostics(state)
            by_cell = notebooks.cell_diagnostics(notebook, diagnostics, module_uris)
            for cell in notebook.published - set(by_cell):  # cells deleted since
                by_cell[cell] = []
            for cell, shown in by_cell.items():
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(uri=cell, diagnostics=shown)
                )
            notebook.published = set(notebook.cells)
            return
        params = lsp.PublishDiagnosticsParams(
            uri=state.uri, diagnostics=convert.lsp_diagnostics(state), version=state.version
        )
        self.text_document_publish_diagnostics(params)

    def publish_settings(self, path: str, report: FileReport) -> None:
        """The settings problems of the analysis of ``path`` on their pyproject.toml lines
        (cleared there once fixed); one from the editor's settings, as a message."""
        pyproject = config.find_pyproject(Path(path))
        by_file: dict[str, list[SettingsProblem]] = {str(pyproject): []} if pyproject else {}
        for problem in report.settings_problems:
            if problem.file is None:
                self.warn_once(f"paramlens settings: {problem.message}")
            else:
                by_file.setdefault(problem.file, []).append(problem)
        for file, problems in by_file.items():
            source = self.source_of(file)
            if source is None:
                continue
            uri, text, _ = source
            diagnostics = convert.lsp_settings_diagnostics(problems, text)
            if self.settings_diagnostics.get(uri, []) != diagnostics:
                self.settings_diagnostics[uri] = diagnostics
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
                )

    def refresh_views(self) -> None:
        """Ask the editor to fetch lenses and inlay hints again: results arrived."""
        caps = self.client_capabilities
        if get_capability(caps, "workspace.code_lens.refresh_support", False):
            self.workspace_code_lens_refresh(None)
        if get_capability(caps, "workspace.inlay_hint.refresh_support", False):
            self.workspace_inlay_hint_refresh(None)

    def source_of(self, path: str) -> tuple[str, str, int | None] | None:
        """(uri, text, version) of ``path``: the editor's text if it is open, else the disk's."""
        wanted = str(Path(path))
        for state in self.documents.values():
            if str(Path(state.path)) == wanted:
                return state.uri, state.text, state.version
        try:
            return Path(path).as_uri(), Path(path).read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    async def begin_progress(self, title: str) -> str | None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return None
        token = f"paramlens-progress-{next(self._tokens)}"
        try:
            # Shielded: if this analysis is cancelled meanwhile, the client's answer must still
            # find its request pending (pygls reports "Error in server" otherwise).
            await asyncio.shield(self.work_done_progress.create_async(token))
        except Exception:
            return None
        self.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=False)
        )
        return token

    def end_progress(self, token: str) -> None:
        self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message="ready"))
        self.work_done_progress.tokens.pop(token, None)  # pygls 2.1 keeps them all

    def stop(self) -> None:
        """Cancel all work and stop the workers, without waiting (clients time shutdown out)."""
        for task in self.tasks.values():
            task.cancel()
        for timer in self.timers.values():
            timer.cancel()
        self.engine.terminate()


def died_report(state: DocumentState, death: WorkerDied) -> FileReport:
    """The document's last report (or its classes, unbuilt) with the class whose build
    was running when the worker died failed with a ``crash`` error saying so."""
    spec = next(c for c in death.job.classes if c.name == death.building)
    error = ErrorInfo(str(death), state.path, spec.line, "crash")
    failed = ModelResult.failed(spec, state.path, error)
    models = state.report.models if state.report else ()
    if not any(m.name == spec.name for m in models):
        models = (*models, failed)
    models = tuple(failed if m.name == spec.name else m for m in models)
    lines = state.report.lines if state.report else {}
    return FileReport(state.path, models, lines)


server = ParamlensServer()


@server.feature(lsp.INITIALIZE)
def on_initialize(ls: ParamlensServer, params: lsp.InitializeParams) -> None:
    options = params.initialization_options
    if isinstance(options, dict):
        python = options.get("python")
        ls.client_python = python if isinstance(python, str) and python else None
        if isinstance(options.get("settings"), dict):
            ls.editor_settings = options["settings"]


@server.feature(lsp.INITIALIZED)
async def on_initialized(ls: ParamlensServer, params: lsp.InitializedParams) -> None:
    try:
        await ls.refresh_settings()
    finally:
        ls.settings_ready.set()
    for folder in ls.folder_paths():
        # a project analysed before (its scan persisted): torch imports while the user
        # picks a file; a folder never seen waits for a file with a model in it
        if ls.engine.analysed_before(folder):
            ls.engine.start_worker(str(folder), folder)
    await watch_files(ls)


WATCHED = "**/*.{py,md,rst,yaml,yml,json,toml}"  # code, READMEs, configs, pyproject.toml
REGISTER_WAIT_S = 10.0


async def watch_files(ls: ParamlensServer) -> None:
    """Ask the editor to tell us of files changed on disk, if it can."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if not (watched and watched.dynamic_registration):
        return
    options = lsp.DidChangeWatchedFilesRegistrationOptions(
        watchers=[lsp.FileSystemWatcher(glob_pattern=WATCHED)]
    )
    registration = lsp.Registration(
        id="paramlens-watched-files",
        method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=options,
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(lsp.RegistrationParams([registration])),
            REGISTER_WAIT_S,
        )
    except Exception as exc:  # an editor that refuses: figures refresh on the next edit
        ls.log(f"watching files: the editor refused ({exc})")


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def on_watched_files(ls: ParamlensServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    paths = (uri_to_path(change.uri) for change in params.changes)
    ls.files_changed([p for p in paths if p])


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def on_configuration(ls: ParamlensServer, params: lsp.DidChangeConfigurationParams) -> None:
    await ls.refresh_settings(params.settings)
    for uri in ls.documents:
        ls.schedule(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def on_open(ls: ParamlensServer, params: lsp.DidOpenTextDocumentParams) -> None:
    document = params.text_document
    if ls.cell_of(document.uri) is not None:  # an open notebook's cell: synced with it
        logger.info("ignored textDocument/didOpen of %s, a cell of an open notebook", document.uri)
        return
    if not is_python(document):
        # a client that sends every file (pyproject.toml, whose settings problems are
        # published on its lines): nothing to analyse, and its diagnostics are not ours
        logger.info("ignored textDocument/didOpen of %s, not Python", document.uri)
        ls.not_python.add(document_key(document.uri))
        return
    ls.open_document(document.uri, document.text, document.version)
    ls.schedule(document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def on_change(ls: ParamlensServer, params: lsp.DidChangeTextDocumentParams) -> None:
    state = ls.documents.get(params.text_document.uri)
    if state is None:
        return
    text = ls.workspace.get_text_document(state.uri).source
    state.edit(text, params.text_document.version)
    # the client's newest spelling of its URI: lens commands and diagnostics name it so
    state.uri = params.text_document.uri
    ls.edited(state)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def on_save(ls: ParamlensServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.saved(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def on_close(ls: ParamlensServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    if document_key(uri) in ls.not_python:
        ls.not_python.discard(document_key(uri))
        return  # no diagnostics of ours to clear (a pyproject.toml's settings problems stay)
    ls.close_document(uri)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
def on_notebook_open(ls: ParamlensServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
    document = params.notebook_document
    if ls.sync_notebook(document.uri, document.version) is not None:
        ls.schedule(document.uri)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
def on_notebook_change(ls: ParamlensServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
    document = params.notebook_document
    notebook = ls.sync_notebook(document.uri, document.version)
    if notebook is None:
        return
    state = ls.documents[document.uri]
    if notebook.source.errors:  # the cell being fixed is said to be stale at once
        ls.publish(state)
    ls.edited(state)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
def on_notebook_save(ls: ParamlensServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
    ls.saved(params.notebook_document.uri)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
def on_notebook_close(ls: ParamlensServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
    ls.close_notebook(params.notebook_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
def on_code_lens(ls: ParamlensServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
    state = ls.documents.get(params.text_document.uri)
    if state is None:
        cell = ls.cell_of(params.text_document.uri)
        if cell is None:
            return []
        state, notebook, span = cell
        with notebooks.stale_if_broken(state, notebook, span):
            layer_lenses = ls.settings_for(Path(state.path)).layer_lenses
            return notebooks.lenses_in_cell(convert.lsp_code_lenses(state, layer_lenses), span)
    return convert.lsp_code_lenses(state, ls.settings_for(Path(state.path)).layer_lenses)


@server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
def on_inlay_hint(ls: ParamlensServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
    state = ls.documents.get(params.text_document.uri)
    if state is None:
        cell = ls.cell_of(params.text_document.uri)
        if cell is None:
            return []
        state, notebook, span = cell
        layer_hints = ls.settings_for(Path(state.path)).layer_hints
        with notebooks.stale_if_broken(state, notebook, span):
            shown = notebooks.to_module(params.range, span)
            hints = convert.lsp_inlay_hints(state, shown, layer_hints)
        return notebooks.hints_in_cell(hints, span)
    layer_hints = ls.settings_for(Path(state.path)).layer_hints
    state.visible = (params.range.start.line + 1, params.range.end.line + 1)  # built first
    return convert.lsp_inlay_hints(state, params.range, layer_hints)


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]),
)
def on_code_action(ls: ParamlensServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    state = ls.documents.get(params.text_document.uri)
    if state is None:
        cell = ls.cell_of(params.text_document.uri)
        if cell is None:
            return []
        state, notebook, span = cell
        if notebook.broken(span):
            return []
        # unversioned edits: a cell's version is not the notebook's
        asked = notebooks.to_module(params.range, span)
        found = convert.lsp_code_actions(state, asked, params.context.only, ls.source_of, False)
        return notebooks.actions_in_cells(found, notebook, span)
    caps = ls.client_capabilities
    versioned = get_capability(caps, "workspace.workspace_edit.document_changes", False)
    only = params.context.only
    return convert.lsp_code_actions(state, params.range, only, ls.source_of, versioned)


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ParamlensServer, params: lsp.HoverParams) -> lsp.Hover | None:
    state = ls.documents.get(params.text_document.uri)
    if state is None:
        cell = ls.cell_of(params.text_document.uri)
        if cell is None:
            return None
        state, notebook, span = cell
        if not 0 <= params.position.line < span.line_count:
            return None
        with notebooks.stale_if_broken(state, notebook, span):
            hover = convert.lsp_hover(state, span.first_line + params.position.line)
        return notebooks.hover_in_cell(hover, span)
    return convert.lsp_hover(state, params.position.line + 1)


@server.command(convert.SUMMARY_COMMAND)
def summary_command(ls: ParamlensServer, *arguments: Any) -> dict[str, Any]:
    """Arguments: document URI, class name, and optionally "table" or "markdown"."""
    if len(arguments) < 2 or not all(isinstance(a, str) for a in arguments):
        return {"error": "paramlens.summary takes [uri, className, format?]"}
    uri, class_name, fmt = (*arguments, "table")[:3]
    state = ls.documents.get(uri)
    model = state.model_named(class_name) if state else None
    if model is None:
        return {"error": f"no results for {class_name} yet: open and save the file first"}
    root = ls.root_for(state.path).path if state else None
    if fmt == "markdown":
        text = render.render_summary_markdown(model, 3, root)
    else:
        text = render.render_summary_table(model, 3, root)
    return {"text": text, "model": render.model_json(model)}


@server.command(convert.MODELS_COMMAND)
def models_command(ls: ParamlensServer, *arguments: Any) -> dict[str, Any]:
    """Arguments: document URI."""
    if len(arguments) != 1 or not isinstance(arguments[0], str):
        return {"error": "paramlens.models takes [uri]"}
    state = ls.documents.get(arguments[0])
    if state is None:
        return {"models": []}
    return {"models": [{"name": m.name, "line": line} for m, line in state.models()]}


@server.feature(lsp.SHUTDOWN)
def on_shutdown(ls: ParamlensServer, params: None) -> None:
    ls.stop()


def run(tcp: str | None = None) -> None:
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
