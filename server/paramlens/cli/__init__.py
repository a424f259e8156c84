"""The terminal front end: ``paramlens annotate``, ``summary``, ``memory`` and ``lsp``.

This module parses the arguments, starts the worker early and ends the process (exit
codes: :mod:`.exits`). A run that needs the worker starts it first thing, before the rest
of paramlens is imported (what the commands do is :mod:`.commands`, imported late for
that): torch imports meanwhile. So this module stays cheap to import: at module level
only the standard library, :mod:`paramlens.config`, :mod:`.exits` and the stdlib-only
:mod:`paramlens.engine.spawn`; never asyncio, the engine or render. :mod:`.commands`
never imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .. import __version__, config
from ..engine.spawn import start_worker, worker_python
from .exits import EXIT_USAGE, Started, UsageError, command_settings, fail

FORMATS = ("table", "markdown", "json")  # render.Format's, before render is imported


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
            help="the training step in float32 (default), under bf16/fp16 autocast (mixed "
            "precision), or with bfloat16 weights (bf16-pure)",
        )
        p.add_argument(
            "--batch",
            type=_depth,
            metavar="N",
            help="the training step's batch size (default: the example input's own)",
        )
        p.add_argument(
            "--optimizer",
            choices=config.OPTIMIZERS,
            help="the optimizer whose step and state count (default adamw)",
        )
        p.add_argument(
            "--attention",
            choices=config.ATTENTIONS,
            help="the scaled_dot_product_attention kernel assumed (default auto: the GPU's)",
        )
        p.add_argument(
            "--checkpoint",
            action="append",
            metavar="NAME",
            help="a module class whose activations are recomputed in backward "
            "(activation checkpointing); repeat for several",
        )
        p.add_argument(
            "--loss",
            metavar="EXPR",
            help="the loss, an expression of `output` such as 'output.loss' (default: the sum "
            "of the output's floating tensors)",
        )
        p.add_argument(
            "--gpu",
            metavar="CARD",
            help="the card to fit the step in: a size such as 24GB, or a card such as "
            "A100-80GB, H100, 'RTX 4090'",
        )
        p.add_argument(
            "--gpus",
            type=int,
            metavar="N",
            help="training spread over N GPUs: one GPU's step, at --batch each (default 1)",
        )
        p.add_argument(
            "--strategy",
            choices=config.STRATEGIES,
            help="how training is spread over --gpus: ddp (default), zero1, zero2, zero3 or "
            "fsdp (torch's FSDP2, the same as zero3)",
        )
        p.add_argument(
            "--wrap",
            action="append",
            metavar="NAME",
            help="a module class FSDP shards as one unit (default: the repeated blocks); "
            "repeat for several",
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
    summary.add_argument("--format", choices=FORMATS, default="table", help="output format")
    engine_options(summary)

    memory = commands.add_parser(
        "memory", help="the peak memory of one training step, and whether it fits a GPU"
    )
    memory.add_argument("target", help="FILE, FILE::Class or FOLDER")
    memory.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    memory.add_argument(
        "--top", type=_depth, default=10, help="modules listed, by memory kept (default 10)"
    )
    engine_options(memory)

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


def _target(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The resolved path the command is about, and the class a summary names (``::Class``)."""
    if args.command == "annotate":
        path = args.file.resolve()
        if not path.exists():
            raise UsageError(f"{args.file}: no such file or folder")
        return path, None
    file_part, _, class_name = args.target.partition("::")
    path = Path(file_part).resolve()
    if not path.exists():
        raise UsageError(f"{file_part}: no such file or folder")
    if class_name and not path.is_file():
        raise UsageError(f"{args.target}: '::Class' needs a file")
    return path, class_name or None


def _start_worker_early(args: argparse.Namespace) -> Started | None:
    """The worker, started now if the run needs it: without a cache, or for a workspace
    never analysed. One analysed before may be answered from the cache: its worker
    starts only if a job misses, and a fully cached run never imports torch (the engine
    decides the same way, with the same files, and adopts this process)."""
    root: Path = args.root
    folder = None if args.no_cache else config.cache_folder()
    if folder is not None and config.scan_file(folder, root).is_file():
        return None
    settings, _ = command_settings(args.path, args)
    python = worker_python(root, settings.python)
    try:
        return python, start_worker(python)
    except OSError:
        return None  # the engine tries again, and says why it cannot start


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    if args.command == "lsp":
        from ..lsp.server import run

        run(args.tcp)
        return
    try:
        args.input_expression = input_expression(args.input, args.dtype) if args.input else None
        args.path, args.class_name = _target(args)
        found = config.find_root(args.path)
        args.root, args.loose = found.path, found.loose
    except UsageError as exc:
        _exit(fail(exc, EXIT_USAGE))
    started = _start_worker_early(args)
    from . import commands  # the rest of paramlens imports while the worker imports torch

    _exit(commands.run(args, started))


def _exit(code: int) -> NoReturn:
    """End the command: flush what it printed, then skip the interpreter's teardown (20 ms
    of freeing what the system frees at exit anyway), as the worker does."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # ValueError: closed
            stream.flush()
    os._exit(code)
