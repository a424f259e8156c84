"""Opening one file of a real package in the editor: from didOpen to its first lenses and
to its final ones (the whole analysis over: classes, then factories and configurations).

    python -m bench.open_file WORKSPACE FILE [--python PY] [--rounds 3]

``WORKSPACE`` (a package's folder, e.g. /work/corpus/src/x-transformers) is copied to a
temporary folder with a ``pyproject.toml`` naming ``--python`` as the worker's
interpreter (the corpus's ``.venv``, which has the package's dependencies); ``FILE`` is
relative to it (``x_transformers/x_transformers.py``). Each round starts a fresh server
with the on-disk cache off, over stdio, with the interpreter running this script (so
another checkout's interpreter measures that checkout). Medians over ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.live_package import until_ready
from bench.lsp import code_lenses, open_doc, start, stop


async def once(workspace: Path, file: str) -> tuple[float, float, int]:
    client = await start(workspace)
    path = workspace / file
    started = time.perf_counter()
    uri = open_doc(client, path)
    first = 0.0
    while not first:
        if [lens for lens in await code_lenses(client, uri) if lens.command]:
            first = time.perf_counter() - started
        await asyncio.sleep(0.01)
    await until_ready(client, path.name, 1)
    final = time.perf_counter() - started
    lenses = [lens for lens in await code_lenses(client, uri) if lens.command]
    await stop(client)
    return first, final, len(lenses)


async def run(source: Path, file: str, python: str, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="paramlens-open-"))
    workspace = work / source.name
    shutil.copytree(source, workspace, ignore=shutil.ignore_patterns("*.dist-info"))
    (workspace / "pyproject.toml").write_text(f'[tool.paramlens]\npython = "{python}"\n')
    firsts, finals = [], []
    for _ in range(rounds):
        first, final, count = await once(workspace, file)
        firsts.append(first)
        finals.append(final)
        print(f"  first lenses {first:.2f} s, final {final:.2f} s ({count} lenses)")
    print(
        f"{file}: didOpen -> first lenses {statistics.median(firsts):.2f} s,"
        f" -> final lenses {statistics.median(finals):.2f} s (medians of {rounds})"
    )
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("file")
    parser.add_argument("--python", default="/work/corpus/.venv/bin/python")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.workspace, args.file, args.python, args.rounds))


if __name__ == "__main__":
    main()
