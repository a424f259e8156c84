"""Repeated blocks run once on meta: what the other blocks get must equal running them."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from typing import Any

import pytest
import torch
from paramlens.worker.forward import repeats
from paramlens.worker.forward.context import ForwardContext
from paramlens.worker.forward.run import run_forward
from paramlens.worker.protocol import ErrorInfo

MODELS = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, layer_id: int = 0):
        super().__init__()
        self.layer_id = layer_id  # written, never read by forward(): blocks stay alike
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return x + self.out(torch.nn.functional.gelu(self.fc(self.norm(x))))


class Deep(nn.Module):
    def __init__(self, depth=6, dim=32):
        super().__init__()
        self.embed = nn.Embedding(100, dim)
        self.blocks = nn.ModuleList(Block(dim, i) for i in range(depth))
        self.head = nn.Linear(dim, 100)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
            x += 1  # in place, on what the block returned
        return self.head(x)


class Strided(nn.Module):  # blocks alike but for an index that forward() reads
    def __init__(self, dim, index):
        super().__init__()
        self.index = index
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        x = self.fc(x)
        return x[::2].contiguous() if self.index % 2 else x


class Remembers(nn.Module):  # keeps something of its call, read afterwards
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        y = self.fc(x)
        self.last = y.sum(-1)
        return y


class Cached(nn.Module):  # appends to a list it is given
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x, cache):
        cache.append(x)
        return self.fc(x)


class SharedScale(nn.Module):  # a buffer all blocks share, saved for backward once
    def __init__(self, dim, scale):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.register_buffer("scale", scale)

    def forward(self, x):
        return self.fc(x) * self.scale


class Normed(nn.Module):
    def __init__(self, dim, norm=None):
        super().__init__()
        self.norm = norm or nn.LayerNorm(dim)  # LayerNorm saves its input for backward
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return self.fc(self.norm(x))


class Paired(Normed):
    pass


class Views(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        shared = nn.LayerNorm(dim)  # one module under two parents
        self.pair = nn.ModuleList([Paired(dim, shared), Paired(dim, shared)])
        self.blocks = nn.ModuleList(Normed(dim) for _ in range(3))
        self.widen = nn.Linear(dim, 50 * dim)

    def forward(self, x):
        x = self.pair[1](self.pair[0](x))
        x = self.blocks[0](x.view(1, 1, 8))  # a view of all of a [1, 1, 8]
        x = self.blocks[1](x.view(1, 1, 8))  # again: recorded
        wide = self.widen(x).view(50, 1, 8)
        # the same shape and strides, but a view of 50 times as much memory (all of which
        # saving it for backward keeps)
        return self.blocks[2](wide[:1])


class Mixed(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.strided = nn.ModuleList(Strided(dim, i) for i in range(4))
        self.remembers = nn.ModuleList(Remembers(dim) for _ in range(3))
        self.cached = nn.ModuleList(Cached(dim) for _ in range(3))
        scale = torch.ones(dim)
        self.shared = nn.ModuleList(SharedScale(dim, scale) for _ in range(3))

    def forward(self, x):
        for block in self.strided:
            x = block(x)
        for block in self.remembers:
            x = block(x)
        x = x + sum(block.last.sum() for block in self.remembers)
        caches = [[] for _ in self.cached]
        for block, cache in zip(self.cached, caches):
            x = block(x, cache)
        for block in self.shared:
            x = block(x)
        return x, sum(len(cache) for cache in caches)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("repeats") / "repeat_models.py"
    path.write_text(MODELS)
    spec = importlib.util.spec_from_file_location("repeat_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["repeat_models"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["repeat_models"]


def run(model: torch.nn.Module, given: str, namespace: dict[str, object]) -> tuple[Any, Any]:
    ctx = ForwardContext(
        namespace=namespace,
        device="meta",
        is_user_file=lambda f: f.endswith("repeat_models.py"),
        error_from=lambda exc: ErrorInfo(repr(exc)),
        names={id(m): n for n, m in model.named_modules() if n},
        site=lambda m: None,
        dims={},
    )
    info, calls = run_forward(model, given, "given", ctx)
    return info, {
        ctx.names.get(k, ""): [dataclasses.asdict(c) for c in v] for k, v in calls.items()
    }


def both(
    models: Any, monkeypatch: pytest.MonkeyPatch, ctor: str, given: str
) -> tuple[Any, Any, list[int]]:
    """forward() with repeats replayed, and with every block run; and the replay count."""
    replays: list[int] = []

    class Counted(repeats.Repeats):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            replays.append(0)

        def _replay(self, *args: Any) -> Any:
            replays[-1] += 1
            return super()._replay(*args)

    monkeypatch.setattr(repeats, "Repeats", Counted)
    with torch.device("meta"):
        model = eval(ctor, vars(models))
    namespace = {"torch": torch}
    monkeypatch.setenv("PARAMLENS_NO_REPEATS", "1")
    plain = run(model, given, namespace)
    monkeypatch.delenv("PARAMLENS_NO_REPEATS")
    replayed = run(model, given, namespace)
    return replayed, plain, replays


def test_identical_blocks_run_once_and_report_what_running_them_reports(
    models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed, plain, replays = both(models, monkeypatch, "Deep()", "torch.randint(0, 100, (2, 7))")
    info, calls = replayed
    assert info.error is None and info.output_shape == "[2, 7, 100]"
    # blocks 2-5: block 0 runs, block 1 runs recorded (their layer_id differs, and
    # forward() never reads it)
    assert replays[-1] == 4
    assert replayed == plain  # shapes, multiply-adds, saved bytes: every module's every call
    assert len(calls["blocks.5.fc"]) == 1 and calls["blocks.5.fc"][0]["macs"] == 2 * 7 * 32 * 128
    assert info.activation_bytes > 0 and info.macs > 0


def test_blocks_that_differ_in_what_they_do_or_keep_are_run(
    models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed, plain, replays = both(models, monkeypatch, "Mixed()", "torch.randn(4, 16)")
    info = replayed[0]
    assert info.error is None, info.error
    assert info.output_shape == "([1, 16], int)"  # the batch halved by the blocks with an odd index
    assert replays[-1] == 0
    assert replayed == plain


def test_a_view_of_more_memory_and_a_shared_module_are_told_apart(
    models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed, plain, _ = both(models, monkeypatch, "Views()", "torch.randn(1, 1, 8)")
    assert replayed[0].error is None, replayed[0].error
    assert replayed == plain  # the second block's saved input is the whole [1, 50, 8]
