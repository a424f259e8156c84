"""The ``paramlens`` command line: ``annotate``, ``summary`` and ``lsp``.

Exit codes: 0 every model was built; 1 some model could not be built (its
``file:line: message`` is printed on stderr); 2 usage error or bad path; 3 no
``nn.Module`` subclass found; 4 the worker could not start (e.g. no torch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, config, render
from .config import Settings, cache_folder
from .discovery import find_root
from .engine import Engine, FileReport
from .worker.protocol import ErrorInfo, ModelResult
from .worker_client import WorkerError

EXIT_OK, EXIT_BUILD_ERROR, EXIT_USAGE, EXIT_NO_MODELS, EXIT_WORKER = 0, 1, 2, 3, 4


class UsageError(Exception):
    pass


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
            "--no-cache", action="store_true", help="build again even if nothing changed"
        )
        p.add_argument(
            "-v", "--verbose", action="store_true", help="also print isolation layers and timings"
        )

    annotate = commands.add_parser(
        "annotate", help="print a file with each layer's parameter count"
    )
    annotate.add_argument("file", type=Path)
    engine_options(annotate)

    summary = commands.add_parser("summary", help="torchinfo-style table of each model")
    summary.add_argument("target", help="FILE, FILE::Class or FOLDER")
    summary.add_argument("--depth", type=int, default=3, help="depth of the layer tree (default 3)")
    summary.add_argument(
        "--format", choices=[f.value for f in render.Format], default="table", help="output format"
    )
    engine_options(summary)

    lsp = commands.add_parser("lsp", help="run the language server (stdio by default)")
    lsp.add_argument(
        "--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (for debugging)"
    )
    return parser


def _settings(target: Path, args: argparse.Namespace) -> tuple[Settings, list[str]]:
    settings, problems = config.from_pyproject(target)
    flags = {
        "python": args.python,
        "timeout": args.timeout,
        "memory_mb": args.memory_mb,
        "device": args.device,
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

    return Engine(settings_for, log, None if args.no_cache else cache_folder()), problems


def _where(model: ModelResult) -> str:
    error = model.error
    assert error is not None
    file = error.file or model.file
    with contextlib.suppress(ValueError):
        file = str(Path(file).relative_to(Path.cwd()))
    return f"{file}:{error.line or model.line}"


def _report_errors(syntax_errors: Sequence[ErrorInfo], models: Sequence[ModelResult]) -> int:
    """Print ``file:line: message`` for what failed; the exit code that says so."""
    code = EXIT_OK
    for error in syntax_errors:
        print(f"{error.file}:{error.line or 1}: {error.message}", file=sys.stderr)
        code = EXIT_BUILD_ERROR
    for model in models:
        if model.error is None:
            continue
        if model.error.kind == "needs-args" and render.measured_elsewhere(model, models):
            continue  # its figures come from its factories or from the models that use it
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
    print(f"paramlens: jobs run: {engine.jobs_run}", file=sys.stderr)


async def _annotate(args: argparse.Namespace) -> int:
    path = args.file.resolve()
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    root = find_root(path)
    engine, problems = _engine(args)
    try:
        report = await engine.analyze(str(path), root)
    finally:
        await engine.close()
    for problem in problems:
        print(f"paramlens: {problem}", file=sys.stderr)
    sys.stdout.write(
        render.render_annotated(path.read_text(encoding="utf-8"), report.models, report.lines)
    )
    if args.verbose:
        _verbose([report], engine)
    if not report.models and report.syntax_error is None:
        print(f"paramlens: no nn.Module subclass found in {args.file}", file=sys.stderr)
        return EXIT_NO_MODELS
    return _report_errors(_syntax_errors([report]), report.models)


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
        workspace = await engine.read_workspace(root)
        if path.is_dir():
            files = [
                p
                for p in sorted(workspace.files)
                if Path(p).is_relative_to(path)
                and (
                    workspace.models_in(p)
                    or workspace.factories_in(p)
                    or workspace.files[p].syntax_error is not None
                )
            ]
        else:
            files = [str(path)]
        reports = await asyncio.gather(*(engine.report(p, workspace) for p in files))
        engine.save_scan()
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
        print(json.dumps(render.render_json(models, extra), indent=2))
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
    return _report_errors(_syntax_errors(reports), models)


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
        code = asyncio.run(runner(args))
    except UsageError as exc:
        print(f"paramlens: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except WorkerError as exc:
        print(f"paramlens: error: {exc}", file=sys.stderr)
        code = EXIT_WORKER
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `paramlens summary ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)
