"""`paramlens lsp --tcp HOST:PORT` serves the same protocol over a socket (for debugging)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

from lsprotocol import types as lsp
from paramlens.render import SHAPES_PENDING
from pygls.lsp.client import LanguageClient

from tests.conftest import FIXTURES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_tcp_mode_answers_initialize_and_lenses() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "paramlens", "lsp", "--tcp", f"127.0.0.1:{port}"]
    )
    client = LanguageClient("tcp-test", "1")
    try:
        for _ in range(100):
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        result = await asyncio.wait_for(
            client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities())), 30
        )
        assert result.server_info is not None and result.server_info.name == "paramlens"
        assert result.capabilities.code_lens_provider is not None
        client.initialized(lsp.InitializedParams())
        seed = FIXTURES / "recipe/models.py"
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                lsp.TextDocumentItem(seed.as_uri(), "python", 1, seed.read_text())
            )
        )
        titles: list[str] = []
        for _ in range(600):
            found = await client.text_document_code_lens_async(
                lsp.CodeLensParams(lsp.TextDocumentIdentifier(seed.as_uri()))
            )
            titles = [lens.command.title for lens in found or [] if lens.command]
            if titles and not any(SHAPES_PENDING in t for t in titles):
                break
            await asyncio.sleep(0.1)
        assert "Linear(784 -> 512) · 401,920 · → [1, 512]" in titles
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
        server.terminate()
        server.wait(10)
