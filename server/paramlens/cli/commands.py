"""What ``paramlens annotate``, ``summary`` and ``memory`` do: build through the engine,
print the answer, report what failed at its line, and give the exit code. Called by
:mod:`paramlens.cli`, which parses the arguments and may have started the worker already;
never imports it (what both need is :mod:`.exits`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from .. import render
from ..analysis.notebook import NotebookSource, is_notebook, load_notebook
from ..analysis.reading import relative_path
from ..analysis.source import SourceError, read_source
from ..analysis.workspace import Workspace
from ..config import Settings, cache_folder
from ..engine.engine import Engine, FileReport
from ..engine.lines import held_instances, with_instances_anywhere
from ..engine.worker_client import State, WorkerDied, WorkerError
from ..worker.protocol import ErrorInfo, ModelResult
from .exits import (
    EXIT_BUILD_ERROR,
    EXIT_NO_MODELS,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WORKER,
    EXIT_WORKER_DIED,
    Started,
    UsageError,
    command_settings,
    fail,
)


def run(args: argparse.Namespace, started: Started | None) -> int:
    """Run ``args.command`` (annotate or summary); its exit code."""
    runner = {"annotate": _annotate, "summary": _summary, "memory": _memory}[args.command]
    try:
        return asyncio.run(runner(args, started))
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    except WorkerDied as exc:
        return fail(exc, EXIT_WORKER_DIED)
    except WorkerError as exc:
        return fail(exc, EXIT_WORKER)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `paramlens summary ... | head`: the reader has all it wants
        return EXIT_OK


def _engine(args: argparse.Namespace, started: Started | None) -> tuple[Engine, list[str]]:
    problems: list[str] = []

    def settings_for(path: Path) -> Settings:
        settings, found = command_settings(path, args)
        problems.extend(p for p in found if p not in problems)
        return settings

    def log(message: str) -> None:
        if args.verbose:
            print(f"paramlens: {message}", file=sys.stderr)

    # a summary table or markdown shows no shapes of forward()'s own lines: none are traced
    shown = getattr(args, "format", "json") == render.Format.JSON.value
    folder = None if args.no_cache else cache_folder()
    engine = Engine(settings_for, log, folder, line_shapes=shown)
    if started is not None:
        engine.adopt_worker(*started)
    return engine, problems


def _where(
    model: ModelResult, error: ErrorInfo | None = None, cells: render.CellLocator = render.no_cells
) -> str:
    """``file:line`` of ``error`` (default: the model's), relative to the current folder;
    ``file:In[cell]:line`` in a notebook."""
    error = error or model.error
    file = (error.file if error else None) or model.file
    line = (error.line if error else None) or model.line
    return render.render_location(file, line, _relative(file), cells)


def _report_errors(
    syntax_errors: Sequence[ErrorInfo],
    models: Sequence[ModelResult],
    notes_shown: bool = False,
    cells: render.CellLocator = render.no_cells,
) -> int:
    """Print ``file:line: message`` for what failed; the exit code that says so.

    ``notes_shown``: the output already says which classes need arguments and how to fix it
    (a summary table), so stderr does not say it again.
    """
    code = EXIT_OK
    for error in syntax_errors:
        file = error.file or ""
        where = render.render_location(file, error.line or 1, file, cells)
        print(f"{where}: {error.message}", file=sys.stderr)
        code = EXIT_BUILD_ERROR
    for model in models:
        forward = model.forward
        if model.error is None and forward is not None and forward.code_at_fault():
            assert forward.error is not None
            # with an input the user gave, a failure; with a guess, a note
            where = _where(model, forward.error, cells)
            label = "note: " if forward.guessed else ""
            message = forward.error.message
            if forward.declared is not None:
                declared = forward.declared[1]
                message = render.declared_in_cell(message, declared, cells(*forward.declared))
            print(f"{where}: {label}{model.name}: forward(): {message}", file=sys.stderr)
            code = code if forward.guessed else EXIT_BUILD_ERROR
        if model.error is None:
            continue
        if model.error.kind == "needs-args" and render.measured_elsewhere(model, models):
            continue  # its figures come from its factories or from the models that use it
        if model.error.kind == "needs-args" and notes_shown:
            continue
        if model.error.kind == "needs-args":  # information, not a failure
            hint = model.error.traceback.replace("\n", "\n    ")
            print(
                f"{_where(model, cells=cells)}: note: {model.error.message}; to build it "
                f"alone, add to pyproject.toml:\n    {hint}",
                file=sys.stderr,
            )
            continue
        print(f"{_where(model, cells=cells)}: {model.name}: {model.error.message}", file=sys.stderr)
        code = EXIT_BUILD_ERROR
    return code


def _print_problems(problems: Sequence[str], reports: Sequence[FileReport]) -> None:
    """The settings' problems, then whether the workspace scan stopped early (and how to
    widen it): the figures may lack what the unread files would have told."""
    for problem in problems:
        print(f"paramlens: {problem}", file=sys.stderr)
    # a folder's files share one pyproject.toml: each of its problems said once
    for found in dict.fromkeys(p for r in reports for p in r.settings_problems):
        where = f"{_relative(found.file)}:{found.line}" if found.file else "paramlens"
        print(f"{where}: warning: {found.message}", file=sys.stderr)
    for cut_short in dict.fromkeys(r.cut_short for r in reports if r.cut_short):
        print(f"paramlens: note: {cut_short}", file=sys.stderr)


def _syntax_errors(
    reports: Sequence[FileReport], notebooks: Mapping[str, NotebookSource]
) -> list[ErrorInfo]:
    """Files that are not valid source, and notebook cells left out for not compiling."""
    found = [r.syntax_error for r in reports if r.syntax_error is not None]
    for path, notebook in notebooks.items():
        found += [ErrorInfo(e.message, path, e.module_line, "syntax") for e in notebook.errors]
    return found


def _notebooks(reports: Sequence[FileReport]) -> dict[str, NotebookSource]:
    """The notebooks among the reports' files (as the scan read them: read once)."""
    found = {}
    for report in reports:
        if is_notebook(report.path) and report.syntax_error is None:
            with contextlib.suppress(OSError, SourceError):
                found[report.path] = load_notebook(Path(report.path))
    return found


def _verbose(reports: Sequence[FileReport], engine: Engine) -> None:
    layers = sorted({layer for r in reports for layer in r.isolation})
    notes = sorted({note for r in reports for note in r.notes})
    print(f"paramlens: isolation: {'; '.join(layers) or 'none (cached)'}", file=sys.stderr)
    for note in notes:
        print(f"paramlens: note: {note}", file=sys.stderr)
    for model in (m for r in reports for m in r.models):
        where = f"{_relative(model.file)}:{model.line}"
        if model.error is not None:
            outcome = f"not built ({model.error.kind})"
        else:
            outcome = f"built on {model.device} in {model.build_ms:,.1f} ms"
        print(f"paramlens: {where}: {model.name}: {outcome}", file=sys.stderr)
    cached = " (every result from the cache)" if engine.jobs_run == 0 else ""
    print(f"paramlens: jobs run: {engine.jobs_run}{cached}", file=sys.stderr)


def _relative(path: str) -> str:
    return relative_path(path, Path.cwd())


class _Progress:
    """One status line on stderr while a run works, as pip and pytest show: whether the
    worker is starting, how many models are done. Only on a terminal, and only once a run
    takes long enough to need it; the line is erased when the run ends."""

    DELAY_S = 0.5

    def __init__(self, engine: Engine, stream: TextIO | None = None) -> None:
        self.engine = engine
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.stage = "reading the workspace"
        self.total = self.finished = 0
        self.started = time.monotonic()
        self.drawn = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Progress:
        if self.enabled:
            self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.drawn:
            self._write("\r\x1b[K")

    def expect(self, total: int) -> None:
        self.stage, self.total = "", total

    async def counted(self, work: Awaitable[FileReport], models: int) -> FileReport:
        try:
            return await work
        finally:
            self.finished += models
            self._draw()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.started
        if not self.enabled or elapsed < self.DELAY_S:
            return
        parts = [self.stage] if self.stage else []
        if any(w.state is State.STARTING for w in self.engine.workers.values()):
            parts.append("starting the PyTorch worker")
        if self.total:
            parts.append(f"{self.finished} of {self.total} models done")
        self._write(f"\r\x1b[Kparamlens: {' · '.join(parts)} ({elapsed:.0f} s)")
        self.drawn = True

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._draw()


def _model_count(workspace: Workspace, path: str) -> int:
    return len(workspace.models_in(path)) + len(workspace.factories_in(path))


def _model_files(workspace: Workspace, folder: Path) -> list[str]:
    """The files under ``folder`` that paramlens has something to say about."""
    return [
        p
        for p in sorted(workspace.files)
        if Path(p).is_relative_to(folder)
        and (_model_count(workspace, p) or workspace.files[p].syntax_error is not None)
    ]


async def _reports(
    engine: Engine,
    workspace: Workspace,
    files: Sequence[str],
    progress: _Progress,
    detail: bool = False,
) -> list[FileReport]:
    progress.expect(sum(_model_count(workspace, p) for p in files))
    work = (
        progress.counted(engine.report(p, workspace, detail=detail), _model_count(workspace, p))
        for p in files
    )
    reports = await asyncio.gather(*work)
    engine.save_scan()
    if len(reports) < 2:
        return list(reports)
    held = held_instances([m for r in reports for m in r.models])
    return [dataclasses.replace(r, models=with_instances_anywhere(r.models, held)) for r in reports]


async def _target_reports(
    engine: Engine,
    args: argparse.Namespace,
    progress: _Progress,
    detail: bool = False,
) -> tuple[list[FileReport], Workspace | None]:
    """The reports for a file or a folder. A file whose workspace did not change since a
    run that saved its answer is answered from it, without reading or parsing any source."""
    root: Path = args.root
    path: Path = args.path
    loose: bool = args.loose
    key = engine.answer_key(root, path, detail, loose) if path.is_file() else None
    saved = engine.saved_answer(key) if key is not None else None
    if saved is not None:
        return saved, None
    include = [str(path)] if path.is_file() else []
    workspace = await engine.read_workspace(root, loose=loose, include=include)
    files = _model_files(workspace, path) if path.is_dir() else [str(path)]
    reports = await _reports(engine, workspace, files, progress, detail)
    if key is not None:
        engine.save_answer(key, reports)
    return reports, workspace


async def _annotate(args: argparse.Namespace, started: Started | None) -> int:
    path: Path = args.path
    root: Path = args.root
    engine, problems = _engine(args, started)
    try:
        engine.start_worker_unless_cached(str(path), root)
        async with _Progress(engine) as progress:
            reports, workspace = await _target_reports(engine, args, progress)
    finally:
        await engine.close()
    _print_problems(problems, reports)
    notebooks = _notebooks(reports)
    for number, report in enumerate(reports):
        if path.is_dir():  # several files, each under its name, as `head` shows them
            sys.stdout.write(f"{'' if number == 0 else chr(10)}==> {_relative(report.path)} <==\n")
        sys.stdout.write(_annotated(report, workspace, notebooks.get(report.path)))
    if args.verbose:
        _verbose(reports, engine)
    models = [m for r in reports for m in r.models]
    syntax_errors = _syntax_errors(reports, notebooks)
    if not models and not syntax_errors:
        print(f"paramlens: no nn.Module subclass found in {args.file}", file=sys.stderr)
        return EXIT_NO_MODELS
    return _report_errors(syntax_errors, models, cells=render.notebook_cells(notebooks))


def _annotated(
    report: FileReport, workspace: Workspace | None, notebook: NotebookSource | None = None
) -> str:
    """The file annotated, from the text the scan read (the same the figures come from),
    else (an answer saved for this very workspace) from the disk. A notebook: its cells
    as written, each under its ``# In [n]``."""
    if notebook is not None:
        return render.render_annotated_notebook(
            notebook, notebook.written, report.models, report.lines
        )
    info = workspace.files.get(report.path) if workspace is not None else None
    source = info.text if info is not None else ""
    if not source:  # not scanned (a skipped folder), or not valid source text
        try:
            source = read_source(Path(report.path))
        except (OSError, SourceError):
            return ""  # its error is reported with the others
    return render.render_annotated(source, report.models, report.lines)


async def _named_models(
    args: argparse.Namespace, started: Started | None
) -> tuple[list[FileReport], list[ModelResult], Engine]:
    """The reports for a summary's or memory's target, and its models (the one named by
    ``::Class``, else all); the settings' problems printed."""
    path: Path = args.path
    class_name: str | None = args.class_name
    root: Path = args.root
    engine, problems = _engine(args, started)
    try:
        engine.start_worker_unless_cached(str(path), root)
        async with _Progress(engine) as progress:
            # One model asked for by name: every factory gets its full layer tree.
            detail = class_name is not None
            reports, _ = await _target_reports(engine, args, progress, detail)
    finally:
        await engine.close()
    _print_problems(problems, reports)
    models = [m for r in reports for m in r.models]
    if class_name is not None:
        models = [m for m in models if m.name == class_name]
        if not models:
            names = ", ".join(m.name for r in reports for m in r.models) or "none"
            raise UsageError(
                f"{args.target}: no nn.Module class {class_name!r} (models found: {names})"
            )
    return reports, models, engine


def _json_extra(
    root: Path, reports: Sequence[FileReport], notebooks: Mapping[str, NotebookSource]
) -> dict[str, object]:
    return {
        "root": str(root),
        "isolation": sorted({layer for r in reports for layer in r.isolation}),
        "errors": _syntax_errors(reports, notebooks),
    }


def _indent() -> int | None:
    # indented for a person at a terminal; compact (and ten times quicker: json's C
    # encoder) for a program reading a pipe, as `gh --json` does
    return 2 if sys.stdout.isatty() else None


def _finish(
    args: argparse.Namespace,
    reports: Sequence[FileReport],
    models: Sequence[ModelResult],
    engine: Engine,
    notes_shown: bool,
    notebooks: Mapping[str, NotebookSource],
) -> int:
    if args.verbose:
        _verbose(reports, engine)
    syntax_errors = _syntax_errors(reports, notebooks)
    if not models and not syntax_errors:
        print(f"paramlens: no nn.Module subclass found in {args.target}", file=sys.stderr)
        return EXIT_NO_MODELS
    cells = render.notebook_cells(notebooks) if notebooks else render.no_cells
    return _report_errors(syntax_errors, models, notes_shown=notes_shown, cells=cells)


async def _summary(args: argparse.Namespace, started: Started | None) -> int:
    root: Path = args.root
    reports, models, engine = await _named_models(args, started)
    notebooks = _notebooks(reports)
    cells = render.notebook_cells(notebooks) if notebooks else render.no_cells
    fmt = render.Format(args.format)
    if fmt is render.Format.JSON:
        print(render.render_json(models, _json_extra(root, reports, notebooks), _indent(), cells))
    else:
        draw = (
            render.render_summary_table
            if fmt is render.Format.TABLE
            else render.render_summary_markdown
        )
        print("\n".join(draw(m, args.depth, root, cells) for m in models), end="")
    notes_shown = fmt is not render.Format.JSON
    return _finish(args, reports, models, engine, notes_shown, notebooks)


async def _memory(args: argparse.Namespace, started: Started | None) -> int:
    """``paramlens memory``: each model's simulated training step (exit codes as summary's)."""
    root: Path = args.root
    reports, models, engine = await _named_models(args, started)
    notebooks = _notebooks(reports)
    if args.format == "json":
        extra = _json_extra(root, reports, notebooks)
        print(render.memory.render_memory_json(models, extra, _indent()))
    else:
        tables = (render.memory.render_memory_table(m, args.top, root) for m in models)
        print("\n".join(tables), end="")
    return _finish(args, reports, models, engine, False, notebooks)
