"""Meta operators answered from their earlier answers (worker/forward/meta_ops.py): the same
tensors as running them, only for what cannot alias, and the same training-step figures."""

from __future__ import annotations

import torch
from paramlens.worker.forward import storages
from paramlens.worker.forward.meta_ops import MetaOps
from paramlens.worker.forward.step import simulate_step
from paramlens.worker.protocol import Training
from torch import nn

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


def test_the_step_gives_the_same_figures_answered_or_run(monkeypatch: object) -> None:
    make = lambda: ((torch.randn(8, 32, 64),), {})  # noqa: E731
    answered = simulate_step(deep(), make, Training())
    assert storages.META_OPS.hits > 0  # the six blocks asked the same questions

    class RunAlways(MetaOps):
        def run(self, func, args, kwargs):  # type: ignore[no-untyped-def]
            return func(*args, **kwargs)

    saved = storages.META_OPS
    storages.META_OPS = RunAlways()
    try:
        run = simulate_step(deep(), make, Training())
    finally:
        storages.META_OPS = saved
    assert answered == run
    real = simulate_step(deep("cpu"), make, Training(), real=True)
    steps = len(list(deep().parameters()))  # Adam's step counters, 4 B each: host-side on a GPU
    assert real.peak - answered.peak == 4 * steps


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
