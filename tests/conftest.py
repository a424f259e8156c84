"""Shared test fixtures. Tiers: unit (pure), worker (driven directly), cli and lsp (end to end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["PARAMLENS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def run_cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``paramlens`` command the way a user would."""
    return subprocess.run(
        [sys.executable, "-m", "paramlens", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def summary_json(target: str, *extra: str) -> dict:
    result = run_cli("summary", target, "--format", "json", *extra)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def model(doc: dict, name: str) -> dict:
    return next(m for m in doc["models"] if m["name"] == name)


def python_prints(script: str) -> list[str]:
    """The words a fresh interpreter (this one: it has torch) prints running ``script``."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def ipynb(*cells: str | tuple[str, str], outputs: list[object] | None = None) -> bytes:
    """An nbformat 4 notebook of code cells (or ``(kind, source)`` cells)."""
    items = []
    for cell in cells:
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        item: dict[str, object] = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            item.update(execution_count=None, outputs=outputs or [])
        items.append(item)
    return json.dumps({"cells": items, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
