"""A/B of two paramlens source trees: the same JSON on the same targets, build times aside.

    python -m bench.ab BEFORE_SERVER AFTER_SERVER TARGET... [--python PY]

BEFORE_SERVER and AFTER_SERVER are ``server/`` folders (a ``git worktree`` of the old
commit gives the first). Each target (a file or a folder) is summarised as JSON by both,
with no cache, and the two outputs are compared after removing what may differ without a
change in behaviour: build and start-up times; paramlens's own frames in tracebacks (its
files moved, the user's lines did not); and where a timeout struck (it depends on the
machine's load: the message and kind are still compared). Prints one line per target with
the model count and wall time of each side, and the first difference if any. Exit 1 if any
target differs. For refactorings that must not change a figure (issue 17, item 4).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VOLATILE = {"build_ms", "elapsed_ms", "startup_ms"}
OWN_FRAME = re.compile(r'  File ".*/(server/paramlens|paramlens_worker)/')


def _traceback(text: str) -> str:
    kept, skipping = [], False
    for line in text.splitlines():
        if OWN_FRAME.match(line):
            skipping = True
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        kept.append(line)
    # the exception's module path names our files too: paramlens_worker.build.errors.X
    return re.sub(r"paramlens_worker\.[\w.]*\.(\w+)", r"\1", "\n".join(kept))


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("kind") == "timeout":
            value = {k: v for k, v in value.items() if k in ("message", "kind")}
        return {
            k: _traceback(v) if k == "traceback" and isinstance(v, str) else normalised(v)
            for k, v in value.items()
            if k not in VOLATILE
        }
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}: on one side only"
            found = first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where}[{index}]")
            if found:
                return found
    elif a != b:
        return f"{where}: {str(a)[:120]!r} vs {str(b)[:120]!r}"
    return None


def summary(server: Path, target: str, python: str) -> tuple[Any, float]:
    env = {**os.environ, "PYTHONPATH": str(server), "PARAMLENS_CACHE_DIR": "off"}
    command = [sys.executable, "-m", "paramlens", "summary", target, "--format", "json"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--python", python], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some model could not be built, on both sides
        raise SystemExit(f"{server}: exit {done.returncode} on {target}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--python", default=sys.executable, help="the worker's interpreter")
    args = parser.parse_args()
    differ = 0
    for target in args.targets:
        (a, a_s), (b, b_s) = (summary(s, target, args.python) for s in (args.before, args.after))
        found = first_difference(normalised(a), normalised(b))
        differ += found is not None
        models = len(a.get("models", ()))
        verdict = "identical" if found is None else f"DIFFER at {found}"
        print(f"{target}: {models} models, {a_s:.1f} s vs {b_s:.1f} s: {verdict}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
