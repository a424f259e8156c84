"""Soak: a long scripted editing session against one language server, over stdio.

    python -m bench.soak [--minutes 60] [--seed 1] [--package DIR --files PATH ...]

A seeded random session over real model files (the fixtures' recipe, GPT-2, LLaMA and a
vit-pytorch-shaped model; with ``--package``, a copy of a real package, e.g. timm's
``timm/`` folder from its wheel, and ``--files`` inside it such as
``models/resnet.py``): edits that change a layer's
width (as typed: a few characters, in the open buffer), saves, opens, closes, hovers on
layer lines and code-lens requests, with a short think time between actions. Every few
minutes, and at the start and the end, it samples the resident memory of the server and of
its worker (the server's long-lived child; build children come and go). It prints the
memory samples, then the latency percentiles of hovers and code lenses, and of an edit to
its file's fresh lenses. Flat memory is the target (issue 22, item 4).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp

from bench.common import FIXTURES, percentile
from bench.lsp import Client, code_lenses, open_doc, start, stop

FILES = ["recipe/models.py", "gpt/model.py", "llama/model.py", "zoo/models/vit.py"]
LINEAR = re.compile(r"nn\.Linear\((\d+), (\d+)")
SAMPLE_EVERY_S = 300.0


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def oldest_child(pid: int) -> int | None:
    """The server's worker: its child python that started first (build children come and
    go under the worker, not under the server)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields[1] is the parent pid, fields[19] the start time
            children.append((int(fields[19]), int(stat.parent.name)))
    return min(children)[1] if children else None


class Session:
    def __init__(self, client: Client, files: list[Path], rng: random.Random) -> None:
        self.client, self.files, self.rng = client, files, rng
        self.open: dict[Path, tuple[str, int, str]] = {}  # path -> uri, version, text
        self.hovers: list[float] = []
        self.lenses: list[float] = []
        self.edits: list[float] = []

    def do_open(self, path: Path) -> None:
        text = path.read_text()
        self.open[path] = (open_doc(self.client, path, text), 1, text)

    def close(self, path: Path) -> None:
        uri, _, _ = self.open.pop(path)
        self.client.text_document_did_close(
            lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )

    async def edit(self, path: Path, save: bool) -> None:
        """A layer's output width typed anew; waits for a lens showing it (if it builds)."""
        uri, version, text = self.open[path]
        matches = list(LINEAR.finditer(text))
        if not matches:
            return
        match = self.rng.choice(matches)
        width = self.rng.randint(8, 1024)
        text = text[: match.start(2)] + str(width) + text[match.end(2) :]
        self.open[path] = (uri, version + 1, text)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version + 1),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        if save:
            path.write_text(text)
            self.client.text_document_did_save(
                lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
            )
        started = time.perf_counter()
        wanted = f"-> {width})"
        while time.perf_counter() - started < 30:
            titles = [lens.command.title for lens in await self.timed_lenses(uri) if lens.command]
            if any(wanted in t for t in titles) and not any("(stale)" in t for t in titles):
                self.edits.append(time.perf_counter() - started)
                return
            await asyncio.sleep(0.05)

    async def timed_lenses(self, uri: str) -> list[lsp.CodeLens]:
        started = time.perf_counter()
        lenses = await code_lenses(self.client, uri)
        self.lenses.append(time.perf_counter() - started)
        return lenses

    async def hover(self, path: Path) -> None:
        uri, _, text = self.open[path]
        lines = [i for i, line in enumerate(text.splitlines()) if "nn." in line]
        line = self.rng.choice(lines) if lines else 0
        started = time.perf_counter()
        await self.client.text_document_hover_async(
            lsp.HoverParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=line, character=12),
            )
        )
        self.hovers.append(time.perf_counter() - started)

    async def step(self) -> None:
        path = self.rng.choice(self.files)
        if path not in self.open:
            self.do_open(path)
            return
        action = self.rng.choices(
            ["edit", "edit-save", "hover", "lens", "close"], weights=[3, 1, 4, 3, 1]
        )[0]
        if action == "close" and len(self.open) > 1:
            self.close(path)
        elif action.startswith("edit"):
            await self.edit(path, save=action == "edit-save")
        elif action == "hover":
            await self.hover(path)
        else:
            await self.timed_lenses(self.open[path][0])


def table(name: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{name:<28} none"
    ms = [s * 1000 for s in seconds]
    cells = " ".join(f"{percentile(ms, p):9.1f}" for p in (50, 90, 99))
    return f"{name:<28} {len(ms):7d} {cells} {max(ms):9.1f}"


async def run(minutes: float, seed: int, package: Path | None, inside: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="paramlens-soak-"))
    (work / "pyproject.toml").write_text("[tool.paramlens]\n")
    files = []
    for name in FILES:
        target = work / name.replace("/", "_")
        shutil.copy(FIXTURES / name, target)
        files.append(target)
    if package is not None:
        shutil.copytree(package, work / package.name)
        files += [work / package.name / name for name in inside]
    client = await start(work)
    assert client._server is not None
    server = client._server.pid
    session = Session(client, files, random.Random(seed))
    session.do_open(files[0])
    await session.edit(files[0], save=False)  # the worker is up: memory from here on
    worker = oldest_child(server)
    samples: list[tuple[float, float, float]] = []

    def sample(elapsed: float) -> None:
        samples.append((elapsed / 60, rss_mb(server), rss_mb(worker) if worker else 0.0))
        minute, server_mb, worker_mb = samples[-1]  # as it goes: a long run shows its trend
        print(
            f"minute {minute:5.1f}: server {server_mb:.1f} MB, worker {worker_mb:.1f} MB, "
            f"{table('hover', session.hovers).split(maxsplit=1)[1]}",
            flush=True,
        )

    started = time.perf_counter()
    sample(0.0)
    next_sample = SAMPLE_EVERY_S
    actions = 0
    while (elapsed := time.perf_counter() - started) < minutes * 60:
        await session.step()
        actions += 1
        if elapsed >= next_sample:
            sample(elapsed)
            next_sample += SAMPLE_EVERY_S
        await asyncio.sleep(session.rng.uniform(0.05, 0.5))  # think time
    sample(time.perf_counter() - started)
    await stop(client)
    shutil.rmtree(work, ignore_errors=True)

    print(f"{actions} actions in {minutes:g} min (seed {seed}), {len(files)} files")
    print(f"{'minute':>8} {'server MB':>10} {'worker MB':>10}")
    for minute, server_mb, worker_mb in samples:
        print(f"{minute:8.1f} {server_mb:10.1f} {worker_mb:10.1f}")
    print(f"{'':<28} {'count':>7} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print(table("hover", session.hovers))
    print(table("codeLens", session.lenses))
    print(table("edit -> fresh lenses", session.edits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--package", type=Path, help="a package folder to copy in")
    parser.add_argument("--files", nargs="*", default=[], help="model files inside it")
    args = parser.parse_args()
    asyncio.run(run(args.minutes, args.seed, args.package, args.files))


if __name__ == "__main__":
    main()
