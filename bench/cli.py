"""Benchmark: `paramlens summary` against torchinfo's usual path, side by side in one run.

    python -m bench.cli [--repeat N] [--skip-torchinfo-xl]

For each fixture model: wall time (median of N cold runs: a fresh CLI, worker and torch
import each time, no cache) and peak PSS of the whole process tree; the same for
instantiating the model on CPU and calling torchinfo.summary; and whether each total
agrees with torch's own ``sum(p.numel() for p in model.parameters())``. Then a warm job:
the seed file rebuilt by a live worker (no cache), median of 30.
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

CASES = [
    ("seed MLP", "recipe/models.py", "NeuralNetwork", "NeuralNetwork()"),
    ("seed CNN", "recipe/models.py", "CNN", "CNN()"),
    ("GPT-2 small (tied)", "gpt/model.py", "GPT", "GPT(GPTConfig())"),
    ("GPT-2 XL", "gpt/xl.py", "GPT2XL", "GPT2XL()"),
    ("LLaMA-2 70B", "llama/model.py", "Transformer", "Transformer(ModelArgs())"),
]


def paramlens_run(file: Path, name: str) -> tuple[float, float, int]:
    seconds, peak_mb, model = paramlens_summary(file, name)
    return seconds, peak_mb, model["total_params"]


def torchinfo_run(file: Path, expression: str, *flags: str) -> tuple[float, float, int, int]:
    run = measure([sys.executable, "-m", "bench.torchinfo_path", str(file), expression, *flags])
    if run.returncode != 0:
        raise SystemExit(f"torchinfo path failed on {file}:\n{run.stderr}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return run.seconds, run.peak_mb, result["torchinfo_total"], result["torch_total"]


async def warm_job(repeat: int) -> list[float]:
    engine = Engine(lambda _: Settings())
    seed = str(FIXTURES / "recipe/models.py")
    await engine.analyze(seed, FIXTURES)  # starts the worker, imports torch
    times = []
    for _ in range(repeat):
        engine.cache.memory.clear()
        started = time.perf_counter()
        report = await engine.analyze(seed, FIXTURES)
        times.append((time.perf_counter() - started) * 1000)
        assert report.models[0].total_params == 669_706
    await engine.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--skip-torchinfo-xl", action="store_true", help="skip the 23 s, 7 GB CPU build"
    )
    args = parser.parse_args()

    header = f"{'model':<20}{'params':>16} | {'paramlens s':>11}{'MB':>7}{'ok':>4} | {'torchinfo s':>11}{'MB':>7}{'total':>16}{'ok':>4} | {'speed':>7}{'memory':>7}"
    print(header)
    print("-" * len(header))
    for label, rel, name, expression in CASES:
        file = FIXTURES / rel
        runs = [paramlens_run(file, name) for _ in range(args.repeat)]
        seconds = median([r[0] for r in runs])
        peak = median([r[1] for r in runs])
        total = runs[0][2]
        line = f"{label:<20}{total:>16,} | {seconds:>11.2f}{peak:>7.0f}"
        if "70B" in label or (args.skip_torchinfo_xl and "XL" in label):
            # torchinfo would need ~276 GB for 70B: compare with torch's count on meta instead
            truth = torchinfo_run(file, expression, "--meta")[3]
            line += f"{'yes' if total == truth else 'NO':>4} | {'(not run)':>11}{'':>7}{'':>16}{'':>4} |"
        else:
            info_runs = [
                torchinfo_run(file, expression) for _ in range(1 if "XL" in label else args.repeat)
            ]
            t_seconds = median([r[0] for r in info_runs])
            t_peak = median([r[1] for r in info_runs])
            t_total, truth = info_runs[0][2], info_runs[0][3]
            line += f"{'yes' if total == truth else 'NO':>4} | {t_seconds:>11.2f}{t_peak:>7.0f}{t_total:>16,}"
            line += f"{'yes' if t_total == truth else 'NO':>4} | {t_seconds / seconds:>6.1f}x{t_peak / peak:>6.1f}x"
        print(line, flush=True)
    times = asyncio.run(warm_job(30))
    print(
        f"\nwarm job, seed file (worker alive, no cache): median {median(times):.1f} ms, "
        f"min {min(times):.1f} ms, max {max(times):.1f} ms over {len(times)} runs"
    )
    print(
        "times: medians of cold runs (fresh process, torch import included); MB: peak PSS of the process tree"
    )


if __name__ == "__main__":
    main()
