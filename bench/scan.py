"""Benchmark discovery on a large workspace: cold (every file parsed) and warm (stat only).

    python -m bench.scan [--packages 50] [--files 60]

Builds a synthetic workspace of copies of the GPT fixture (about 100 lines, 5 classes each)
in a temporary folder and times ``paramlens.analysis.workspace.scan`` on it (median of 5 warm runs).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from paramlens.analysis.workspace import scan

from bench.common import FIXTURES, median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--files", type=int, default=60)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paramlens-scan-"))
    source = (FIXTURES / "gpt/model.py").read_text()
    for p in range(args.packages):
        package = root / f"pkg{p}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for f in range(args.files):
            (package / f"mod{f}.py").write_text(source)
    cache: dict = {}
    started = time.perf_counter()
    workspace = scan(root, None, cache)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        scan(root, None, cache)
        warm.append(time.perf_counter() - started)
    lines = sum(len(info.text.splitlines()) for info in workspace.files.values())
    print(
        f"{len(workspace.files)} files, {lines:,} lines, {len(workspace.module_classes):,} module classes: "
        f"cold scan {cold * 1000:.0f} ms, warm scan median {median(warm) * 1000:.0f} ms"
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
