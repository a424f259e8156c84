"""Shared test fixtures. Tiers: unit (pure), worker (driven directly), cli and lsp (end to end)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from torch import nn

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


def golden(name: str, actual: str) -> None:
    """``actual`` equals tests/cli/golden/``name`` (PARAMLENS_UPDATE_GOLDEN=1 writes it)."""
    path = REPO / "tests" / "cli" / "golden" / name
    if os.environ.get("PARAMLENS_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert actual == path.read_text()


def summary_json(target: str, *extra: str) -> dict:
    result = run_cli("summary", target, "--format", "json", *extra)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def model(doc: dict, name: str) -> dict:
    return next(m for m in doc["models"] if m["name"] == name)


def count(module: nn.Module) -> int:
    """The parameters of ``module`` as torch counts them: the ground truth."""
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def plain_package(folder: Path, package: str) -> Iterator[None]:
    """``package``, a fixture's under ``folder``, imported the plain way while inside (the
    ground truth), then forgotten."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
            del sys.modules[name]


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


# notebooks shared by the CLI and LSP tests, as code cells

LENET_CELLS = [
    "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n",
    "class LeNet(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.conv1 = nn.Conv2d(3, 6, 5)\n"
    "        self.pool = nn.MaxPool2d(2, 2)\n"
    "        self.conv2 = nn.Conv2d(6, 16, 5)\n"
    "        self.fc1 = nn.Linear(256, 120)\n"
    "        self.fc2 = nn.Linear(120, 84)\n"
    "\n"
    "    def forward(self, x):\n"
    "        x = self.pool(F.relu(self.conv1(x)))\n"
    "        x = self.pool(F.relu(self.conv2(x)))\n"
    "        return self.fc2(F.relu(self.fc1(x.flatten(1))))\n",
    "model = LeNet()\nout = model(torch.randn(1, 3, 32, 32))\n",
]

# A `from __future__` import runs in a kernel wherever it is in a cell, and applies from
# there on: Net's `-> Net` (a NameError without the flag) needs cell 2's import.
FUTURE_LATER = [
    "%load_ext autoreload\nimport torch\nfrom torch import nn\n",
    "from dataclasses import dataclass\nfrom __future__ import annotations\n\n\n"
    "@dataclass\nclass Config:\n    hidden: int = 32\n",
    "class Net(nn.Module):\n"
    "    def __init__(self, config: Config) -> None:\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(8, config.hidden)\n"
    "\n"
    "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    "        y = self.fc(x)\n"
    "        return y\n"
    "\n"
    "    def copy(self) -> Net:\n"
    "        return Net(Config())\n",
    "model = Net(Config())\nout = model(torch.randn(2, 8))\n",
]
