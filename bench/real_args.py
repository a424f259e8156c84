"""Classes with figures from real arguments vs example sizes (issue 20), on given targets.

    python -m bench.real_args [--python PY] [--worker-python WPY] TARGET [TARGET ...]

Runs ``PY -m paramlens summary TARGET --format json`` (PY: this interpreter; another
checkout's interpreter measures that checkout, e.g. ``/work/main/.venv/bin/python`` for
"before") with no cache, its builds in ``WPY`` (``--python`` of paramlens: an interpreter
with the project's dependencies, e.g. the corpus's ``/work/corpus/.venv/bin/python`` for
checkouts of vit-pytorch, x-transformers or MONAI), and sorts every model class of the
targets by where its figures came from:

- real: built with arguments the project gives (defaults, a config class or method, a
  call site, a script's line, an example in its documentation, pyproject.toml), or measured as instances inside such a
  model, or listed with configuration files (``kind`` ``"config"``) or factories;
- example: figures only from example sizes guessed from parameter names;
- none: no figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter


def category(model: dict, configured: set[str]) -> str:
    """``real: <source kind>``, ``example`` or ``none`` for one class result (``configured``:
    the classes that a factory or configuration file built without error)."""
    if model["error"] is None and not model["example"]:
        return f"real: {model.get('source_kind') or 'built'}"
    if model["model_class"] in configured or (model["error"] is None and model["example"] is False):
        return "real: configs or factories"
    if model.get("instances"):
        return "real: instances in a real model"
    return "example" if model["error"] is None and model["example"] else "none"


def categories(models: list[dict]) -> dict[str, str]:
    """Each class result's category, by its qualified name (``model_class``)."""
    configured = {m["model_class"] for m in models if m["kind"] in ("factory", "config")}
    configured &= {m["model_class"] for m in models if m["error"] is None}
    return {
        m["model_class"] or m["name"]: category(m, configured)
        for m in models
        if m["kind"] == "class"
    }


def classify(models: list[dict]) -> Counter[str]:
    """real / example / none per class; how the real ones got theirs, by source kind."""
    counts: Counter[str] = Counter()
    configured = {m["model_class"] for m in models if m["kind"] in ("factory", "config")}
    configured &= {m["model_class"] for m in models if m["error"] is None}
    for m in models:
        if m["kind"] != "class":
            continue
        kind = category(m, configured)
        counts[kind.split(":")[0]] += 1
        if kind.startswith("real: "):
            counts[kind] += 1
    return counts


def measure(python: str, target: str, worker: str | None = None) -> Counter[str]:
    command = [python, "-m", "paramlens", "summary", target, "--format", "json", "--no-shapes"]
    command += ["--python", worker] if worker else []
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PARAMLENS_CACHE_DIR": cache},
        )
    if not done.stdout:
        raise SystemExit(f"{target}: {done.stderr[-2000:]}")
    return classify(json.loads(done.stdout)["models"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--worker-python", help="the interpreter paramlens builds in")
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    total: Counter[str] = Counter()
    for target in args.targets:
        counts = measure(args.python, target, args.worker_python)
        total += counts
        print(f"{target}: {dict(sorted(counts.items()))}")
    print(f"all: {dict(sorted(total.items()))}")


if __name__ == "__main__":
    main()
