"""End-to-end language-server tests: the real server over stdio, driven by pytest-lsp."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest_lsp
from lsprotocol import types as lsp
from paramlens.render import SHAPES_PENDING
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import FIXTURES

T = TypeVar("T")
SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "paramlens", "lsp"],
    server_env={**os.environ, "PARAMLENS_CACHE_DIR": "off"},
)


def uri(path: Path) -> str:
    return path.resolve().as_uri()


async def initialize(
    client: LanguageClient, *folders: Path, settings: dict[str, Any] | None = None
) -> None:
    client.status = []  # type: ignore[attr-defined]
    client.lens_refreshes = 0  # type: ignore[attr-defined]
    client.hint_refreshes = 0  # type: ignore[attr-defined]

    @client.feature("paramlens/status")
    def on_status(params: Any) -> None:
        client.status.append(params)  # type: ignore[attr-defined]

    client.registered = []  # type: ignore[attr-defined]

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def on_register(params: lsp.RegistrationParams) -> None:  # VS Code answers it
        client.registered.append(params)  # type: ignore[attr-defined]

    @client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
    def on_refresh(params: None) -> None:
        client.lens_refreshes += 1  # type: ignore[attr-defined]

    @client.feature(lsp.WORKSPACE_INLAY_HINT_REFRESH)
    def on_hint_refresh(params: None) -> None:
        client.hint_refreshes += 1  # type: ignore[attr-defined]

    # the tests of analysis as you type turn it on themselves: the others drive it by saves
    defaults = {"timeout": 3, "analyzeOnChange": False}
    client.set_configuration({"paramlens": {**defaults, **(settings or {})}})
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.workspace is not None  # pytest-lsp's copy predates inlay hints
    capabilities.workspace.inlay_hint = lsp.InlayHintWorkspaceClientCapabilities(
        refresh_support=True
    )
    # VS Code 1.100 syncs notebooks (its saved capabilities here predate notebook sync)
    capabilities.notebook_document = lsp.NotebookDocumentClientCapabilities(
        synchronization=lsp.NotebookDocumentSyncClientCapabilities()
    )
    folders = folders or (FIXTURES,)
    client.initialized = await client.initialize_session(  # type: ignore[attr-defined]
        lsp.InitializeParams(
            capabilities=capabilities,
            workspace_folders=[lsp.WorkspaceFolder(uri(f), f.name) for f in folders],
            root_uri=uri(folders[0]),
        )
    )


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await initialize(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    """Poll ``probe`` until it returns something truthy (results arrive asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        await asyncio.sleep(0.05)


def open_file(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    document_uri = uri(path)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(
                document_uri, "python", version, text if text is not None else path.read_text()
            )
        )
    )
    return document_uri


async def lenses(client: LanguageClient, document_uri: str) -> list[lsp.CodeLens]:
    return (
        await client.text_document_code_lens_async(
            lsp.CodeLensParams(lsp.TextDocumentIdentifier(document_uri))
        )
        or []
    )


def titles(found: list[lsp.CodeLens]) -> dict[int, str]:
    """Lens titles by 1-based line, as the user reads them."""
    out: dict[int, str] = {}
    for lens in found:
        assert lens.command is not None
        out[lens.range.start.line + 1] = lens.command.title
    return out


async def lens_titles(
    client: LanguageClient, document_uri: str, *, fresh: bool = True
) -> dict[int, str]:
    async def probe() -> dict[int, str] | None:
        shown = titles(await lenses(client, document_uri))
        if not shown or (
            fresh and any("(stale)" in t or SHAPES_PENDING in t for t in shown.values())
        ):
            return None
        return shown

    return await eventually(probe)


async def inlay_hints(
    client: LanguageClient, document_uri: str, first: int = 1, last: int = 10_000
) -> dict[tuple[int, int], lsp.InlayHint]:
    """Inlay hints on 1-based lines ``first``..``last``, by (1-based line, 0-based column)."""
    found = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(
            lsp.TextDocumentIdentifier(document_uri),
            lsp.Range(lsp.Position(first - 1, 0), lsp.Position(last - 1, 0)),
        )
    )
    return {(h.position.line + 1, h.position.character): h for h in found or []}


def label(hint: lsp.InlayHint) -> str:
    assert isinstance(hint.label, str)
    return hint.label
