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


async def test_shutdown_with_a_notification_pending_answers() -> None:
    """pygls's shutdown cancels the pending futures while it walks them, and cancelling a
    generator's future runs its callbacks there and then: the one that dropped it from the
    dict made the walk fail ("dictionary changed size during iteration", an error answer
    to shutdown; the LSP tests saw it now and then)."""
    server, sent = _server()
    _message(server, "initialize", {"capabilities": {}, "processId": None}, id=1)
    protocol = server.protocol

    async def never() -> None:
        await asyncio.Event().wait()

    def notification() -> Any:  # as pygls runs didOpen: a generator yielding to a coroutine
        yield never, (), None

    protocol._execute_handler("pending", notification, protocol._check_handler_result)
    _message(server, "shutdown", None, id=2)
    await asyncio.sleep(0)
    [answer] = [m for m in sent if getattr(m, "id", None) == 2]
    assert getattr(answer, "error", None) is None
    assert "pending" not in protocol._request_futures  # the cancelled one dropped too
