"""How close the simulated training step comes to a real one, and what it costs.

    python -m bench.step_accuracy [--only NAME ...] [--no-memtracker] [--repeat N] [--json]

For each case: the step's peak simulated on meta (``simulate_step``, the model built under
``torch.device("meta")``), against the same step run on real CPU tensors (random weights,
the same Training: AdamW ``foreach=True``; attention "flash" is the CPU's fused SDPA kernel,
"math" the math path), counted by paramlens's storage accounting ("measured") and by
torch's ``MemTracker`` (a second iteration, ``reset_mod_stats`` between); the error of the
estimate against the measured peak; the old sum estimate (parameters + gradients +
optimizer state + what autograd saves in forward, ``worker/forward/memory.py``'s
``training_bytes``); and the warm simulation's time (median of ``--repeat``).

Then three timing lines (medians, warm): the step against a plain meta forward() of the
same model (target <= 3x; the same step untracked, forward + backward + AdamW on meta, is
shown as the floor); GPT-2 small at (8, 1024) tokens (target < 3 s); the
largest-batch search for ResNet-50 on a 24 GB card (target < 10 s).

torchvision's rows need torchvision's model code (the rows are skipped without it):
``pip download torchvision==0.28.0 --no-deps`` then
``.venv/bin/pip install --no-deps torchvision-0.28.0-*.whl pillow``. Its C extension does not
load with the CPU torch; bench.models.zoo imports the model code without it.

Each real CPU step stays under ~6 GB (GPT-2 small at 8 x 256 with math attention is the
largest, ~4.5 GB); the whole run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from paramlens.worker.forward.counters import SavedForBackward
from paramlens.worker.forward.memory import training_bytes
from paramlens.worker.forward.step import loss_of, simulate_step
from paramlens.worker.protocol import Training
from torch import nn

from bench.common import median
from bench.models.zoo import (
    TORCHVISION_HOWTO,
    LSTMLanguageModel,
    UNet,
    fixture_gpt,
    frozen_backbone,
    mlp,
    torchvision_models,
)
from bench.step_reference import (
    Inputs,
    cuda_step,
    has_memtracker,
    measure_step,
    memtracker_step,
)

# nanoGPT's loss: cross-entropy of the logits against the next tokens (here the input's own,
# which holds the same memory)
GPT_LOSS = "torch.nn.functional.cross_entropy(output.flatten(0, 1), inputs[0].flatten())"


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    make_input: Inputs
    training: Training = field(default_factory=Training)


@dataclass
class Row:
    name: str
    estimate: int = 0
    phase: str = ""
    module: str = ""
    measured: int = 0
    measured_phase: str = ""
    memtracker: int = 0
    old_sum: int = 0
    error_pct: float = 0.0
    meta_ms: float = 0.0
    cpu_s: float = 0.0
    skipped: str = ""


def quiet(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """A model built with what it prints left out."""

    def built() -> nn.Module:
        with contextlib.redirect_stdout(io.StringIO()):
            return build()

    return built


def gpt_input(batch: int, tokens: int) -> Inputs:
    def make() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (torch.randint(0, 50304, (batch, tokens)),), {}

    return make


def images(batch: int, size: int) -> Inputs:
    return lambda: ((torch.randn(batch, 3, size, size),), {})


def cases() -> tuple[list[Case], list[str]]:
    """The issue's cases; and the names of those skipped (torchvision missing)."""
    gpt = quiet(fixture_gpt)
    gpt_loss = Training(loss=GPT_LOSS)
    mlp_input: Inputs = lambda: ((torch.randn(256, 784),), {})  # noqa: E731
    lstm_input: Inputs = lambda: (  # noqa: E731
        (torch.randint(0, 10_000, (20, 35)), torch.randint(0, 10_000, (20, 35))),
        {},
    )
    found = [
        Case("MLP 784-4096-4096-10, batch 256", mlp, mlp_input),
        Case("MLP, bf16 autocast", mlp, mlp_input, Training(precision="bf16")),
    ]
    skipped = []
    tv = torchvision_models()
    vision = [
        ("resnet50, batch 16", "resnet50", images(16, 224), Training()),
        ("vit_b_16, batch 8, flash", "vit_b_16", images(8, 224), Training(attention="flash")),
        ("vit_b_16, batch 8, math", "vit_b_16", images(8, 224), Training(attention="math")),
    ]
    for name, attr, make, training in vision:
        if tv is None:
            skipped.append(name)
        else:
            found.append(Case(name, getattr(tv, attr), make, training))
    found += [
        Case(
            "GPT-2 small (nanoGPT), 8x256, flash",
            gpt,
            gpt_input(8, 256),
            replace(gpt_loss, attention="flash"),
        ),
        Case(
            "GPT-2 small (nanoGPT), 8x256, math",
            gpt,
            gpt_input(8, 256),
            replace(gpt_loss, attention="math"),
        ),
        Case(
            "GPT-2 small, 8x256, flash, bf16 autocast",
            gpt,
            gpt_input(8, 256),
            replace(gpt_loss, attention="flash", precision="bf16"),
        ),
        Case("UNet 64-1024, batch 4, 128x128", UNet, images(4, 128)),
        Case("LSTM LM 10k/2x650, batch 20x35", LSTMLanguageModel, lstm_input),
    ]
    frozen = "resnet50 frozen but fc, batch 16"
    if tv is None:
        skipped.append(frozen)
    else:
        found.append(Case(frozen, frozen_backbone(tv.resnet50), images(16, 224)))
    return found, skipped


def on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return build()


def saved_bytes(model: nn.Module, make_input: Inputs, training: Training) -> int:
    """What autograd saves in forward(), as the old estimate counted it: on meta (the math
    attention path), on fake CPU tensors under autocast."""
    from paramlens.worker.forward.variants import on_fake_cpu  # the worker's own fake swap

    autocast = training.precision in ("bf16", "fp16")
    device = "cpu" if autocast else "meta"
    with contextlib.ExitStack() as stack:
        if autocast:  # inside FakeTensorMode meanwhile
            stack.enter_context(on_fake_cpu(model))
        with torch.device(device):
            args, kwargs = make_input()
        saved = SavedForBackward(model)
        stack.enter_context(saved.hooks())
        if autocast:
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        model(*args, **kwargs)
        return saved.nbytes


def warm_ms(run: Callable[[], object], repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def measure(case: Case, repeat: int, memtracker: bool) -> Row:
    row = Row(case.name)
    model = on_meta(case.build)
    step = simulate_step(model, case.make_input, case.training)
    row.estimate, row.phase, row.module = step.peak, step.phase, step.module
    row.meta_ms = warm_ms(lambda: simulate_step(model, case.make_input, case.training), repeat)
    activations = saved_bytes(model, case.make_input, case.training)
    row.old_sum = training_bytes(model, activations, case.training.optimizer)
    torch.manual_seed(0)
    cpu = case.build()
    measured = measure_step(cpu, case.make_input, case.training)
    row.measured, row.measured_phase, row.cpu_s = measured.peak, measured.phase, measured.seconds
    del cpu
    gc.collect()
    if memtracker:
        torch.manual_seed(0)
        cpu = case.build()
        row.memtracker = memtracker_step(cpu, case.make_input, case.training).peak
        del cpu
        gc.collect()
    row.error_pct = 100 * (row.estimate - row.measured) / row.measured
    return row


def analysis_ms(model: nn.Module, expression: str, repeat: int) -> float:
    """Warm median (ms) of the worker's forward-only analysis of ``model`` (shapes,
    mult-adds, saved bytes, forward()'s line shapes; repeated blocks run once), the work the
    step is added to."""
    from paramlens.worker.forward.context import ForwardContext
    from paramlens.worker.forward.run import run_forward
    from paramlens.worker.protocol import ErrorInfo

    ctx = ForwardContext(
        namespace={},
        device="meta",
        is_user_file=lambda _: True,
        error_from=lambda exc: ErrorInfo(str(exc)),
        names={id(m): n for n, m in model.named_modules() if n},
        site=lambda _: None,
        dims={},
    )
    return warm_ms(lambda: run_forward(model, expression, "bench", ctx), repeat)


def step_vs_forward(case: Case, repeat: int) -> tuple[float, float, float]:
    """Warm medians (ms): simulate_step; a plain forward() of the same meta model; and the
    same step untracked (forward, loss, backward, AdamW's foreach step): the floor."""
    model = on_meta(case.build)
    optimizer = torch.optim.AdamW(model.parameters(), foreach=True)

    def meta_input() -> tuple[tuple[Any, ...], dict[str, Any]]:
        with torch.device("meta"):
            return case.make_input()

    def forward() -> None:
        args, kwargs = meta_input()
        model(*args, **kwargs)

    def untracked() -> None:
        args, kwargs = meta_input()
        loss_of(model(*args, **kwargs), case.training.loss, args).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step = warm_ms(lambda: simulate_step(model, case.make_input, case.training), repeat)
    return step, warm_ms(forward, repeat), warm_ms(untracked, repeat)


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f}" if n else "-"


def render(rows: list[Row], skipped: list[str]) -> str:
    head = (
        f"{'case':<42} {'estimate B':>15} {'measured B':>15} {'MemTracker B':>15} "
        f"{'err %':>7} {'old sum MB':>10} {'phase (est/cpu)':>20} {'meta ms':>8} {'cpu s':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        phases = f"{r.phase}/{r.measured_phase}"
        lines.append(
            f"{r.name:<42} {r.estimate:>15,} {r.measured:>15,} "
            f"{(f'{r.memtracker:,}' if r.memtracker else '-'):>15} {r.error_pct:>+7.2f} "
            f"{mb(r.old_sum):>10} {phases:>20} {r.meta_ms:>8.0f} {r.cpu_s:>6.1f}"
        )
    for name in skipped:
        lines.append(f"{name:<42} skipped: torchvision is not installed ({TORCHVISION_HOWTO})")
    return "\n".join(lines)


def timing_lines(repeat: int, only: list[str]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    tv = torchvision_models()
    gpt = quiet(fixture_gpt)
    if not only or "ratio" in only:
        subjects = [
            (
                Case("MLP, batch 256", mlp, lambda: ((torch.randn(256, 784),), {})),
                "torch.randn(256, 784)",
            )
        ]
        if tv is not None:
            subjects.append(
                (
                    Case("resnet50, batch 16", tv.resnet50, images(16, 224)),
                    "torch.randn(16, 3, 224, 224)",
                )
            )
        subjects.append(
            (
                Case("GPT-2 small, 8x256", gpt, gpt_input(8, 256), Training(loss=GPT_LOSS)),
                "torch.randint(0, 50304, (8, 256))",
            )
        )
        for case, expression in subjects:
            step, forward, untracked = step_vs_forward(case, repeat)
            analysis = analysis_ms(on_meta(case.build), expression, repeat)
            lines.append(
                {
                    "line": f"step vs forward, {case.name}",
                    "step_ms": round(step, 1),
                    "forward_ms": round(forward, 1),
                    "ratio": round(step / forward, 2),
                    "analysis_ms": round(analysis, 1),
                    "ratio_to_analysis": round(step / analysis, 2),
                    "untracked_step_ms": round(untracked, 1),
                    "target": "<= 3x the analysis",
                }
            )
    if not only or "gpt1024" in only:
        model = on_meta(gpt)
        training = Training(loss=GPT_LOSS)
        make = gpt_input(8, 1024)
        ms = warm_ms(lambda: simulate_step(model, make, training), repeat)
        peak = simulate_step(model, make, training).peak
        lines.append(
            {
                "line": "GPT-2 small, 8x1024, warm simulate_step",
                "ms": round(ms, 1),
                "peak": peak,
                "target": "< 3000 ms",
            }
        )
    if (not only or "search" in only) and tv is not None:
        model = on_meta(tv.resnet50)
        training = Training(gpu="24GB", gpu_bytes=24 << 30, workspace_bytes=8519680)
        make = images(16, 224)
        simulate_step(model, make, Training())  # warm
        times, step = [], None
        for _ in range(max(1, min(repeat, 3))):
            started = time.perf_counter()
            step = simulate_step(model, make, training)
            times.append(time.perf_counter() - started)
        assert step is not None
        lines.append(
            {
                "line": "largest batch, resnet50, 24 GB card",
                "max_batch": step.max_batch,
                "search": step.search,
                "seconds": round(median(times), 2),
                "target": "< 10 s",
            }
        )
    return lines


def cuda_table(only: list[str]) -> None:
    """The estimate's ``gpu_allocated`` (with this card's cuBLAS workspace) against
    ``max_memory_allocated`` of the same step on this machine's GPU."""
    if not torch.cuda.is_available():
        raise SystemExit("--cuda: this machine has no CUDA device")
    major, _ = torch.cuda.get_device_capability()
    workspace = 4096 * 8 * 1024 if major == 9 else 4096 * 1024 * 2 + 16 * 1024 * 8
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'case':<42} {'estimate B':>15} {'max_memory_allocated B':>23} {'err %':>7}")
    found, _ = cases()
    for case in found:
        if only and not any(word in case.name for word in only):
            continue
        training = replace(case.training, workspace_bytes=workspace)
        estimate = simulate_step(on_meta(case.build), case.make_input, training).gpu_allocated
        measured = cuda_step(case.build, case.make_input, case.training)
        error = 100 * (estimate - measured) / measured
        print(f"{case.name:<42} {estimate:>15,} {measured:>23,} {error:>+7.2f}")
        gc.collect()
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="cases whose name has one of these")
    parser.add_argument("--no-memtracker", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--cuda",
        action="store_true",
        help="on a machine with a CUDA GPU: each case's real step there, "
        "torch.cuda.max_memory_allocated() beside the estimate's GPU figure (target: within 5%%)",
    )
    args = parser.parse_args(argv)
    if args.cuda:
        cuda_table(args.only)
        return
    torch.set_num_threads(2)
    memtracker = has_memtracker() and not args.no_memtracker
    rows: list[Row] = []
    found, skipped = cases()
    if not args.timing_only:
        for case in found:
            if args.only and not any(word in case.name for word in args.only):
                continue
            rows.append(measure(case, args.repeat, memtracker))
            if not args.json:
                print(render(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)
    timing = [] if args.no_timing else timing_lines(args.repeat, args.only)
    if args.json:
        doc = {"rows": [asdict(r) for r in rows], "skipped": skipped, "timing": timing}
        print(json.dumps(doc, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.timing_only:
        print(render(rows, skipped))
    for line in timing:
        print("  ".join(f"{k}={v}" for k, v in line.items()))


if __name__ == "__main__":
    main()
