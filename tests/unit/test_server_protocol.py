"""The server's JSON-RPC layer in-process: what it keeps per message (nothing, once handled)."""

from __future__ import annotations

import asyncio
from typing import Any

from paramlens.lsp.server import ParamlensServer


def _server() -> tuple[ParamlensServer, list[Any]]:
    server = ParamlensServer()
    sent: list[Any] = []
    server.protocol._send_data = sent.append  # type: ignore[method-assign]  # no transport
    return server, sent


def _message(server: ParamlensServer, method: str, params: dict[str, Any], **extra: Any) -> None:
    data = {"jsonrpc": "2.0", "method": method, "params": params, **extra}
    server.protocol.handle_message(server.protocol.structure_message(data))


async def test_handled_notifications_leave_nothing_behind() -> None:
    """pygls 2.1 kept a future per didOpen/didChange/didClose for good: an hour of typing
    grew the server by megabytes. Each is dropped once its handler is done."""
    server, sent = _server()
    _message(server, "initialize", {"capabilities": {}, "processId": None}, id=1)
    _message(server, "initialized", {})
    uri = "untitled:Untitled-1"  # no file: nothing is analysed, only synced
    item = {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}
    _message(server, "textDocument/didOpen", {"textDocument": item})
    for version in range(2, 200):
        change = {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"text": "y"}],
        }
        _message(server, "textDocument/didChange", change)
    _message(server, "textDocument/didClose", {"textDocument": {"uri": uri}})
    await asyncio.sleep(0)
    assert server.protocol._request_futures == {}
    assert not [m for m in sent if "Error in server" in str(m)]
