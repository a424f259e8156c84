"""No request goes unanswered and no document stalls the server: invalid params, huge files."""

from __future__ import annotations

import asyncio
import re
import statistics
import time

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import eventually, lens_titles, open_file, uri

SEED = FIXTURES / "recipe/models.py"


@pytest.mark.parametrize("line", ["ten", -1, 2**63])
async def test_a_request_with_invalid_params_gets_an_invalid_params_error(
    client: LanguageClient, line: object
) -> None:
    seed = open_file(client, SEED)
    params = {"textDocument": {"uri": seed}, "position": {"line": line, "character": 0}}
    # sent raw: the client's own types would refuse to write such a request
    answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    client.protocol._request_futures[f"bad-{line}"] = answer
    client.protocol._send_data(
        {"jsonrpc": "2.0", "id": f"bad-{line}", "method": "textDocument/hover", "params": params}
    )
    with pytest.raises(JsonRpcInvalidParams, match="invalid params for textDocument/hover"):
        await asyncio.wait_for(answer, timeout=10)
    hover = await client.text_document_hover_async(  # and the server still answers
        lsp.HoverParams(lsp.TextDocumentIdentifier(seed), lsp.Position(10, 14))
    )
    assert hover is not None or await lens_titles(client, seed)


def generated_source(megabytes: int) -> str:
    line = "VALUE_{:07d} = {}  # generated table of constants, as protobuf or codegen write them\n"
    lines = [line.format(i, i) for i in range(megabytes * 10**6 // 100)]
    return "from torch import nn\n\n\nclass Huge(nn.Module):\n    pass\n\n\n" + "".join(lines)


async def hover_latencies(
    client: LanguageClient, seed: str, seconds: float
) -> list[tuple[float, bool]]:
    """(seconds, answered with content) of each hover over ``seconds``."""
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        answer = await client.text_document_hover_async(
            lsp.HoverParams(lsp.TextDocumentIdentifier(seed), lsp.Position(10, 14))
        )
        latencies.append((time.perf_counter() - started, answer is not None))
        await asyncio.sleep(0.02)
    return latencies


async def test_a_10_mb_document_does_not_block_hovers_and_says_why_it_is_skipped(
    client: LanguageClient,
) -> None:
    seed = open_file(client, SEED)
    await lens_titles(client, seed)
    path = FIXTURES / "generated_10mb.py"  # never written to disk: the editor's buffer
    text = generated_source(10)
    measuring = asyncio.ensure_future(hover_latencies(client, seed, 6))
    await asyncio.sleep(0.2)
    big = open_file(client, path, text)
    for version in range(2, 7):  # a few keystrokes in the middle of the file
        await asyncio.sleep(0.3)
        middle = len(text.splitlines()) // 2
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=version, uri=big),
                [
                    lsp.TextDocumentContentChangePartial(
                        lsp.Range(lsp.Position(middle, 0), lsp.Position(middle, 0)), "# "
                    )
                ],
            )
        )
    answers = await measuring
    latencies = [seconds for seconds, _ in answers]
    print(
        f"hover latency during a 10 MB didOpen + 5 didChange: median "
        f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    assert max(latencies) < 1.0
    assert all(content for _, content in answers), [(round(s, 3), c) for s, c in answers]

    async def skipped() -> list[lsp.Diagnostic] | None:
        return client.diagnostics.get(uri(path)) or None

    (diagnostic,) = await eventually(skipped, timeout=60)
    assert re.match(r"paramlens skips files over 1 MB \(this one: \d+\.\d MB\)", diagnostic.message)
    assert diagnostic.range.start.line == 0
