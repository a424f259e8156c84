"""Multiply-adds on every torch the worker supports (2.1+): torch's FLOP formulas moved and
changed their calling convention twice. Each older layout is rebuilt here from this
torch's own formulas, and the counts must not change."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from paramlens.worker.forward.counters import Calls, MultiplyAdds, flop_formulas
from torch import nn
from torch.utils import flop_counter
from torch.utils._pytree import tree_map


def multiply_adds() -> int:
    flop_formulas.cache_clear()  # this torch's layout, or the one a test rebuilt
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).to("meta")
    with MultiplyAdds(Calls()) as counter:
        model(torch.randn(2, 3, 8, 8, device="meta"))
    return counter.flops // 2


def of_shapes(formula: Callable[..., int]) -> Callable[..., int]:
    """The formula of shapes inside this torch's wrapped one."""
    return getattr(formula, "__wrapped__", formula)


def torch_2_2_wrapper(f: Callable[..., int]) -> Callable[..., int]:
    """torch 2.2's ``shape_wrapper``: the output as ``out=``."""

    @functools.wraps(f)
    def nf(*args: Any, out: Any = None, **kwargs: Any) -> int:
        args, kwargs, out_shape = tree_map(
            lambda v: v.shape if isinstance(v, torch.Tensor) else v, (args, kwargs, out)
        )
        return f(*args, out_shape=out_shape, **kwargs)

    return nf


# conv: 8 x 3 x 3 x 3 weights at 2 x 6 x 6 places; linear: 288 x 10 at 2 rows
EXPECTED = 8 * 27 * 2 * 36 + 288 * 10 * 2


@pytest.fixture(autouse=True)
def this_torchs_formulas_after() -> Iterator[None]:
    yield
    flop_formulas.cache_clear()


def test_this_torch() -> None:
    assert multiply_adds() == EXPECTED


def test_torch_2_1_formulas_of_shapes_in_flop_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = {p: of_shapes(f) for p, f in flop_counter.flop_registry.items()}
    monkeypatch.delattr(flop_counter, "flop_registry")
    monkeypatch.setattr(flop_counter, "flop_mapping", mapping, raising=False)
    assert multiply_adds() == EXPECTED


def test_torch_2_2_registry_with_out(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {p: torch_2_2_wrapper(of_shapes(f)) for p, f in flop_counter.flop_registry.items()}
    monkeypatch.setattr(flop_counter, "flop_registry", registry)
    monkeypatch.setattr(flop_counter, "shape_wrapper", torch_2_2_wrapper)
    assert multiply_adds() == EXPECTED
