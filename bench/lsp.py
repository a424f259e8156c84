"""Benchmark the language server with a real LSP client over stdio (pygls's client).

    python -m bench.lsp [--requests N]

Measures: didOpen to lenses for the seed file, cold (fresh server, worker not started) and
warm; didSave to refreshed lenses after an edit (warm); codeLens and hover latency answered
from cache (p50/p99); hover latency while a 10-second build runs; the 70B fixture from
didOpen to lenses, cold. Each server runs with the on-disk cache off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from paramlens.render import SHAPES_PENDING
from pygls.lsp.client import LanguageClient

from bench.common import FIXTURES, median, percentile

SLOW = """import time
from torch import nn


class TenSeconds(nn.Module):
    def __init__(self):
        super().__init__()
        time.sleep(10)
        self.fc = nn.Linear(2, 2)
"""


class Client(LanguageClient):
    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__("paramlens-bench", "1")
        settings = settings or {"timeout": 20}
        self.ready: dict[str, int] = {}
        self.logs: list[tuple[float, str]] = []  # (perf_counter, message): the server's log

        @self.feature("paramlens/status")
        def status(params: Any) -> None:
            if params.state == "ready":
                self.ready[params.model] = self.ready.get(params.model, 0) + 1

        @self.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
        def refresh(params: None) -> None:
            return None

        @self.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            return None

        @self.feature(lsp.WINDOW_LOG_MESSAGE)
        def log(params: lsp.LogMessageParams) -> None:
            self.logs.append((time.perf_counter(), params.message))

        @self.feature(lsp.WORKSPACE_CONFIGURATION)
        def configuration(params: lsp.ConfigurationParams) -> list[Any]:
            return [settings] * len(params.items)


async def start(folder: Path, client: Client | None = None, cache: str = "off") -> Client:
    client = client or Client()
    await client.start_io(
        sys.executable, "-m", "paramlens", "lsp", env={**os.environ, "PARAMLENS_CACHE_DIR": cache}
    )
    capabilities = lsp.ClientCapabilities(
        workspace=lsp.WorkspaceClientCapabilities(
            configuration=True,
            code_lens=lsp.CodeLensWorkspaceClientCapabilities(refresh_support=True),
        )
    )
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=capabilities,
            workspace_folders=[lsp.WorkspaceFolder(folder.as_uri(), folder.name)],
        )
    )
    client.initialized(lsp.InitializedParams())
    return client


async def stop(client: Client) -> None:
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()


def open_doc(client: Client, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    item = lsp.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=text or path.read_text()
    )
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=item))
    return uri


async def code_lenses(client: Client, uri: str) -> list[lsp.CodeLens]:
    params = lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    return await client.text_document_code_lens_async(params) or []


async def until_lenses(client: Client, uri: str, want: str, shapes: bool = False) -> float:
    """Seconds until a lens title contains ``want`` and none is stale (with ``shapes``, and
    none still waits for forward()'s shapes)."""
    started = time.perf_counter()
    while True:
        titles = [lens.command.title for lens in await code_lenses(client, uri) if lens.command]
        waiting = ["(stale)", *([SHAPES_PENDING] if shapes else [])]
        if any(want in t for t in titles) and not any(w in t for t in titles for w in waiting):
            return time.perf_counter() - started
        await asyncio.sleep(0.005)


async def hover_ms(client: Client, uri: str, line: int) -> float:
    params = lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        position=lsp.Position(line=line, character=14),
    )
    started = time.perf_counter()
    result = await client.text_document_hover_async(params)
    assert result is not None
    return (time.perf_counter() - started) * 1000


async def run(requests: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="paramlens-bench-"))
    shutil.copytree(FIXTURES / "recipe", work / "recipe")
    seed = work / "recipe/models.py"

    client = await start(work)
    started = time.perf_counter()
    uri = open_doc(client, seed)
    await until_lenses(client, uri, "669,706")
    cold = time.perf_counter() - started
    print(f"seed file, didOpen -> lenses, cold (worker start + torch import): {cold * 1000:.0f} ms")

    warm_opens = []
    for i in range(5):  # a new file each time: no cache can answer
        copy = work / f"recipe/copy_{i}.py"
        text = seed.read_text().replace("nn.Linear(512, 10)", f"nn.Linear(512, {11 + i})")
        copy.write_text(text)
        t0 = time.perf_counter()
        copy_uri = open_doc(client, copy)
        await until_lenses(client, copy_uri, f"Linear(512 -> {11 + i})")
        warm_opens.append((time.perf_counter() - t0) * 1000)
    print(
        f"seed file, didOpen -> lenses, warm: median {median(warm_opens):.0f} ms over {len(warm_opens)}"
    )

    saves = []
    for i in range(10):
        width = 600 + i
        text = seed.read_text().replace("nn.Linear(512, 512)", f"nn.Linear(512, {width})")
        text = text.replace("nn.Linear(512, 10)", f"nn.Linear({width}, 10)")
        seed.write_text(text)
        version = 2 + i
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        t0 = time.perf_counter()
        client.text_document_did_save(
            lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        await until_lenses(client, uri, f"Linear(512 -> {width})")
        saves.append((time.perf_counter() - t0) * 1000)
        seed.write_text((FIXTURES / "recipe/models.py").read_text())
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version + 100),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=seed.read_text())],
            )
        )
        client.text_document_did_save(
            lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        await until_lenses(client, uri, "Linear(512 -> 512)")
    print(
        f"didSave -> refreshed lenses after an edit, warm: median {median(saves):.0f} ms, "
        f"max {max(saves):.0f} ms over {len(saves)}"
    )

    lens_times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        await code_lenses(client, uri)
        lens_times.append((time.perf_counter() - t0) * 1000)
    hovers = [await hover_ms(client, uri, 10) for _ in range(requests)]
    print(
        f"codeLens from cache: p50 {percentile(lens_times, 50):.2f} ms, p99 {percentile(lens_times, 99):.2f} ms ({requests} requests)"
    )
    print(
        f"hover from cache:    p50 {percentile(hovers, 50):.2f} ms, p99 {percentile(hovers, 99):.2f} ms ({requests} requests)"
    )

    slow = work / "recipe/slow.py"
    slow.write_text(SLOW)
    open_doc(client, slow)
    await asyncio.sleep(0.5)
    busy = []
    t_end = time.perf_counter() + 8
    while time.perf_counter() < t_end:
        busy.append(await hover_ms(client, uri, 10))
        await asyncio.sleep(0.01)
    print(
        f"hover while a 10 s build runs: p50 {percentile(busy, 50):.2f} ms, p99 {percentile(busy, 99):.2f} ms, "
        f"max {max(busy):.2f} ms ({len(busy)} requests)"
    )
    await stop(client)

    client = await start(FIXTURES / "llama")
    t0 = time.perf_counter()
    llama_uri = open_doc(client, FIXTURES / "llama/model.py")
    await until_lenses(client, llama_uri, "68.98B")
    print(f"70B fixture, didOpen -> lenses, cold: {(time.perf_counter() - t0) * 1000:.0f} ms")
    await stop(client)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
