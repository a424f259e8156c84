"""Start-up against its floor, the user's ``import torch``, side by side in one run.

    python -m bench.startup [--repeat N]

Each round runs every command once, in turn, so that the machine's load falls on all of
them alike; the table gives each command's median wall time over the rounds and its ratio
to ``python -c "import torch"`` (the same interpreter):

- ``summary FILE::Class`` cold: a fresh CLI, worker and torch import, cache off; as a
  table (the default, as the issue's commands) and as JSON (which also traces the shapes
  of forward()'s own lines);
- the same with the results already cached (a fresh CLI, a warm cache folder), and whether
  that run imported torch anywhere (``-X importtime`` on the CLI; the worker, which always
  imports torch, must not have started);
- the language server: a fresh server opening the seed file, to its first lens with
  figures (cache off).

paramlens's bytecode is written first, as installing it does (this machine sets
PYTHONDONTWRITEBYTECODE=1); ``--from-source`` measures runs that compile it every time.

Targets (issue: start-up at the floor): cold ≤ 1.2 x import torch, the 70B fixture < 5 s,
cached < 0.3 s with no torch, first lens ≤ 1.2 x import torch plus the build.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import lsp as lspbench
from bench.common import FIXTURES, REPO, bytecode, median

CASES = [
    ("seed MLP", "recipe/models.py", "NeuralNetwork"),
    ("GPT-2 XL", "gpt/xl.py", "GPT2XL"),
    ("LLaMA-2 70B", "llama/model.py", "Transformer"),
]


def wall(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stderr


def summary(target: str, *flags: str, fmt: str = "table") -> list[str]:
    command = [sys.executable, *flags, "-m", "paramlens", "summary", target, "-v"]
    return [*command, "--format", fmt]


async def first_lens(file: Path) -> float:
    client = await lspbench.start(FIXTURES, lspbench.Client({}), "off")
    started = time.perf_counter()
    uri = lspbench.open_doc(client, file)
    await asyncio.wait_for(lspbench.until_lenses(client, uri, "params"), 120)
    elapsed = time.perf_counter() - started
    await lspbench.stop(client)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--from-source", action="store_true", help="no bytecode for paramlens: compile each run"
    )
    args = parser.parse_args()
    compiled = bytecode(args.from_source)

    times: dict[str, list[float]] = {}
    torch_in_cached: list[str] = []
    with tempfile.TemporaryDirectory() as warm_cache:
        for _case, rel, name in CASES:  # fill the warm cache once
            target = f"{FIXTURES / rel}::{name}"
            wall(summary(target), {"PARAMLENS_CACHE_DIR": warm_cache})
        for _ in range(args.repeat):
            seconds, _ = wall([sys.executable, "-c", "import torch"])
            times.setdefault("python -c 'import torch'", []).append(seconds)
            for case, rel, name in CASES:
                target = f"{FIXTURES / rel}::{name}"
                cold, _ = wall(summary(target), {"PARAMLENS_CACHE_DIR": "off"})
                times.setdefault(f"{case}: summary, cold", []).append(cold)
                # JSON carries the shapes of forward()'s own lines: traced, unlike the table
                cold, _ = wall(summary(target, fmt="json"), {"PARAMLENS_CACHE_DIR": "off"})
                times.setdefault(f"{case}: summary --format json, cold", []).append(cold)
                cached, log = wall(
                    summary(target, "-X", "importtime"),
                    {"PARAMLENS_CACHE_DIR": warm_cache},
                )
                times.setdefault(f"{case}: summary, cached", []).append(cached)
                if "| torch\n" in log or "jobs run: 0" not in log:
                    torch_in_cached.append(case)
            lens = asyncio.run(first_lens(FIXTURES / "recipe/models.py"))
            times.setdefault("seed MLP: first lens in a fresh editor", []).append(lens)

    floor = median(times["python -c 'import torch'"])
    width = max(map(len, times)) + 2
    print(f"{'command':<{width}}{'median s':>10}{'x import torch':>16}")
    print("-" * (width + 26))
    for label, values in times.items():
        print(f"{label:<{width}}{median(values):>10.2f}{median(values) / floor:>15.2f}x")
    print(
        f"\nmedians of {args.repeat} interleaved rounds; cached runs that imported torch or "
        f"started a worker: {sorted(set(torch_in_cached)) or 'none'}; {compiled}"
    )


if __name__ == "__main__":
    main()
