"""A storm of malformed requests and notifications (issue 22, item 1) costs no file its lenses.

A seeded-random fuzzer speaks raw JSON-RPC to the real server over stdio (pytest-lsp's client
would refuse to write most of these messages): positions far outside the file, negative and
2**53 numbers, unknown and non-string URIs, reversed ranges, edits of bracket-and-quote text
at random ranges, untitled and notebook-cell documents, notebook sync out of order (cells
added, moved and removed at impossible places, edits of cells the notebook does not have,
versions anywhere), a YAML config rewritten malformed on disk, closes and saves of documents
never opened, cancellations of random ids, bad settings, commands with wrong arguments, unknown
methods and params of the wrong JSON type. After the storm every request has had an answer,
no handler failed, the healthy files' lenses (their texts restored) are exactly those they
had before it, and the server's CPU goes back to idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.conftest import FIXTURES

SEEDS = [1, 2, 7, 8]  # 1 failed on four of the bugs fixed with this test, 7 and 8 on another
MESSAGES = 400  # per seed
ANSWER_BOUND_S = 30.0  # a request unanswered this long is a hang, not a slow machine
LENS_BOUND_S = 30.0
SETTINGS = {"timeout": 1, "analyzeOnChange": True, "debounceMs": 50}
SLOW = """import time

from torch import nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        time.sleep(600)  # hits the 1 s timeout, every time
        self.fc = nn.Linear(2, 2)
"""
INTERNAL_ERROR = -32603


@dataclass
class RawClient:
    """A JSON-RPC client over the server's stdio that writes whatever it is given."""

    process: asyncio.subprocess.Process
    settings: dict[str, Any]
    answers: dict[int | str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    sent_at: dict[int | str, float] = field(default_factory=dict)
    latency: dict[int | str, float] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    ids: int = 0
    reader: asyncio.Future[None] | None = None

    @classmethod
    async def start(cls, log: Path, settings: dict[str, Any]) -> RawClient:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "paramlens",
            "lsp",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log.open("wb"),
            env={**os.environ, "PARAMLENS_CACHE_DIR": "off"},
            limit=1 << 26,
        )
        client = cls(process, settings)
        client.reader = asyncio.ensure_future(client._read())
        return client

    def _write(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self._write({"method": method, "params": params})

    def answer(self, msg_id: Any, result: Any) -> None:
        self._write({"id": msg_id, "result": result})

    def request(self, method: str, params: Any, msg_id: int | str | None = None) -> int | str:
        if msg_id is None:
            self.ids += 1
            msg_id = self.ids
        self.answers[msg_id] = asyncio.get_running_loop().create_future()
        self.sent_at[msg_id] = time.monotonic()
        self._write({"id": msg_id, "method": method, "params": params})
        return msg_id

    async def call(self, method: str, params: Any, timeout: float = ANSWER_BOUND_S) -> Any:
        msg_id = self.request(method, params)
        answer = await asyncio.wait_for(self.answers[msg_id], timeout)
        assert "error" not in answer, answer
        return answer["result"]

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            length = 0
            while (line := await stdout.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line:
                return
            message = json.loads(await stdout.readexactly(length))
            if "method" not in message:  # an answer
                msg_id = message.get("id")
                if msg_id in self.answers and not self.answers[msg_id].done():
                    self.latency[msg_id] = time.monotonic() - self.sent_at[msg_id]
                    self.answers[msg_id].set_result(message)
            elif "id" in message:  # the server asks: settings, progress, refreshes
                result: Any = None
                if message["method"] == "workspace/configuration":
                    result = [self.settings for _ in message["params"]["items"]]
                self.answer(message["id"], result)
            else:
                self.notifications.append(message)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("shutdown", None), 10)
            self.notify("exit", None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.process.wait(), 10)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()

    def cpu_seconds(self) -> float:
        """The server's own user + system CPU time so far (not its worker's)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CONFIG = "configs/model/net.yaml"
NET_CONFIG = "_target_: recipe.NeuralNetwork\n"  # recipe.py's class, built from a config


def workspace(tmp: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A workspace of two healthy files (one of whose classes a YAML config builds), a slow
    one, a hostile one and a notebook: (folder, healthy texts by URI, the others' texts by
    URI)."""
    folder = tmp / "ws"
    folder.mkdir()
    shutil.copy(FIXTURES / "notebooks/mnist.ipynb", folder / "nb.ipynb")
    (folder / CONFIG).parent.mkdir(parents=True)
    (folder / CONFIG).write_text(NET_CONFIG)
    shutil.copy(FIXTURES / "recipe/models.py", folder / "recipe.py")
    shutil.copy(FIXTURES / "cnn/model.py", folder / "cnn.py")
    shutil.copy(FIXTURES / "hostile/hostile.py", folder / "hostile.py")
    (folder / "slow.py").write_text(SLOW)
    (folder / "pyproject.toml").write_text("[project]\nname = 'fuzzed'\n")
    texts = {p.as_uri(): p.read_text() for p in sorted(folder.glob("*.py"))}
    healthy = {u: t for u, t in texts.items() if u.endswith(("recipe.py", "cnn.py"))}
    return folder, healthy, {u: t for u, t in texts.items() if u not in healthy}


def did_open(uri: Any, text: Any, version: Any = 1) -> dict[str, Any]:
    return {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}}


def full_change(uri: str, text: str, version: int) -> dict[str, Any]:
    return {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}


class Storm:
    """Random messages from one seed: everything a confused or hostile client might send."""

    METHODS = (
        "textDocument/codeLens",
        "textDocument/hover",
        "textDocument/inlayHint",
        "textDocument/codeAction",
    )

    def __init__(self, seed: int, folder: Path, texts: dict[str, str]) -> None:
        self.rng = random.Random(seed)
        self.folder = folder
        self.texts = texts
        self.versions: dict[str, int] = {}
        self.open = {unquote(uri) for uri in texts}  # as the client sees them (decoded)

    def number(self) -> Any:
        return self.rng.choice(
            [0, 1, 3, 40, 10_000, -1, -(2**31), 2**31 - 1, 2**31, 2**53, -(2**53), 1.5, "7", None]
        )

    def uri(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                *self.texts,
                *self.texts,
                self.spelled_otherwise(rng.choice(list(self.texts))),
                self.spelled_otherwise(rng.choice(list(self.texts))),
                (self.folder / "missing.py").as_uri(),
                "file:///",
                "file:///nowhere/x.py",
                f"untitled:Untitled-{rng.randint(1, 3)}",
                f"vscode-notebook-cell:{self.folder}/nb.ipynb#W{rng.randint(0, 2)}sZmlsZQ%3D%3D",
                "",
                "not a uri",
                5,
                None,
                ["file:///a.py"],
                {"uri": "file:///a.py"},
            ]
        )

    def spelled_otherwise(self, uri: str) -> str:
        """The same file's URI with one letter percent-encoded (as some clients write it)."""
        head, _, name = uri.rpartition("/")
        at = self.rng.randrange(len(name) - 3)
        return f"{head}/{name[:at]}%{ord(name[at]):02X}{name[at + 1 :]}"

    def position(self) -> Any:
        if self.rng.random() < 0.1:
            return self.rng.choice([None, "here", [1, 2], {}])
        return {"line": self.number(), "character": self.number()}

    def range(self) -> Any:
        if self.rng.random() < 0.3:  # a real, possibly reversed, range
            a, b = (self.rng.randint(0, 80) for _ in range(2))
            return {
                "start": {"line": a, "character": self.rng.randint(0, 40)},
                "end": {"line": b, "character": self.rng.randint(0, 40)},
            }
        return {"start": self.position(), "end": self.position()}

    def garbage(self) -> str:
        return "".join(
            self.rng.choice("()[]{}'\"\n \\#:=x1") for _ in range(self.rng.randint(0, 30))
        )

    def text_document(self) -> Any:
        if self.rng.random() < 0.05:
            return self.rng.choice([None, 3, "file:///a.py", []])
        return {"uri": self.uri()}

    def params(self, method: str) -> Any:
        rng = self.rng
        if rng.random() < 0.08:  # the wrong JSON type altogether
            return rng.choice([None, 3, "params", [], [1, 2], True])
        document = self.text_document()
        if method == "textDocument/codeLens":
            return {"textDocument": document}
        if method == "textDocument/hover":
            return {"textDocument": document, "position": self.position()}
        if method == "textDocument/inlayHint":
            return {"textDocument": document, "range": self.range()}
        only = rng.choice([None, ["quickfix"], ["refactor"], "quickfix"])
        context = {"diagnostics": rng.choice([[], [{}], None]), "only": only}
        return {"textDocument": document, "range": self.range(), "context": context}

    def command(self) -> Any:
        rng = self.rng
        uri = self.uri()
        arguments = rng.choice(
            [
                [],
                [uri],
                [uri, "NeuralNetwork"],
                [uri, "CNN", "markdown"],
                [uri, "CNN", "table", "extra"],
                [uri, 3],
                [None, None],
                [{}, []],
                "not a list",
                None,
            ]
        )
        command = rng.choice(["paramlens.summary", "paramlens.models", "paramlens.nope", 7])
        return {"command": command, "arguments": arguments}

    def notebook(self) -> tuple[str, Any]:
        """A notebook opened, changed (cells added, moved, removed, edited; versions out of
        order, unknown cells), saved or closed, its cells' URIs as VS Code writes them."""
        rng = self.rng
        notebook = (self.folder / "nb.ipynb").as_uri()
        cells = [cell_uri(self.folder, i) for i in range(5)]
        chosen = rng.sample(cells, rng.randint(0, 3))
        roll = rng.random()
        if roll < 0.25:
            return "notebookDocument/didSave", {"notebookDocument": {"uri": notebook}}
        if roll < 0.6:
            return "notebookDocument/didChange", self.notebook_change(notebook, cells)
        if roll < 0.8:
            return "notebookDocument/didClose", {
                "notebookDocument": {"uri": notebook},
                "cellTextDocuments": [{"uri": cell} for cell in chosen],
            }
        return "notebookDocument/didOpen", {
            "notebookDocument": {
                "uri": notebook,
                "notebookType": "jupyter-notebook",
                "version": 1,
                "cells": [{"kind": 2, "document": cell} for cell in chosen],
            },
            "cellTextDocuments": [
                {"uri": cell, "languageId": "python", "version": 1, "text": self.garbage()}
                for cell in chosen
            ],
        }

    def notebook_change(self, notebook: str, cells: list[str]) -> Any:
        rng = self.rng
        change: dict[str, Any] = {}
        if rng.random() < 0.5:  # cells added, moved or removed at a random place
            added = rng.sample(cells, rng.randint(0, 2))
            change["structure"] = {
                "array": {
                    "start": rng.choice([0, 1, 3, 40, -1]),
                    "deleteCount": rng.choice([0, 1, 2, 9]),
                    "cells": [{"kind": 2, "document": c} for c in added],
                },
                "didOpen": [
                    {"uri": c, "languageId": "python", "version": 1, "text": self.garbage()}
                    for c in added
                    if rng.random() < 0.7
                ],
                "didClose": [{"uri": c} for c in rng.sample(cells, rng.randint(0, 1))],
            }
        if rng.random() < 0.7:  # a cell's text edited, maybe a cell the notebook does not have
            cell = rng.choice(cells)
            edits = [{"range": self.range(), "text": self.garbage()}]
            change["cells"] = {
                "textContent": [
                    {"document": {"uri": cell, "version": self.number()}, "changes": edits}
                ]
            }
        if rng.random() < 0.1:
            change = rng.choice([None, [], {"cells": 3}, {"structure": {"array": None}}])
        return {
            "notebookDocument": {"uri": notebook, "version": self.number()},
            "change": change,
        }

    def config(self) -> None:
        """The config file on disk rewritten: malformed YAML, a target that is not there,
        an interpolation that does not resolve, or right again (YAML is not an editor
        document here: the scan reads it from disk)."""
        text = self.rng.choice(
            [
                self.garbage(),
                "_target_: [unclosed\n",
                "_target_: recipe.Nowhere\n",
                "_target_: recipe.NeuralNetwork\nwidth: ${nope.x}\n",
                ": : :\n\t- x",
                NET_CONFIG,
            ]
        )
        (self.folder / CONFIG).write_text(text)

    def change(self) -> Any:
        rng = self.rng
        uri = self.uri()
        version: Any = 1
        if isinstance(uri, str):
            version = self.versions[uri] = self.versions.get(uri, 1) + 1
        if rng.random() < 0.1:
            version = self.number()
        changes = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.1:
                changes.append({"text": self.garbage()})
            else:
                changes.append({"range": self.range(), "text": self.garbage()})
        return {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}

    def send_one(self, client: RawClient) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            method = rng.choice(self.METHODS)
            client.request(method, self.params(method))
        elif roll < 0.5:
            client.notify("textDocument/didChange", self.change())
        elif roll < 0.58:
            uri = self.uri()
            known = isinstance(uri, str) and uri in self.texts and rng.random() < 0.5
            text = self.texts[uri] if known else self.garbage()
            version = rng.choice([0, 1, 40, 2**31 - 1])  # valid: bad ones go in didChange
            client.notify("textDocument/didOpen", did_open(uri, text, version))
            if isinstance(uri, str):
                self.open.add(unquote(uri))
        elif roll < 0.64:
            document = self.text_document()
            client.notify("textDocument/didClose", {"textDocument": document})
            if isinstance(document, dict) and isinstance(document["uri"], str):
                self.open.discard(unquote(document["uri"]))
        elif roll < 0.68:
            client.notify("textDocument/didSave", {"textDocument": self.text_document()})
        elif roll < 0.75:
            msg_id = rng.choice([rng.randint(1, client.ids + 5), "x", None, -1])
            client.notify("$/cancelRequest", {"id": msg_id})
        elif roll < 0.79:
            settings = rng.choice(
                [None, {"paramlens": {"timeout": -5}}, {"paramlens": None}, {"paramlens": 3}, []]
            )
            client.notify("workspace/didChangeConfiguration", {"settings": settings})
        elif roll < 0.88:
            client.request("workspace/executeCommand", self.command())
        elif roll < 0.94:
            method = rng.choice(["paramlens/nope", "textDocument/nope", "$/nope", ""])
            client.request(method, self.params("textDocument/hover"))
        elif roll < 0.955:
            client.notify(*self.notebook())
            if rng.random() < 0.3:
                self.config()
        elif roll < 0.97:
            method = rng.choice(["paramlens/nope", "$/setTrace", "textDocument/didOpen"])
            client.notify(method, rng.choice([None, 3, "x", [], {"textDocument": 4}]))
        else:  # an answer to a request the server never sent
            client.answer(rng.choice([rng.randint(1, 50), "x", None]), rng.choice([None, [], 3]))


def cell_uri(folder: Path, number: int) -> str:
    return f"vscode-notebook-cell:{folder}/nb.ipynb#W{number}sZmlsZQ%3D%3D"


def open_notebook(client: RawClient, folder: Path) -> dict[str, str]:
    """The workspace's notebook opened as VS Code opens it: its code cells' texts by URI."""
    from paramlens.analysis.notebook import read_cells

    texts = read_cells((folder / "nb.ipynb").read_bytes())[0]
    cells = [cell_uri(folder, i) for i in range(len(texts))]
    client.notify(
        "notebookDocument/didOpen",
        {
            "notebookDocument": {
                "uri": (folder / "nb.ipynb").as_uri(),
                "notebookType": "jupyter-notebook",
                "version": 1,
                "cells": [{"kind": 2, "document": c} for c in cells],
            },
            "cellTextDocuments": [
                {"uri": c, "languageId": "python", "version": 1, "text": t}
                for c, t in zip(cells, texts)
            ],
        },
    )
    return dict(zip(cells, texts))


async def lenses(client: RawClient, uri: str) -> list[dict[str, Any]]:
    found = await client.call("textDocument/codeLens", {"textDocument": {"uri": uri}})
    return sorted(found or [], key=lambda lens: lens["range"]["start"]["line"])


def ready(found: list[dict[str, Any]]) -> bool:
    """Figures of a finished analysis: not stale, shapes not pending."""
    return bool(found) and not any(
        "(stale)" in lens["command"]["title"] or "shapes" in lens["command"]["title"]
        for lens in found
    )


async def settled_lenses(
    client: RawClient, uri: str, expected: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The file's lenses once ready (and equal to ``expected``, if given); polled."""
    deadline = time.monotonic() + LENS_BOUND_S
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await lenses(client, uri)
        if ready(found) and (expected is None or found == expected):
            return found
        await asyncio.sleep(0.1)
    differ = [(a, b) for a, b in zip(found, expected or found) if a != b]
    raise AssertionError(
        f"{uri}: lenses not back after {LENS_BOUND_S} s: {len(found)} lenses, "
        f"{len(expected or ())} expected; first differences {differ[:2]}"
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize("seed", SEEDS)
async def test_a_storm_of_malformed_messages_costs_no_file_its_lenses(
    tmp_path: Path, seed: int
) -> None:
    started = time.monotonic()
    folder, healthy, others = workspace(tmp_path)
    log = tmp_path / "server.log"
    client = await RawClient.start(log, SETTINGS)
    try:
        folders = [{"uri": folder.as_uri(), "name": folder.name}]
        capabilities = {
            "workspace": {"configuration": True, "codeLens": {"refreshSupport": True}},
            "window": {"workDoneProgress": True},
        }
        initialize = {"processId": None, "rootUri": folder.as_uri(), "capabilities": capabilities}
        await client.call("initialize", {**initialize, "workspaceFolders": folders}, 60)
        client.notify("initialized", {})
        for uri, text in {**healthy, **others}.items():
            client.notify("textDocument/didOpen", did_open(uri, text))
        cells = open_notebook(client, folder)
        fresh = {uri: await settled_lenses(client, uri) for uri in healthy}
        # the cells that define classes: their lenses once the notebook is analysed
        fresh_cells = {
            c: await settled_lenses(client, c) for c, t in cells.items() if "(nn.Module)" in t
        }
        assert len(fresh_cells) == 2  # mnist.ipynb's Net and MLP

        storm = Storm(seed, folder, {**healthy, **others})
        for _ in range(MESSAGES):
            storm.send_one(client)
            if storm.rng.random() < 0.1:  # let builds start and finish among the messages
                await asyncio.sleep(storm.rng.random() * 0.1)
            assert client.process.stdin is not None
            await client.process.stdin.drain()
        requests = list(client.answers)
        done, pending = await asyncio.wait(client.answers.values(), timeout=ANSWER_BOUND_S)
        assert not pending, f"{len(pending)} requests unanswered after {ANSWER_BOUND_S} s"
        failed = [
            f.result() for f in done if f.result().get("error", {}).get("code") == INTERNAL_ERROR
        ]
        assert failed == [], failed[:3]

        restored = time.monotonic()
        (folder / CONFIG).write_text(NET_CONFIG)
        client.notify("workspace/didChangeConfiguration", {"settings": None})  # asks for ours
        for uri, text in healthy.items():  # as an editor would: the whole text, or reopen
            if unquote(uri) in storm.open:
                client.notify("textDocument/didChange", full_change(uri, text, 1000))
            else:
                client.notify("textDocument/didOpen", did_open(uri, text, 1000))
        notebook = {"uri": (folder / "nb.ipynb").as_uri()}
        every_cell = [{"uri": cell_uri(folder, i)} for i in range(max(len(cells), 5))]
        client.notify(
            "notebookDocument/didClose",
            {"notebookDocument": notebook, "cellTextDocuments": every_cell},
        )
        open_notebook(client, folder)  # as the editor reopens it
        for uri, expected in fresh.items():
            assert await settled_lenses(client, uri, expected) == expected
        for cell, expected in fresh_cells.items():
            assert await settled_lenses(client, cell, expected) == expected
        back = time.monotonic() - restored

        errors = [
            m["params"]["message"]
            for m in client.notifications
            if m["method"] == "window/showMessage" and m["params"]["type"] == 1
        ]
        assert errors == [], sorted(set(errors))
        failures = [
            m["params"]
            for m in client.notifications
            if m["method"] == "paramlens/status" and "failed" in m["params"].get("message", "")
        ]
        assert failures == [], failures[:3]
        assert client.process.returncode is None, log.read_text()[-3000:]

        before = client.cpu_seconds()
        await asyncio.sleep(2)
        busy = client.cpu_seconds() - before
        assert busy < 1.0, f"the server used {busy:.2f} s of CPU in 2 s once idle"
        latencies = sorted(client.latency[i] for i in requests)
        print(
            f"seed {seed}: {MESSAGES} messages ({len(requests)} requests, max answer "
            f"{latencies[-1]:.2f} s), lenses back {back:.2f} s after the texts were restored, "
            f"{busy:.2f} s CPU in 2 s idle, {time.monotonic() - started:.1f} s in all"
        )
    finally:
        await client.close()
