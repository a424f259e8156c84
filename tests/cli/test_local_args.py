"""Calls whose arguments are local values as the constructors of the classes they build
(issue 20): a test's first ``parametrize`` case, a unittest's first
``parameterized.expand`` case, a dict spread into the call, a ``__main__`` block's local
names and loop values. The source names the test file's line; a call that fails to build
(a test of a bad argument) gives way to the next one. Ground truth is plain torch
in this process; golden file in tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes it)."""

from __future__ import annotations

import sys

import pytest
from torch import nn

from tests.conftest import FIXTURES, golden, model, run_cli, summary_json

LOCAL = FIXTURES / "localargs"


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def doc() -> dict:
    return summary_json(str(LOCAL), "--no-shapes")


@pytest.fixture(scope="module")
def blocks() -> object:
    sys.path.insert(0, str(LOCAL))
    try:
        from tinyvit import blocks

        return blocks
    finally:
        sys.path.remove(str(LOCAL))


@pytest.mark.parametrize(
    ("name", "ctor", "source", "build"),
    [
        (
            "FeedForward",
            "FeedForward(24, hidden_dim=96)",
            "tests/test_blocks.py:17 (first parametrize case)",
            lambda b: b.FeedForward(24, hidden_dim=96),
        ),
        (
            "Stem",
            "Stem(in_channels=3, out_channels=8, kernel=3)",
            "tests/test_blocks.py:24 (first parameterized case)",
            lambda b: b.Stem(in_channels=3, out_channels=8, kernel=3),
        ),
        (
            "Head",
            "Head(dim=40, classes=10, bias=False)",
            "tests/test_blocks.py:30",
            lambda b: b.Head(dim=40, classes=10, bias=False),
        ),
        (
            "Mixer",
            "Mixer(tokens=16, dim=48, depth=2)",
            "tinyvit/blocks.py:73",
            lambda b: b.Mixer(tokens=16, dim=48, depth=2),
        ),
        (
            "Gate",
            "Gate(48, groups=2, heads=4)",
            "tinyvit/blocks.py:75 (first loop value)",
            lambda b: b.Gate(48, groups=2, heads=4),
        ),
    ],
)
def test_local_values_build_the_class(
    doc: dict, blocks: object, name: str, ctor: str, source: str, build: object
) -> None:
    found = model(doc, name)
    assert (found["ctor"], found["source"]) == (ctor, source)
    assert found["source_kind"] == "call site"
    assert found["example"] is False and found["error"] is None
    assert found["total_params"] == count(build(blocks))  # type: ignore[operator]


def test_a_call_that_fails_gives_way_to_the_next(doc: dict) -> None:
    # the test's literal call comes first and raises (as the test expects): the next call
    gate = model(doc, "Gate")
    assert gate["notes"] == [
        "the call at tests/test_blocks.py:36 failed: ValueError: dim 10 does not split into 3 groups"
    ]


def test_a_call_never_downloads_weights(doc: dict) -> None:
    backbone = model(doc, "Backbone")  # pretrained=True by default: False is added
    assert (backbone["ctor"], backbone["source"]) == (
        "Backbone(8, pretrained=False)",
        "tests/test_backbone.py:8 (first parametrize case)",
    )
    assert backbone["error"] is None and backbone["total_params"] == 3 * 8 * 9 + 8


def test_a_rebound_name_is_not_guessed(doc: dict) -> None:
    pool = model(doc, "Pool")  # size = 8; size *= 2; Pool(size): no call site
    assert (pool["source_kind"], pool["example"]) == ("example", True)


def test_annotate_names_the_test_line() -> None:
    result = run_cli("annotate", str(LOCAL / "tinyvit" / "blocks.py"), "--no-shapes")
    assert result.returncode == 0, result.stderr
    golden("localargs_blocks.annotate.txt", result.stdout)
