"""What the command line's two halves share: exit codes, usage errors, the worker started
early and the settings of a run. Imported by :mod:`paramlens.cli` at start-up and by
:mod:`.commands`; cheap to import (the standard library and :mod:`paramlens.config` only).

Exit codes: 0 every model was built; 1 some model could not be built (its
``file:line: message`` is printed on stderr); 2 usage error or bad path; 3 no
``nn.Module`` subclass found; 4 the worker could not start (e.g. no torch); 5 the
worker died during the run (the OOM killer, a ``kill -9``), named with the class it was
building.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .. import config
from ..config import Settings

EXIT_OK, EXIT_BUILD_ERROR, EXIT_USAGE, EXIT_NO_MODELS, EXIT_WORKER = 0, 1, 2, 3, 4
EXIT_WORKER_DIED = 5  # the worker started, then died mid-run (OOM killer, kill -9)

Started = tuple[str, subprocess.Popen[bytes]]  # a worker started early, for that python


class UsageError(Exception):
    pass


def fail(error: Exception, code: int) -> int:
    print(f"paramlens: error: {error}", file=sys.stderr)
    return code


def command_settings(target: Path, args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """The settings for ``target``: its pyproject.toml's, then the command line's flags."""
    settings, problems = config.from_pyproject(target)
    flags = {
        "python": args.python,
        "timeout": args.timeout,
        "memory_mb": args.memory_mb,
        "device": args.device,
        "inputs": {"*": args.input_expression} if args.input_expression else None,
        "shapes": False if args.no_shapes else None,
        "precision": args.precision,
        "batch": args.batch,
        "optimizer": args.optimizer,
        "attention": args.attention,
        "checkpoint": args.checkpoint,
        "loss": args.loss,
        "gpu": args.gpu,
        "gpus": args.gpus,
        "strategy": args.strategy,
        "wrap": args.wrap,
    }
    settings, more = config.merge(
        settings, {k: v for k, v in flags.items() if v is not None}, "command line"
    )
    return settings, problems + more
