"""paramlens's figures under another torch, against this checkout's own interpreter.

    python -m bench.torch_versions --python OTHER_PY [FOLDER ...]

The worker runs in the user's interpreter and promises torch 2.1+. This runs
``paramlens summary FOLDER --format json`` with ``--python`` this interpreter and then
``OTHER_PY`` (an interpreter with another torch; PyPI's Linux wheels of torch < 2.4 need
their ``nvidia-*`` packages to import, CPU or not) and prints, per model, the figures
that differ: parameters, forward() output shape, multiply-adds, saved activations, the
training step's peak, errors. Kernels differ between versions, so activation bytes and
peaks may rightly differ; parameters, shapes and multiply-adds should not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

FOLDERS = ("fixtures/recipe", "fixtures/gpt", "fixtures/llama", "fixtures/realcode")
FIELDS = ("total_params", "trainable_params", "buffer_numel")


def summary(python: str, target: str) -> list[dict[str, Any]] | str:
    command = [sys.executable, "-m", "paramlens", "summary", target, "--format", "json"]
    done = subprocess.run(
        [*command, "--no-cache", "--python", python], capture_output=True, text=True, timeout=1800
    )
    try:
        return list(json.loads(done.stdout)["models"])
    except (ValueError, KeyError):
        return done.stderr[-2000:]


def figures(model: dict[str, Any]) -> dict[str, Any]:
    forward = model.get("forward") or {}
    error = model.get("error") or {}
    return {
        **{f: model.get(f) for f in FIELDS},
        "error": error.get("message"),
        "output_shape": forward.get("output_shape"),
        "macs": forward.get("macs"),
        "forward_error": (forward.get("error") or {}).get("message"),
        "activation_bytes": forward.get("activation_bytes"),
        "peak": (forward.get("step") or {}).get("peak"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the interpreter with the other torch")
    parser.add_argument("folders", nargs="*", default=FOLDERS)
    args = parser.parse_args()
    for folder in args.folders:
        ours, theirs = summary(sys.executable, folder), summary(args.python, folder)
        if isinstance(ours, str) or isinstance(theirs, str):
            print(f"{folder}: failed\n{ours if isinstance(ours, str) else theirs}")
            continue
        mine = {(m["file"], m["name"]): figures(m) for m in ours}
        other = {(m["file"], m["name"]): figures(m) for m in theirs}
        differ = 0
        for key in sorted(mine.keys() | other.keys()):
            a, b = mine.get(key), other.get(key)
            if a != b:
                differ += 1
                changed = (
                    {f: (a.get(f), b.get(f)) for f in a if a.get(f) != b.get(f)}
                    if a and b
                    else "missing"
                )
                print(f"  {key[1]}: {changed}")
        print(f"{folder}: {len(mine)} models, {differ} with other figures")


if __name__ == "__main__":
    main()
