"""What opening a file costs when its classes are measured in the models of other files.

    python -m bench.dependents FOLDER FILE [FILE ...] [--python PY] [--runs N]

For each FILE (a path under the workspace FOLDER, e.g. timm's ``timm/layers/mlp.py``), a
fresh language server (on-disk cache off) opens it and this prints: seconds from didOpen
to its first lens, to its final lenses (the server's ``ready`` status), and the files the
server built for it (its own, then its users': :func:`paramlens.engine.engine.
dependents_to_build`). ``--python`` is the worker's interpreter (one with the package's
dependencies). Another checkout is measured by running this with its ``server/`` first on
``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

from bench.common import median
from bench.lsp import Client, code_lenses, open_doc, start, stop

JOB_SENT = re.compile(r"job \d+ sent: (\S+?),")


async def open_once(folder: Path, path: Path, python: str) -> tuple[float, float, list[str]]:
    settings = {"timeout": 60, **({"python": python} if python else {})}
    client = await start(folder, Client(settings))
    started = time.perf_counter()
    uri = open_doc(client, path)
    first = None
    while not client.ready.get(path.name):
        if first is None and await code_lenses(client, uri):
            first = time.perf_counter() - started
        await asyncio.sleep(0.02)
    final = time.perf_counter() - started
    built = [m.group(1) for _, line in client.logs if (m := JOB_SENT.search(line))]
    await stop(client)
    return first if first is not None else final, final, list(dict.fromkeys(built))


async def run(folder: Path, files: list[Path], python: str, runs: int) -> None:
    for path in files:
        times = [await open_once(folder, path, python) for _ in range(runs)]
        first = median([t[0] for t in times])
        final = median([t[1] for t in times])
        print(
            f"{path.relative_to(folder)}: first lens {first:.1f} s, final {final:.1f} s"
            f" (median of {runs}); built: {', '.join(times[-1][2])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--python", default="", help="the worker's interpreter")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    folder = args.folder.resolve()
    files = [folder / f for f in args.files]
    asyncio.run(run(folder, files, args.python, args.runs))


if __name__ == "__main__":
    main()
