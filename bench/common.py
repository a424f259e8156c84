"""Measuring helpers for the benchmarks: wall time and peak memory of a process tree."""

from __future__ import annotations

import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
PACKAGE = REPO / "server" / "paramlens"


def bytecode(from_source: bool) -> str:
    """paramlens's bytecode as an install leaves it, and a line saying so.

    pip compiles a wheel's modules when it installs them, and an editable install writes
    them on its first import; this machine sets PYTHONDONTWRITEBYTECODE=1, under which
    every run compiled paramlens from source (the CLI and the worker: 5,000 lines).
    ``from_source`` measures that instead: no bytecode, none written."""
    if from_source:
        for folder in PACKAGE.rglob("__pycache__"):
            shutil.rmtree(folder)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        return "paramlens compiled from source on every run (no bytecode)"
    compileall.compile_dir(PACKAGE, quiet=1)
    return "paramlens's bytecode written first, as installing it does"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (a forked child's torch) are not counted twice."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(root: int) -> float:
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _pss_kb(pid)
        stack.extend(_children(pid))
    return total / 1024


@dataclass
class Run:
    seconds: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str


def measure(
    command: Sequence[str], env: dict[str, str] | None = None, interval: float = 0.01
) -> Run:
    """Run ``command``; sample the PSS of its whole process tree until it exits."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_pss_mb(process.pid))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return Run(seconds, peak, process.returncode, stdout, stderr)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def paramlens_summary(file: Path, name: str, *flags: str) -> tuple[float, float, dict]:
    """A cold ``paramlens summary FILE::Class --format json --no-cache``: seconds, peak PSS
    of its process tree (MB), and the model's JSON."""
    run = measure(
        [
            sys.executable,
            "-m",
            "paramlens",
            "summary",
            f"{file}::{name}",
            "--format",
            "json",
            "--no-cache",
            *flags,
        ]
    )
    if run.returncode != 0:
        raise SystemExit(f"paramlens failed on {file}::{name}:\n{run.stderr}")
    [model] = json.loads(run.stdout)["models"]
    return run.seconds, run.peak_mb, model
