"""Calls whose arguments are local values as the constructors of the classes they build
(issue 20): a test's first ``parametrize`` case, a unittest's first
``parameterized.expand`` case (also cases chosen under ``if has_fast:``), a dict spread into
the call, cases that module-level loops append (their first pass's), a ``__main__``
block's local names and loop values, a comprehension's first
value, and calls of classes as arguments (``Wrapper(layers=Encoder(dim=32, depth=2))``). The source names the test file's line; a call that fails to build
(a test of a bad argument) gives way to the next one. Ground truth is plain torch
in this process; golden file in tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes it)."""

from __future__ import annotations

import importlib
import sys

import pytest
from torch import nn

from tests.conftest import FIXTURES, count, golden, model, run_cli, summary_json

LOCAL = FIXTURES / "localargs"


@pytest.fixture(scope="module")
def doc() -> dict:
    return summary_json(str(LOCAL), "--no-shapes")


def fixture_module(name: str) -> object:
    """``tinyvit.<name>`` of the fixture, imported here: the ground truth."""
    sys.path.insert(0, str(LOCAL))
    try:
        return importlib.import_module(f"tinyvit.{name}")
    finally:
        sys.path.remove(str(LOCAL))


@pytest.fixture(scope="module")
def blocks() -> object:
    return fixture_module("blocks")


@pytest.fixture(scope="module")
def wrapper() -> object:
    return fixture_module("wrapper")


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
            "Small",  # no required parameter, but its **kwargs go to a base that has some
            "Small(channels=3)",
            "tests/test_family.py:7",
            lambda _: fixture_module("family").Small(channels=3),  # type: ignore[attr-defined]
        ),
        (
            "Large",  # net(channels=1, width=8), the test's second case naming Large as net
            "Large(channels=1, width=8)",
            "tests/test_family.py:12 (parametrize case 2)",
            lambda _: fixture_module("family").Large(channels=1, width=8),  # type: ignore[attr-defined]
        ),
        (
            "Medium",  # the test names it Mid (Mid = mid = Medium in its module)
            "Medium(channels=1, width=8)",
            "tests/test_family.py:12 (parametrize case 3)",
            lambda _: fixture_module("family").Medium(channels=1, width=8),  # type: ignore[attr-defined]
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
    built_from_call_site(doc, name, ctor, source, count(build(blocks)))  # type: ignore[operator]


def built_from_call_site(doc: dict, name: str, ctor: str, source: str, params: int) -> None:
    """``name`` built from the call site at ``source`` as ``ctor``, with ``params``
    parameters (plain torch's count of the same expression)."""
    found = model(doc, name)
    assert (found["ctor"], found["source"]) == (ctor, source)
    assert found["source_kind"] == "call site"
    assert found["example"] is False and found["error"] is None
    assert found["total_params"] == params


@pytest.mark.parametrize(
    ("name", "ctor", "source", "build"),
    [
        (
            "Wrapper",  # the inner call's class passed by name to the worker
            "Wrapper(num_tokens=256, layers=Encoder(dim=32, depth=2))",
            "tests/test_wrapper.py:24",
            lambda w: w.Wrapper(num_tokens=256, layers=w.Encoder(dim=32, depth=2)),
        ),
        (
            "Encoder",  # the inner call is a call site of its own
            "Encoder(dim=32, depth=2)",
            "tests/test_wrapper.py:24",
            lambda w: w.Encoder(dim=32, depth=2),
        ),
        (
            "Stack",
            "Stack([Linear(8, 16), GELU(), Linear(16, 4)])",
            "tests/test_wrapper.py:29",
            lambda w: w.Stack([nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)]),
        ),
        (
            "Tower",
            "Tower(6)",
            "tests/test_wrapper.py:34 (first loop value)",
            lambda w: w.Tower(6),
        ),
        (
            "Projector",  # a dict argument that holds a layer
            "Projector(16, block_kwargs={'norm': LayerNorm(16), 'heads': 4})",
            "tests/test_wrapper.py:52 (first loop value)",
            lambda w: w.Projector(16, block_kwargs={"norm": nn.LayerNorm(16), "heads": 4}),
        ),
        (
            "Averaged",  # encoder = Encoder(dim=8, depth=1).to("cpu"); Averaged(encoder, ...)
            "Averaged(Encoder(dim=8, depth=1), heads=2)",
            "tests/test_wrapper.py:58",
            lambda w: w.Averaged(w.Encoder(dim=8, depth=1), heads=2),
        ),
        (
            "Decoder",  # CASES_2D = [] then loops append: their first pass's case
            "Decoder(in_channels=4, out_channels=2, kernel_size=(3, 3, 1), strides=(1, 2, 2), "
            "upsample_kernel_size=(2, 2))",
            "tests/test_decoder.py:35 (first parameterized case)",
            lambda _: fixture_module("decoder").Decoder(  # type: ignore[attr-defined]
                in_channels=4,
                out_channels=2,
                kernel_size=(3, 3, 1),
                strides=(1, 2, 2),
                upsample_kernel_size=(2, 2),
            ),
        ),
        (
            "Router",  # if has_fast: PLAIN_CASES + FAST_CASES, else: PLAIN_CASES
            "Router(experts=4, dim=12)",
            "tests/test_wrapper.py:46 (first parameterized case)",
            lambda w: w.Router(experts=4, dim=12),
        ),
    ],
)
def test_nested_calls_comprehensions_and_cases_under_an_if(
    doc: dict, wrapper: object, name: str, ctor: str, source: str, build: object
) -> None:
    built_from_call_site(doc, name, ctor, source, count(build(wrapper)))  # type: ignore[operator]


def test_a_function_result_as_an_argument_is_no_call_site(doc: dict) -> None:
    chain = model(doc, "Chain")  # Chain(make_layers(5)): example sizes, not the test's call
    assert (chain["source_kind"], chain["ctor"]) == ("example", "Chain(layers=2)")


def test_a_call_that_fails_gives_way_to_the_next(doc: dict) -> None:
    # the test's literal call comes first and raises (as the test expects): the next call
    pool = model(doc, "HeadPool")
    assert pool["notes"] == [
        "the call at tests/test_pool.py:9 failed: ValueError: dim 10 does not split into 3 heads"
    ]
    assert (pool["ctor"], pool["source"]) == (
        "HeadPool(12, heads=4)",
        "tests/test_pool.py:16 (first parametrize case)",
    )
    assert pool["total_params"] == count(fixture_module("pool").HeadPool(12, heads=4))  # type: ignore[attr-defined]


def test_calls_in_the_projects_code_come_before_its_tests(doc: dict) -> None:
    # Pooler(32) in tinyvit/pool.py, Pooler(4) in tests/test_pool.py (a size to test with,
    # the first call by path): the project's own call is taken
    pooler = model(doc, "Pooler")
    line = 1 + (LOCAL / "tinyvit/pool.py").read_text().splitlines().index(
        "    return Pooler(32)  # the project's own size"
    )
    assert (pooler["ctor"], pooler["source"]) == ("Pooler(32)", f"tinyvit/pool.py:{line}")
    assert pooler["source_kind"] == "call site" and pooler["error"] is None


def test_a_call_never_downloads_weights(doc: dict) -> None:
    backbone = model(doc, "Backbone")  # pretrained=True by default: False is added
    assert (backbone["ctor"], backbone["source"]) == (
        "Backbone(8, pretrained=False)",
        "tests/test_backbone.py:8 (first parametrize case)",
    )
    assert backbone["error"] is None and backbone["total_params"] == 3 * 8 * 9 + 8
    trunk = model(doc, "Trunk")  # Trunk(4, pretrained=True) in its test: built without them
    assert (trunk["ctor"], trunk["source"]) == (
        "Trunk(4, pretrained=False)",
        "tests/test_backbone.py:12",
    )
    assert trunk["error"] is None and trunk["total_params"] == 3 * 4 * 9 + 4


def test_a_rebound_name_is_not_guessed(doc: dict) -> None:
    pool = model(doc, "Pool")  # size = 8; size *= 2; Pool(size): no call site
    assert (pool["source_kind"], pool["example"]) == ("example", True)


def test_annotate_names_the_test_line() -> None:
    result = run_cli("annotate", str(LOCAL / "tinyvit" / "blocks.py"), "--no-shapes")
    assert result.returncode == 0, result.stderr
    golden("localargs_blocks.annotate.txt", result.stdout)


def test_annotate_names_the_line_of_the_nested_call() -> None:
    result = run_cli("annotate", str(LOCAL / "tinyvit" / "wrapper.py"), "--no-shapes")
    assert result.returncode == 0, result.stderr
    golden("localargs_wrapper.annotate.txt", result.stdout)
