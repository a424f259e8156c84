"""Latency of the editor's shape requests answered from memory: inlay hints and code actions.

    python -m bench.editor_shapes [--requests N]

One language server (on-disk cache off) on the fixtures folder opens, one after another and
each once the one before shows output shapes in its lenses, the seed file
(``recipe/models.py``), GPT-2 small (``gpt/model.py``) and the LeNet whose forward() fails
(``shapes/lenet.py``, input from the ``inputs`` setting as in the end-to-end test; it is
ready when its quick fix is offered). Then, per file, N ``textDocument/inlayHint`` requests
over the whole file and N ``textDocument/codeAction`` requests on one line, one after
another: median, p95, p99 and max in ms. On LeNet the code action is asked on the warning's
line with the warning in its context, as VS Code does, and returns the quick fix; elsewhere
it returns nothing.

Target (issue: shapes in the editor): p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from lsprotocol import types as lsp

from bench import lsp as lspbench
from bench.common import FIXTURES, median, percentile

LENET_INPUT = "torch.randn(1, 3, 32, 32)"  # fc1 declares 256 inputs, receives 400
# file, lens text that shows forward() ran, 1-based line for code actions
FILES = [
    ("recipe/models.py", "→ [1, 512]", 19),  # x = self.flatten(x)
    ("gpt/model.py", "→ [1, 1024, 50257]", 80),  # x = self.transformer.wte(idx) + ...
    ("shapes/lenet.py", "Linear(256 -> 120)", 18),  # x = F.relu(self.fc1(x)), the warning's line
]


def whole_file(path: Path) -> lsp.Range:
    return lsp.Range(lsp.Position(0, 0), lsp.Position(len(path.read_text().splitlines()) + 1, 0))


async def inlay_hints(client: lspbench.Client, uri: str, range_: lsp.Range) -> list[lsp.InlayHint]:
    params = lsp.InlayHintParams(lsp.TextDocumentIdentifier(uri), range_)
    return await client.text_document_inlay_hint_async(params) or []


async def code_actions(
    client: lspbench.Client, uri: str, line: int, diagnostics: list[lsp.Diagnostic]
) -> list[lsp.CodeAction]:
    at = lsp.Position(line - 1, 8)
    params = lsp.CodeActionParams(
        lsp.TextDocumentIdentifier(uri), lsp.Range(at, at), lsp.CodeActionContext(diagnostics)
    )
    found = await client.text_document_code_action_async(params) or []
    return [a for a in found if isinstance(a, lsp.CodeAction)]


async def until_lenses(client: lspbench.Client, uri: str, want: str) -> None:
    try:
        await asyncio.wait_for(lspbench.until_lenses(client, uri, want, shapes=True), 120)
    except TimeoutError:
        lenses = await lspbench.code_lenses(client, uri)
        titles = "\n".join(lens.command.title for lens in lenses if lens.command)
        raise SystemExit(f"{uri}: no lens with {want!r} after 120 s; lenses:\n{titles}") from None


async def until_quick_fix(client: lspbench.Client, uri: str, line: int) -> list[lsp.Diagnostic]:
    """The diagnostics of the first quick fix offered on ``line`` (an editor sends those back)."""
    while True:
        for action in await code_actions(client, uri, line, []):
            if action.diagnostics:
                return list(action.diagnostics)
        await asyncio.sleep(0.05)


async def latencies(
    requests: int, send: Callable[..., Awaitable[object]], *args: object
) -> list[float]:
    """Milliseconds of ``requests`` calls of ``send(*args)``, one after another."""
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        await send(*args)
        times.append((time.perf_counter() - started) * 1000)
    return times


def row(label: str, times: list[float], answer: str) -> str:
    figures = (
        f"median {median(times):6.2f}  p95 {percentile(times, 95):6.2f}  "
        f"p99 {percentile(times, 99):6.2f}  max {max(times):6.2f} ms"
    )
    return f"{label:<42}{figures}   {answer}"


async def run(requests: int) -> None:
    settings = {"timeout": 30, "inputs": {"LeNet": LENET_INPUT}}
    client = await lspbench.start(FIXTURES, lspbench.Client(settings))
    started = time.perf_counter()
    uris: dict[str, str] = {}
    # One at a time: a file opened right after `initialized` can be analysed before the
    # server's settings pull is answered (without LeNet's input), and is not analysed
    # again when the answer comes.
    for rel, want, _ in FILES:
        uris[rel] = lspbench.open_doc(client, FIXTURES / rel)
        await until_lenses(client, uris[rel], want)
    lenet_line = FILES[-1][2]
    warning = await asyncio.wait_for(until_quick_fix(client, uris[FILES[-1][0]], lenet_line), 60)
    print(f"3 files open, lenses with shapes after {time.perf_counter() - started:.1f} s")

    rows = []
    for rel, _, line in FILES:
        uri, range_ = uris[rel], whole_file(FIXTURES / rel)
        context = warning if rel == FILES[-1][0] else []
        hints = await inlay_hints(client, uri, range_)
        actions = await code_actions(client, uri, line, context)
        hint_times = await latencies(requests, inlay_hints, client, uri, range_)
        action_times = await latencies(requests, code_actions, client, uri, line, context)
        rows.append(row(f"inlayHint  {rel} (whole file)", hint_times, f"{len(hints)} hints"))
        titles = ", ".join(repr(a.title) for a in actions) or "none"
        rows.append(row(f"codeAction {rel}:{line}", action_times, f"actions: {titles}"))
    await lspbench.stop(client)

    print(f"{requests} requests each, one after another; target p99 < 20 ms")
    for text in rows:
        print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="of each kind, per file")
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
