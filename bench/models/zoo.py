"""The benchmark's other models: the MLP, a small UNet, an LSTM language model, and
torchvision's resnet50 and vit_b_16 (loaded without ``import torchvision``, see below)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TORCHVISION_HOWTO = (
    "pip download torchvision==0.28.0 --no-deps && "
    ".venv/bin/pip install --no-deps torchvision-0.28.0-*.whl pillow"
)


def mlp() -> nn.Module:
    """The issue's MLP, 784-4096-4096-10."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 4096),
        nn.ReLU(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, 10),
    )


class DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))  # type: ignore[no-any-return]


class UNet(nn.Module):
    """The standard UNet (Ronneberger et al.; laid out as milesial/Pytorch-UNet): four
    levels down and up from 64 channels, 1024 at the bottom, 31 M parameters."""

    def __init__(self, channels: int = 3, classes: int = 2, base: int = 64) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(5)]
        self.inc = DoubleConv(channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(a, b)) for a, b in itertools.pairwise(widths)
        )
        self.ups = nn.ModuleList(Up(a, b) for a, b in itertools.pairwise(widths[::-1]))
        self.outc = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)  # type: ignore[no-any-return]


class LSTMLanguageModel(nn.Module):
    """Zaremba et al.'s medium word-level LM: 10k vocabulary, 2 x 650 LSTM, dropout 0.5,
    returns the cross-entropy of the next token."""

    def __init__(self, vocab: int = 10_000, hidden: int = 650, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.drop = nn.Dropout(0.5)
        self.lstm = nn.LSTM(hidden, hidden, layers, dropout=0.5, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(self.drop(self.embed(tokens)))
        logits = self.head(self.drop(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def torchvision_models() -> Any | None:
    """``torchvision.models``, or None if torchvision is not installed. torchvision 0.28.0
    is published only as a CUDA build here: ``import torchvision`` fails (its C extension
    does not load with the CPU torch), so the package's own ``__init__`` is skipped and only
    the model code, which does not need the extension, is imported."""
    if "torchvision.models" in sys.modules:
        return sys.modules["torchvision.models"]
    try:
        spec = importlib.util.find_spec("torchvision")
    except ValueError:  # an earlier try left its stand-in package, and failed
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    if "torchvision" not in sys.modules:
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchvision"] = package
    try:
        import torchvision.models
    except ImportError:  # pillow missing, or another dependency
        return None
    return torchvision.models


def frozen_backbone(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """A model whose parameters are frozen except its ``fc`` head."""

    def built() -> nn.Module:
        model = build()
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))
        return model

    return built


def fixture_gpt() -> nn.Module:
    """GPT-2 small as nanoGPT defines it (fixtures/gpt/model.py, a nanoGPT-shaped model with
    a tied head), at nanoGPT's default vocabulary of 50,304."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "fixtures" / "gpt" / "model.py"
    spec = importlib.util.spec_from_file_location("bench_fixture_gpt", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GPT(module.GPTConfig(vocab_size=50304))  # type: ignore[no-any-return]
