"""Benchmark: a notebook's first figures against the same code in a ``.py`` file (issue 19).

    python -m bench.notebook [--repeat N]

A notebook of 40 code cells (magics, a config dataclass, three models: an MLP, a CNN and a
small transformer; call sites with literal tensors; training-loop and print cells), and
the same code as a ``.py`` file (the cells joined, IPython's lines dropped), each in a
workspace of its own. Two measures, medians of N (default 5), notebook / file ratio:

- warm: a live worker (as the editor has), no result cache: the time to the first figures
  (the engine's first partial report, what the editor shows first) and to the whole report;
- cold: ``paramlens summary --format json --no-cache``, a fresh CLI each time;
- typing, over LSP with a warm server: a cell's layer width edited (in the notebook, as VS
  Code syncs a cell edit; in the file, as a text edit) until that class's lens is final with
  its new count, debounce included (the editor's 500 ms); target < 1 s, as for a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paramlens.config import Settings
from paramlens.engine.engine import Engine, FileReport

MODELS = [
    "@dataclass\nclass Config:\n    hidden: int = 256\n    heads: int = 4\n    dim: int = 64",
    "class MLP(nn.Module):\n    def __init__(self, config: Config):\n        super().__init__()\n"
    "        self.fc1 = nn.Linear(784, config.hidden)\n        self.act = nn.ReLU()\n"
    "        self.fc2 = nn.Linear(config.hidden, 10)\n\n    def forward(self, x):\n"
    "        x = self.act(self.fc1(x.flatten(1)))\n        return self.fc2(x)",
    "class CNN(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.features = nn.Sequential(\n            nn.Conv2d(1, 32, 3),\n"
    "            nn.ReLU(),\n            nn.Conv2d(32, 64, 3),\n            nn.ReLU(),\n"
    "            nn.MaxPool2d(2),\n        )\n        self.head = nn.Linear(64 * 12 * 12, 10)\n\n"
    "    def forward(self, x):\n        x = self.features(x)\n        return self.head(x.flatten(1))",
    "class Block(nn.Module):\n    def __init__(self, config: Config):\n        super().__init__()\n"
    "        self.norm = nn.LayerNorm(config.dim)\n"
    "        self.attn = nn.MultiheadAttention(config.dim, config.heads, batch_first=True)\n"
    "        self.mlp = nn.Sequential(nn.Linear(config.dim, 4 * config.dim), nn.GELU(),\n"
    "                                 nn.Linear(4 * config.dim, config.dim))\n\n"
    "    def forward(self, x):\n        h = self.norm(x)\n"
    "        x = x + self.attn(h, h, h, need_weights=False)[0]\n"
    "        return x + self.mlp(self.norm(x))",
]


def cells() -> list[str]:
    """40 code cells: setup, the models, call sites, and the cells that run things."""
    out = [
        "%matplotlib inline\n%load_ext autoreload\n!pip install torch",
        "import math\nimport torch\nfrom torch import nn\nfrom dataclasses import dataclass",
        *MODELS,
        "mlp = MLP(Config())\nmlp(torch.randn(32, 1, 28, 28))",
        "cnn = CNN()\ncnn(torch.randn(16, 1, 28, 28))",
        "block = Block(Config())\nblock(torch.randn(2, 128, 64))",
    ]
    filler = [
        "%%time\nopt = torch.optim.SGD(mlp.parameters(), lr=0.1)\nfor step in range(10):\n"
        "    opt.zero_grad()\n    mlp(torch.randn(32, 1, 28, 28)).sum().backward()\n    opt.step()",
        "print(sum(p.numel() for p in cnn.parameters()))",
        "LEARNING_RATE = 3e-4\nBATCH = 64\nsteps = [math.cos(i / 10) for i in range(100)]",
        "with torch.no_grad():\n    out = cnn(torch.randn(4, 1, 28, 28))\nout.shape",
    ]
    while len(out) < 40:
        out.append(filler[len(out) % len(filler)])
    return out


def write_workspaces(folder: Path) -> tuple[Path, Path]:
    from paramlens.analysis.notebook import notebook_source

    texts = cells()
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": text,
            }
            for text in texts
        ],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    nb_root, py_root = folder / "nb", folder / "py"
    for root in (nb_root, py_root):
        root.mkdir()
        (root / "pyproject.toml").write_text("[tool.paramlens]\ntimeout = 30\n")
    (nb_root / "models.ipynb").write_text(json.dumps(notebook, indent=1))
    # the same code as a .py file: the cells' module, IPython's lines dropped
    (py_root / "models.py").write_text(notebook_source(texts).text)
    return nb_root / "models.ipynb", py_root / "models.py"


async def warm(nb: Path, py: Path, repeat: int) -> dict[str, list[float]]:
    engine = Engine(lambda _: Settings())
    await engine.analyze(str(py), py.parent)  # starts the worker, imports torch
    await engine.analyze(str(nb), nb.parent)
    times: dict[str, list[float]] = {"nb first": [], "nb all": [], "py first": [], "py all": []}
    for _ in range(repeat):
        for name, path in (("nb", nb), ("py", py)):
            engine.cache.memory.clear()
            first: list[float] = []
            started = time.perf_counter()

            def shown(
                report: FileReport, first: list[float] = first, started: float = started
            ) -> None:
                if not first:
                    first.append(time.perf_counter() - started)

            report = await engine.analyze(str(path), path.parent, on_partial=shown)
            total = time.perf_counter() - started
            assert {m.name for m in report.models if m.error is None} >= {"MLP", "CNN", "Block"}
            times[f"{name} first"].append(first[0] if first else total)
            times[f"{name} all"].append(total)
    await engine.close()
    return times


MLP_LINE = "        self.fc1 = nn.Linear(784, config.hidden)\n"


async def typing(nb: Path, py: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds from an edit of MLP's first layer to MLP's new, final class lens."""
    from lsprotocol import types as lsp

    from bench.live_package import final, titles
    from bench.lsp import Client, open_doc, stop

    times: dict[str, list[float]] = {"nb": [], "py": []}
    texts = cells()
    number = next(i for i, t in enumerate(texts) if MLP_LINE in t + "\n")
    for kind, root in (("nb", nb.parent), ("py", py.parent)):
        client = Client()
        await client.start_io(sys.executable, "-m", "paramlens", "lsp")
        notebook_sync = lsp.NotebookDocumentClientCapabilities(
            synchronization=lsp.NotebookDocumentSyncClientCapabilities()
        )
        capabilities = lsp.ClientCapabilities(notebook_document=notebook_sync)
        await client.initialize_async(
            lsp.InitializeParams(
                capabilities=capabilities,
                workspace_folders=[lsp.WorkspaceFolder(root.as_uri(), root.name)],
            )
        )
        client.initialized(lsp.InitializedParams())
        if kind == "nb":
            cell_uris = [f"vscode-notebook-cell:{nb}#W{i}sZmlsZQ%3D%3D" for i in range(len(texts))]
            client.notebook_document_did_open(
                lsp.DidOpenNotebookDocumentParams(
                    lsp.NotebookDocument(
                        nb.as_uri(),
                        "jupyter-notebook",
                        1,
                        [lsp.NotebookCell(lsp.NotebookCellKind.Code, c) for c in cell_uris],
                    ),
                    [lsp.TextDocumentItem(c, "python", 1, t) for c, t in zip(cell_uris, texts)],
                )
            )
            watched = cell_uris[number]
            line = texts[number].splitlines().index(MLP_LINE.rstrip("\n"))
        else:
            watched = open_doc(client, py)
            line = py.read_text().splitlines().index(MLP_LINE.rstrip("\n"))
        while not final((await titles(client, watched)).get("MLP"), None):
            await asyncio.sleep(0.05)
        for version in range(2, repeat + 2):
            before = await titles(client, watched)
            new = MLP_LINE.replace("config.hidden)", f"config.hidden + {version})")
            change = lsp.TextDocumentContentChangePartial(
                range=lsp.Range(lsp.Position(line, 0), lsp.Position(line + 1, 0)), text=new
            )
            started = time.perf_counter()
            if kind == "nb":
                content = lsp.NotebookDocumentCellContentChanges(
                    lsp.VersionedTextDocumentIdentifier(version, watched), [change]
                )
                client.notebook_document_did_change(
                    lsp.DidChangeNotebookDocumentParams(
                        lsp.VersionedNotebookDocumentIdentifier(version, nb.as_uri()),
                        lsp.NotebookDocumentChangeEvent(
                            cells=lsp.NotebookDocumentCellChanges(text_content=[content])
                        ),
                    )
                )
            else:
                client.text_document_did_change(
                    lsp.DidChangeTextDocumentParams(
                        lsp.VersionedTextDocumentIdentifier(version, watched), [change]
                    )
                )
            while not final((await titles(client, watched)).get("MLP"), before.get("MLP")):
                await asyncio.sleep(0.005)
            times[kind].append(time.perf_counter() - started)
        await stop(client)
    return times


def cold(path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "paramlens", "summary", str(path), "--format", "json", "--no-cache"],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    assert {m["name"] for m in json.loads(done.stdout)["models"]} >= {"MLP", "CNN", "Block"}
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nb, py = write_workspaces(Path(tmp))
        print(
            f"notebook: 40 code cells, 3 models + a config; .py: {py.read_text().count(chr(10))} lines"
        )
        times = asyncio.run(warm(nb, py, args.repeat))
        for stage in ("first", "all"):
            a, b = statistics.median(times[f"nb {stage}"]), statistics.median(times[f"py {stage}"])
            label = "first figures" if stage == "first" else "whole report "
            print(
                f"warm worker, {label}: notebook {a * 1000:7.1f} ms · .py {b * 1000:7.1f} ms"
                f" · ratio {a / b:.3f}"
            )
        runs: dict[Path, list[float]] = {nb: [], py: []}
        for _ in range(args.repeat):  # alternated: the machine's load falls on both alike
            for path in (nb, py):
                runs[path].append(cold(path))
        cold_nb, cold_py = statistics.median(runs[nb]), statistics.median(runs[py])
        print(
            f"cold CLI (summary --no-cache): notebook {cold_nb:.2f} s · .py {cold_py:.2f} s"
            f" · ratio {cold_nb / cold_py:.3f}"
        )
        typed = asyncio.run(typing(nb, py, args.repeat))
        a, b = statistics.median(typed["nb"]), statistics.median(typed["py"])
        print(
            f"typing, edit -> the class's new lens (500 ms debounce included): notebook "
            f"{a:.2f} s · .py {b:.2f} s (target < 1 s)"
        )


if __name__ == "__main__":
    main()
