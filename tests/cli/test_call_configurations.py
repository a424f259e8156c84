"""Issue 20, the project's calls as configurations: a class built from a call in the
project's code (``Stack(dim=64, depth=4)`` in ``train_stack.py``) also gets, as
configurations of its own, the other calls of it in the code and tests that switch on
something no earlier one did (``use_gate=True``, ``scale_norm=True``); the blocks only
those build (``Gate``, ``ScaleNorm``) are measured inside them. A call that only changes a
size is not built again, a call inside ``pytest.raises`` is never one, and one that fails
is a note on the class. Ground truth is plain torch in this process. Golden file in
tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.conftest import FIXTURES, count, golden, model, plain_package, run_cli, summary_json

CALLCONFIGS = FIXTURES / "callconfigs"
STACK = CALLCONFIGS / "stacks" / "stack.py"


@pytest.fixture
def stacks() -> Iterator[object]:
    """The fixture's package imported the plain way."""
    with plain_package(CALLCONFIGS, "stacks"):
        import stacks

        yield stacks


def test_calls_that_switch_something_on_are_configurations(stacks: object) -> None:
    from stacks import Gate, ScaleNorm, Stack

    doc = summary_json(str(STACK), "--no-shapes")
    stack = model(doc, "Stack")
    # the call in the project's code builds the class; the tests' calls come after it
    assert (stack["source"], stack["ctor"]) == ("train_stack.py:7", "Stack(dim=64, depth=4)")
    configs = {m["name"]: m for m in doc["models"] if m["kind"] == "config"}
    # test_plain's and test_wider_gated's calls only change sizes; test_heads_must_divide_dim's
    # is meant to fail; test_heads's fails (a note below)
    assert sorted(configs) == ["tests/test_stack.py:12", "tests/test_stack.py:22"]
    expected = {
        "tests/test_stack.py:12": "Stack(dim=8, depth=2, use_gate=True)",
        "tests/test_stack.py:22": "Stack(dim=8, depth=1, scale_norm=True)",
    }
    for name, built in configs.items():
        assert (built["ctor"], built["source_kind"], built["source"]) == (
            expected[name],
            "call site",
            name,
        )
        assert built["model_class"] == "stacks.stack.Stack" and built["error"] is None
        with torch.device("meta"):
            assert built["total_params"] == count(eval(expected[name], {"Stack": Stack}))
    assert stack["notes"] == [
        "the call at tests/test_stack.py:32 failed: ValueError: dim 8 is not a multiple of heads 3"
    ]
    with torch.device("meta"):
        gate, norm = count(Gate(8)), count(ScaleNorm(8))
    instances = {
        name: [(i["model"], i["count"], i["params"]) for i in model(doc, name)["instances"]]
        for name in ("Gate", "ScaleNorm")
    }
    assert instances == {
        "Gate": [("tests/test_stack.py:12", 2, gate)],
        "ScaleNorm": [("tests/test_stack.py:22", 1, norm)],
    }


def test_annotate_lists_the_calls_and_measures_their_blocks() -> None:
    result = run_cli("annotate", str(STACK), "--no-shapes")
    assert result.returncode == 0, result.stderr
    golden("callconfigs_stack.annotate.txt", result.stdout + result.stderr)


def test_the_input_is_a_call_of_the_model_the_class_is_built_as() -> None:
    # Stack is built as train_stack.py:7 builds it (dim=64); the test's call of its own
    # Stack(dim=8) with an input of 8 features (found first) is no input for it
    stack = model(summary_json(str(STACK)), "Stack")
    assert (stack["error"], stack["forward"]["error"]) == (None, None)
    assert stack["forward"]["input_source"] == "called at train_stack.py:9"
    assert stack["forward"]["output_shape"] == "[2, 64]"
