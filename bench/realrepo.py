"""Speed on a big real package (issue: real repositories), cold and warm, CLI and editor.

    python -m bench.realrepo [--package DIR] [--file REL] [--python PY] [--repeat N]

Defaults: timm from the corpus (``python -m bench.corpus`` fetches it into /work/corpus,
with an interpreter that can import it at /work/corpus/.venv). Measures, each in a fresh
process, with a fresh cache folder for "cold":

- ``annotate FILE``: cold once (no cache, worker started), warm median of N (cache hit);
- ``summary FOLDER`` (the package's models folder), as a table and as JSON: cold once,
  warm median of N/2;
- the language server: didOpen of FILE to its first class lens, cold (fresh server, no
  cache), and reopened on the unchanged project (fresh server, persisted cache).

Targets: warm annotate < 200 ms, warm folder < 10 s, cold folder < 2 min, first lens < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import lsp as lspbench

CORPUS = Path("/work/corpus")


def timed(args: list[str], cache: str) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "paramlens", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PARAMLENS_CACHE_DIR": cache},
        check=False,
    )
    return time.perf_counter() - started, done.returncode


async def first_lens(
    root: Path, file: Path, python: str, cache: str, want: str
) -> tuple[float, float]:
    """Seconds from didOpen to the class lens, and to the lenses with forward()'s shapes."""
    client = await lspbench.start(root, lspbench.Client({"python": python, "timeout": 30}), cache)
    started = time.perf_counter()
    uri = lspbench.open_doc(client, file)
    await asyncio.wait_for(lspbench.until_lenses(client, uri, want), 300)
    elapsed = time.perf_counter() - started
    await asyncio.wait_for(lspbench.until_lenses(client, uri, want, shapes=True), 300)
    with_shapes = time.perf_counter() - started
    await lspbench.stop(client)
    return elapsed, with_shapes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--package", type=Path, default=CORPUS / "src/timm/timm")
    parser.add_argument("--file", default="models/vision_transformer.py")
    parser.add_argument("--folder", default="models")
    parser.add_argument("--lens", default="VisionTransformer", help="text of the lens to wait for")
    parser.add_argument("--python", default=str(CORPUS / ".venv/bin/python"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-folder", action="store_true")
    args = parser.parse_args()
    file, folder = args.package / args.file, args.package / args.folder
    py = ["--python", args.python, "--timeout", "30"]
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory() as cache:
        cold, code = timed(["annotate", str(file), *py], cache)
        warm = [timed(["annotate", str(file), *py], cache)[0] for _ in range(args.repeat)]
        rows.append(("annotate FILE, cold", f"{cold:.2f} s", f"exit {code}"))
        rows.append(
            (
                f"annotate FILE, warm (median of {args.repeat})",
                f"{statistics.median(warm):.3f} s",
                "target < 0.2 s",
            )
        )
        lens_cold, shapes_cold = asyncio.run(
            first_lens(args.package.parent, file, args.python, "off", args.lens)
        )
        rows.append(("editor: first lens, cold (no cache)", f"{lens_cold:.2f} s", "target < 5 s"))
        rows.append(("editor: its shapes, cold", f"{shapes_cold:.2f} s", "forward() follows"))
        lens_reopen, _ = asyncio.run(
            first_lens(args.package.parent, file, args.python, cache, args.lens)
        )
        rows.append(
            (
                "editor: first lens, reopened unchanged project",
                f"{lens_reopen:.3f} s",
                "persisted cache",
            )
        )

    if not args.skip_folder:
        # as a user types it (a table), and as a program reads it (JSON, with every line's
        # shapes traced through forward(): the table shows none, so it traces none)
        for fmt in ("table", "json"):
            with tempfile.TemporaryDirectory() as cache:
                command = ["summary", str(folder), "--format", fmt, *py]
                cold, code = timed(command, cache)
                repeat = max(1, args.repeat // 2)
                warm = [timed(command, cache)[0] for _ in range(repeat)]
            rows.append(
                (f"summary FOLDER ({fmt}), cold", f"{cold:.1f} s", f"exit {code}; target < 120 s")
            )
            rows.append(
                (
                    f"summary FOLDER ({fmt}), warm (median of {repeat})",
                    f"{statistics.median(warm):.2f} s",
                    "target < 10 s",
                )
            )

    print(f"package: {args.package}  file: {args.file}  python: {args.python}")
    width = max(len(r[0]) for r in rows) + 2
    for label, value, note in rows:
        print(f"{label:<{width}}{value:>10}   {note}")


if __name__ == "__main__":
    main()
