"""Meta operators answered from their earlier answers (worker/forward/meta_ops.py): the same
tensors as running them, only for what cannot alias, and the same training-step figures."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from paramlens.worker.forward import meta_ops
from paramlens.worker.forward.context import ForwardContext
from paramlens.worker.forward.meta_ops import MetaOps
from paramlens.worker.forward.run import run_forward
from paramlens.worker.forward.step import simulate_step
from paramlens.worker.protocol import ErrorInfo, Training
from torch import nn

from tests.worker.test_step import Block  # a transformer block: norms, attention, views

aten = torch.ops.aten


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


def test_the_same_question_gets_the_same_tensors_without_running_the_operator() -> None:
    ops = MetaOps()
    a, b = meta(4, 1, 8), meta(3, 1)
    first = ops.run(aten.add.Tensor, (a, b), {})
    again = ops.run(aten.add.Tensor, (meta(4, 1, 8), meta(3, 1)), {})
    assert ops.hits == 1
    assert (again.shape, again.stride(), again.dtype) == (first.shape, first.stride(), first.dtype)
    assert again.untyped_storage().nbytes() == first.untyped_storage().nbytes() == 4 * 3 * 8 * 4
    other = ops.run(aten.add.Tensor, (meta(4, 1, 8), meta(5, 1)), {})  # another question
    assert ops.hits == 1 and tuple(other.shape) == (4, 5, 8)


def test_views_in_place_operators_and_unusual_arguments_always_run() -> None:
    ops = MetaOps()
    x = meta(4, 6)
    for _ in range(2):
        view = ops.run(aten.view.default, (x, [6, 4]), {})  # aliases x: its schema says so
        assert view.untyped_storage()._cdata == x.untyped_storage()._cdata
        ops.run(aten.add_.Tensor, (x, x), {})  # mutates
        ops.run(aten.add.Tensor, (x, torch.tensor(2.0)), {})  # a CPU scalar among the inputs
    assert ops.hits == 0


def test_an_answer_that_shares_an_input_or_a_larger_buffer_is_not_kept() -> None:
    ops = MetaOps()
    x = meta(4, 6)
    for _ in range(2):
        # _unsafe_view returns a view of its input although its schema says nothing
        out = ops.run(aten._unsafe_view.default, (x, [24]), {})
        assert out.untyped_storage()._cdata == x.untyped_storage()._cdata
    assert ops.hits == 0


def deep(device: str = "meta") -> nn.Module:
    with torch.device(device):
        blocks = [
            nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64))
            for _ in range(6)
        ]
        return nn.Sequential(*blocks, nn.Linear(64, 10))


class RunAlways(MetaOps):
    def run(self, func, args, kwargs):  # type: ignore[no-untyped-def]
        return func(*args, **kwargs)


def test_the_step_gives_the_same_figures_answered_or_run(monkeypatch: pytest.MonkeyPatch) -> None:
    make = lambda: ((torch.randn(8, 32, 64),), {})  # noqa: E731
    monkeypatch.setattr(meta_ops, "META_OPS", MetaOps())
    answered = simulate_step(deep(), make, Training())
    assert meta_ops.META_OPS.hits > 0  # the six blocks asked the same questions
    monkeypatch.setattr(meta_ops, "META_OPS", RunAlways())
    run = simulate_step(deep(), make, Training())
    assert answered == run
    real = simulate_step(deep("cpu"), make, Training(), real=True)
    steps = len(list(deep().parameters()))  # Adam's step counters, 4 B each: host-side on a GPU
    assert real.peak - answered.peak == 4 * steps


def forward_of(model: nn.Module) -> tuple[object, object]:
    ctx = ForwardContext(
        namespace={"torch": torch},
        device="meta",
        is_user_file=lambda f: f == __file__,
        error_from=lambda exc: ErrorInfo(repr(exc)),
        names={id(m): n for n, m in model.named_modules() if n},
        site=lambda m: None,
        dims={},
    )
    info, calls = run_forward(model, "torch.randn(2, 16, 64)", "given", ctx)
    return info, {ctx.names.get(k): [dataclasses.asdict(c) for c in v] for k, v in calls.items()}


def test_forward_gives_the_same_figures_answered_or_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """forward()'s shapes, multiply-adds and saved bytes, module by module and line by line,
    with the blocks' repeated questions answered (each block run: repeats off)."""
    monkeypatch.setenv("PARAMLENS_NO_REPEATS", "1")
    with torch.device("meta"):
        model = nn.Sequential(*[Block(64, 4) for _ in range(4)], deep())
    monkeypatch.setattr(meta_ops, "META_OPS", MetaOps())
    answered = forward_of(model)
    assert meta_ops.META_OPS.hits > 20  # blocks 2-4 and 2-6 of the two kinds: answered
    monkeypatch.setattr(meta_ops, "META_OPS", RunAlways())
    run = forward_of(model)
    assert answered == run
    info = answered[0]
    assert info.error is None and info.output_shape == "[2, 16, 10]"  # type: ignore[attr-defined]
    assert info.macs > 0 and info.activation_bytes > 0  # type: ignore[attr-defined]


class Nested(nn.Module):
    """GPT's layout: the blocks in a list inside a dict (``transformer.h.0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({"h": nn.ModuleList(deep()[:3])})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.transformer["h"]:
            x = block(x)
        return x


def test_the_module_table_reaches_the_blocks_of_a_nested_list() -> None:
    with torch.device("meta"):
        model = Nested()
    step = simulate_step(model, lambda: ((torch.randn(8, 32, 64),), {}), Training())
    shown = {m.module for m in step.modules}
    assert {"transformer.h.0", "transformer.h.1", "transformer.h.2"} <= shown, shown
