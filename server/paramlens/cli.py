"""The ``paramlens`` command line: ``annotate``, ``summary`` and ``lsp``.

Exit codes: 0 every model was built; 1 some model could not be built (its
``file:line: message`` is printed on stderr); 2 usage error or bad path; 3 no
``nn.Module`` subclass found; 4 the worker could not start (e.g. no torch); 5 the
worker died during the run (the OOM killer, a ``kill -9``), named with the class it was
building.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from . import __version__, config, render
from .config import Settings, cache_folder
from .discovery import SourceError, Workspace, find_root, read_source, relative_path
from .engine import Engine, FileReport
from .worker.protocol import ErrorInfo, ModelResult
from .worker_client import State, WorkerDied, WorkerError

EXIT_OK, EXIT_BUILD_ERROR, EXIT_USAGE, EXIT_NO_MODELS, EXIT_WORKER = 0, 1, 2, 3, 4
EXIT_WORKER_DIED = 5  # the worker started, then died mid-run (OOM killer, kill -9)


class UsageError(Exception):
    pass


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paramlens",
        description="Parameter counts, shapes and totals of the PyTorch models in your code.",
    )
    parser.add_argument("--version", action="version", version=f"paramlens {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def engine_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--python",
            help="interpreter that has torch (default: the workspace's .venv, else this one)",
        )
        p.add_argument(
            "--timeout", type=float, help="seconds allowed to build one model (default 10)"
        )
        p.add_argument("--memory-mb", type=int, help="memory cap of a build in MB (default 2048)")
        p.add_argument("--device", choices=config.DEVICES, help="where to build (default meta)")
        p.add_argument(
            "--input",
            action="append",
            metavar="SHAPE",
            help="forward()'s example input, as torchinfo's input_size: '1,3,224,224' "
            "(repeat for several arguments), or a Python expression such as "
            "'torch.randint(0, 50257, (1, 1024))' (default: [tool.paramlens.inputs], else a "
            "guess from the first layer)",
        )
        p.add_argument(
            "--dtype",
            default="float32",
            help="dtype of the --input shapes: float32 (default), float16, bfloat16, long...",
        )
        p.add_argument(
            "--no-shapes", action="store_true", help="parameters only: do not run forward()"
        )
        p.add_argument(
            "--precision",
            choices=config.PRECISIONS,
            help="training memory in float32 (default), or under bf16/fp16 autocast (mixed "
            "precision)",
        )
        p.add_argument(
            "--no-cache", action="store_true", help="build again even if nothing changed"
        )
        p.add_argument(
            "-v", "--verbose", action="store_true", help="also print isolation layers and timings"
        )

    annotate = commands.add_parser(
        "annotate", help="print a file with each layer's parameter count"
    )
    annotate.add_argument(
        "file", type=Path, metavar="PATH", help="a file, or a folder: each of its model files"
    )
    engine_options(annotate)

    summary = commands.add_parser("summary", help="torchinfo-style table of each model")
    summary.add_argument("target", help="FILE, FILE::Class or FOLDER")
    summary.add_argument(
        "--depth", type=_depth, default=3, help="depth of the layer tree (default 3)"
    )
    summary.add_argument(
        "--format", choices=[f.value for f in render.Format], default="table", help="output format"
    )
    engine_options(summary)

    lsp = commands.add_parser("lsp", help="run the language server (stdio by default)")
    lsp.add_argument(
        "--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (for debugging)"
    )
    return parser


_INTEGER_DTYPES = ("long", "int", "int64", "int32", "int16", "int8", "uint8", "bool")


def input_expression(shapes: Sequence[str], dtype: str) -> str:
    """``--input 1,3,224,224 --dtype bfloat16`` as the expression forward() is called with
    (several --input: a tuple of positional arguments). Raises UsageError."""
    if not dtype.isidentifier():
        raise UsageError(f"--dtype {dtype!r}: expected a torch dtype name such as float16")
    parts = []
    for shape in shapes:
        if "(" in shape:  # already an expression
            parts.append(shape)
            continue
        try:
            dims = [int(d) for d in shape.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise UsageError(f"--input {shape!r}: expected sizes such as 1,3,224,224") from None
        if not dims or any(d < 0 for d in dims):
            raise UsageError(f"--input {shape!r}: expected sizes such as 1,3,224,224")
        size = ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "")
        if dtype in _INTEGER_DTYPES:
            parts.append(f"torch.randint(0, 2, ({size}), dtype=torch.{dtype})")
        elif dtype == "float32":
            parts.append(f"torch.randn({size.rstrip(',')})")
        else:
            parts.append(f"torch.randn({size.rstrip(',')}, dtype=torch.{dtype})")
    return parts[0] if len(parts) == 1 else f"({', '.join(parts)})"


def _settings(target: Path, args: argparse.Namespace) -> tuple[Settings, list[str]]:
    settings, problems = config.from_pyproject(target)
    flags = {
        "python": args.python,
        "timeout": args.timeout,
        "memory_mb": args.memory_mb,
        "device": args.device,
        "inputs": {"*": args.input_expression} if args.input_expression else None,
        "shapes": False if args.no_shapes else None,
        "precision": args.precision,
    }
    settings, more = config.merge(
        settings, {k: v for k, v in flags.items() if v is not None}, "command line"
    )
    return settings, problems + more


def _engine(args: argparse.Namespace) -> tuple[Engine, list[str]]:
    problems: list[str] = []

    def settings_for(path: Path) -> Settings:
        settings, found = _settings(path, args)
        problems.extend(p for p in found if p not in problems)
        return settings

    def log(message: str) -> None:
        if args.verbose:
            print(f"paramlens: {message}", file=sys.stderr)

    # a summary table or markdown shows no shapes of forward()'s own lines: none are traced
    shown = getattr(args, "format", "json") == render.Format.JSON.value
    folder = None if args.no_cache else cache_folder()
    return Engine(settings_for, log, folder, line_shapes=shown), problems


def _where(model: ModelResult, error: ErrorInfo | None = None) -> str:
    """``file:line`` of ``error`` (default: the model's), relative to the current folder."""
    error = error or model.error
    file = (error.file if error else None) or model.file
    with contextlib.suppress(ValueError):
        file = str(Path(file).relative_to(Path.cwd()))
    return f"{file}:{(error.line if error else None) or model.line}"


def _report_errors(
    syntax_errors: Sequence[ErrorInfo], models: Sequence[ModelResult], notes_shown: bool = False
) -> int:
    """Print ``file:line: message`` for what failed; the exit code that says so.

    ``notes_shown``: the output already says which classes need arguments and how to fix it
    (a summary table), so stderr does not say it again.
    """
    code = EXIT_OK
    for error in syntax_errors:
        print(f"{error.file}:{error.line or 1}: {error.message}", file=sys.stderr)
        code = EXIT_BUILD_ERROR
    for model in models:
        forward = model.forward
        if model.error is None and forward is not None and forward.code_at_fault():
            assert forward.error is not None
            # with an input the user gave, a failure; with a guess, a note
            where = _where(model, forward.error)
            label = "note: " if forward.guessed else ""
            print(
                f"{where}: {label}{model.name}: forward(): {forward.error.message}", file=sys.stderr
            )
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
                f"{_where(model)}: note: {model.error.message}; to build it alone, add to "
                f"pyproject.toml:\n    {hint}",
                file=sys.stderr,
            )
            continue
        print(f"{_where(model)}: {model.name}: {model.error.message}", file=sys.stderr)
        code = EXIT_BUILD_ERROR
    return code


def _syntax_errors(reports: Sequence[FileReport]) -> list[ErrorInfo]:
    return [r.syntax_error for r in reports if r.syntax_error is not None]


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
    return list(reports)


async def _target_reports(
    engine: Engine, root: Path, path: Path, progress: _Progress, detail: bool = False
) -> tuple[list[FileReport], Workspace | None]:
    """The reports for a file or a folder. A file whose workspace did not change since a
    run that saved its answer is answered from it, without reading or parsing any source."""
    key = engine.answer_key(root, path, detail) if path.is_file() else None
    saved = engine.saved_answer(key) if key is not None else None
    if saved is not None:
        return saved, None
    workspace = await engine.read_workspace(root)
    files = _model_files(workspace, path) if path.is_dir() else [str(path)]
    reports = await _reports(engine, workspace, files, progress, detail)
    if key is not None:
        engine.save_answer(key, reports)
    return reports, workspace


async def _annotate(args: argparse.Namespace) -> int:
    path = args.file.resolve()
    if not path.exists():
        raise UsageError(f"{args.file}: no such file or folder")
    root = find_root(path)
    engine, problems = _engine(args)
    try:
        engine.start_worker_unless_cached(str(path), root)
        async with _Progress(engine) as progress:
            reports, workspace = await _target_reports(engine, root, path, progress)
    finally:
        await engine.close()
    for problem in problems:
        print(f"paramlens: {problem}", file=sys.stderr)
    for number, report in enumerate(reports):
        if path.is_dir():  # several files, each under its name, as `head` shows them
            sys.stdout.write(f"{'' if number == 0 else chr(10)}==> {_relative(report.path)} <==\n")
        sys.stdout.write(_annotated(report, workspace))
    if args.verbose:
        _verbose(reports, engine)
    models = [m for r in reports for m in r.models]
    if not models and not _syntax_errors(reports):
        print(f"paramlens: no nn.Module subclass found in {args.file}", file=sys.stderr)
        return EXIT_NO_MODELS
    return _report_errors(_syntax_errors(reports), models)


def _annotated(report: FileReport, workspace: Workspace | None) -> str:
    """The file annotated, from the text the scan read (the same the figures come from),
    else (an answer saved for this very workspace) from the disk."""
    info = workspace.files.get(report.path) if workspace is not None else None
    source = info.text if info is not None else ""
    if not source:  # not scanned (a skipped folder), or not valid source text
        try:
            source = read_source(Path(report.path))
        except (OSError, SourceError):
            return ""  # its error is reported with the others
    return render.render_annotated(source, report.models, report.lines)


def _targets(target: str) -> tuple[Path, str | None]:
    file_part, _, class_name = target.partition("::")
    path = Path(file_part).resolve()
    if not path.exists():
        raise UsageError(f"{file_part}: no such file or folder")
    if class_name and not path.is_file():
        raise UsageError(f"{target}: '::Class' needs a file")
    return path, class_name or None


async def _summary(args: argparse.Namespace) -> int:
    path, class_name = _targets(args.target)
    root = find_root(path)
    engine, problems = _engine(args)
    try:
        engine.start_worker_unless_cached(str(path), root)
        async with _Progress(engine) as progress:
            # One model asked for by name: every factory gets its full layer tree.
            detail = class_name is not None
            reports, _ = await _target_reports(engine, root, path, progress, detail)
    finally:
        await engine.close()
    for problem in problems:
        print(f"paramlens: {problem}", file=sys.stderr)
    models = [m for r in reports for m in r.models]
    if class_name is not None:
        models = [m for m in models if m.name == class_name]
        if not models:
            names = ", ".join(m.name for r in reports for m in r.models) or "none"
            raise UsageError(
                f"{args.target}: no nn.Module class {class_name!r} (models found: {names})"
            )
    fmt = render.Format(args.format)
    if fmt is render.Format.JSON:
        extra = {
            "root": str(root),
            "isolation": sorted({layer for r in reports for layer in r.isolation}),
            "errors": _syntax_errors(reports),
        }
        # indented for a person at a terminal; compact (and ten times quicker: json's C
        # encoder) for a program reading a pipe, as `gh --json` does
        indent = 2 if sys.stdout.isatty() else None
        print(render.render_json(models, extra, indent))
    else:
        draw = (
            render.render_summary_table
            if fmt is render.Format.TABLE
            else render.render_summary_markdown
        )
        print("\n".join(draw(m, args.depth, root) for m in models), end="")
    if args.verbose:
        _verbose(reports, engine)
    if not models and not any(r.syntax_error for r in reports):
        print(f"paramlens: no nn.Module subclass found in {args.target}", file=sys.stderr)
        return EXIT_NO_MODELS
    return _report_errors(
        _syntax_errors(reports), models, notes_shown=fmt is not render.Format.JSON
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    if args.command == "lsp":
        from .lsp.server import run

        run(args.tcp)
        return
    runner = _annotate if args.command == "annotate" else _summary
    try:
        args.input_expression = input_expression(args.input, args.dtype) if args.input else None
        code = asyncio.run(runner(args))
    except UsageError as exc:
        print(f"paramlens: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except WorkerDied as exc:
        print(f"paramlens: error: {exc}", file=sys.stderr)
        code = EXIT_WORKER_DIED
    except WorkerError as exc:
        print(f"paramlens: error: {exc}", file=sys.stderr)
        code = EXIT_WORKER
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `paramlens summary ... | head`: the reader has all it wants
        code = EXIT_OK
    _exit(code)


def _exit(code: int) -> NoReturn:
    """End the command: flush what it printed, then skip the interpreter's teardown (20 ms
    of freeing what the system frees at exit anyway), as the worker does."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # ValueError: closed
            stream.flush()
    os._exit(code)
