"""Shapes through forward(): paramlens against torchinfo.summary(model, input_data=...), side
by side in one run, and what shapes add to a warm analysis.

    python -m bench.shapes [--repeat N] [--xl]

- GPT-2 small at [1, 1024] tokens (``fixtures/gpt/model.py``; ``--xl``: GPT-2 XL as well):
  ``paramlens summary --input`` cold (fresh CLI and worker, no cache) against torchinfo's
  path (build on CPU, ``torchinfo.summary(model, input_data=x)``), wall time and peak PSS of
  the process tree as medians and ratios; then every module's output shape compared with
  torchinfo's Output Shape for the same module, and the mult-adds totals.
- A warm analysis (live worker, results cache cleared) of the seed file and of GPT-2 small
  at [1, 1024], with shapes and without: the medians and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from paramlens.config import Settings
from paramlens.engine.engine import Engine

from bench.common import FIXTURES, measure, median, paramlens_summary

TOKENS = "torch.randint(0, 50257, (1, 1024))"
CASES = [("GPT-2 small", "gpt/model.py", "GPT", "GPT(GPTConfig())")]
XL = ("GPT-2 XL", "gpt/xl.py", "GPT2XL", "GPT2XL()")

TORCHINFO = """
import importlib.util, json, sys
from pathlib import Path
import torch, torchinfo
path, expression, tokens = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, str(path.parent))
spec = importlib.util.spec_from_file_location("bench_target", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = eval(expression, vars(module))
names = {id(m): n for n, m in model.named_modules()}
stats = torchinfo.summary(model, input_data=eval(tokens), verbose=0, depth=99)
shapes = {}
for info in stats.summary_list:
    name = names.get(id(info.module))
    if name is not None and name not in shapes and info.output_size:  # [] : never called
        shapes[name] = str(list(info.output_size))
print(json.dumps({"shapes": shapes, "mult_adds": stats.total_mult_adds}))
"""


def paramlens_run(file: Path, name: str) -> tuple[float, float, dict]:
    flags = ("--timeout", "120", "--memory-mb", "8192", "--input", TOKENS)
    return paramlens_summary(file, name, *flags)


def torchinfo_run(file: Path, expression: str) -> tuple[float, float, dict]:
    run = measure([sys.executable, "-c", TORCHINFO, str(file), expression, TOKENS])
    if run.returncode != 0:
        raise SystemExit(f"torchinfo failed on {file}:\n{run.stderr}")
    return run.seconds, run.peak_mb, json.loads(run.stdout.strip().splitlines()[-1])


async def warm_analyses(file: Path, repeat: int, inputs: dict[str, str]) -> dict[bool, list[float]]:
    times: dict[bool, list[float]] = {True: [], False: []}
    for shapes in (True, False):
        settings = Settings(shapes=shapes, inputs=inputs, timeout=120, memory_mb=8192)
        engine = Engine(lambda _, settings=settings: settings)
        await engine.analyze(str(file), FIXTURES)  # starts the worker, imports torch
        for _ in range(repeat):
            engine.cache.memory.clear()
            started = time.perf_counter()
            await engine.analyze(str(file), FIXTURES)
            times[shapes].append((time.perf_counter() - started) * 1000)
        await engine.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--xl", action="store_true", help="GPT-2 XL too (torchinfo: ~7 GB)")
    args = parser.parse_args()

    print(
        f"{'model':<14}{'paramlens s':>12}{'MB':>7} | {'torchinfo s':>12}{'MB':>7} | "
        f"{'speed':>7}{'memory':>8} | output shapes equal | mult-adds (paramlens / torchinfo)"
    )
    for label, rel, name, expression in CASES + ([XL] if args.xl else []):
        file = FIXTURES / rel
        ours = [paramlens_run(file, name) for _ in range(args.repeat)]
        theirs = [torchinfo_run(file, expression) for _ in range(args.repeat)]
        seconds, peak = median([r[0] for r in ours]), median([r[1] for r in ours])
        t_seconds, t_peak = median([r[0] for r in theirs]), median([r[1] for r in theirs])
        model, info = ours[0][2], theirs[0][2]
        rows = {row["path"]: row["output_shape"] for row in model["tree"] if row["path"]}
        shown = {p: s for p, s in info["shapes"].items() if p}
        compared = [p for p in shown if rows.get(p)]
        different = [p for p in compared if rows[p] != shown[p]]
        missing = [p for p in shown if not rows.get(p)]
        verdict = f"{len(compared) - len(different)}/{len(shown)} equal"
        if different or missing:
            verdict += f" (different: {different[:3]}, missing: {missing[:3]})"
        print(
            f"{label:<14}{seconds:>12.2f}{peak:>7.0f} | {t_seconds:>12.2f}{t_peak:>7.0f} | "
            f"{t_seconds / seconds:>6.1f}x{t_peak / peak:>7.1f}x | {verdict} | "
            f"{model['forward']['macs']:,} / {info['mult_adds']:,}",
            flush=True,
        )
    print("\nwarm analysis (live worker, results cache cleared), median ms, shapes on / off:")
    for label, file, inputs in (
        ("seed file (2 models)", FIXTURES / "recipe/models.py", {}),
        ("GPT-2 small [1, 1024]", FIXTURES / "gpt/model.py", {"GPT": TOKENS}),
    ):
        times = asyncio.run(warm_analyses(file, 10 * args.repeat, inputs))
        on, off = median(times[True]), median(times[False])
        print(f"  {label:<24}{on:>8.1f} / {off:>8.1f}   shapes add {on - off:.1f} ms")


if __name__ == "__main__":
    main()
