"""What a build child sends is checked field by field before the worker trusts it."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from paramlens.worker import protocol
from paramlens.worker.protocol import (
    ClassSpec,
    ErrorInfo,
    JobResult,
    LayerEntry,
    ModelResult,
    ParamInfo,
)

PARAM = ParamInfo("fc.weight", (4, 2), 8, True, "float32")
LAYER = LayerEntry("/ws/net.py", 6, "Linear", 1, 8, (PARAM,), tied=(("/ws/net.py", 9),))
GOOD = ModelResult("Net", "/ws/net.py", 3, total_params=8, layers=(LAYER,))


def layer(**change: Any) -> tuple[LayerEntry]:
    return (dataclasses.replace(LAYER, **change),)


def param(**change: Any) -> tuple[LayerEntry]:
    return layer(parameters=(dataclasses.replace(PARAM, **change),))


def test_a_well_formed_result_passes_and_its_json_round_trip_too() -> None:
    protocol.check_types(JobResult((GOOD,), ("seccomp",), (), 1.5))
    failed = ModelResult.failed(ClassSpec("Net", 3, "Net()"), "/ws/net.py", ErrorInfo("boom"))
    protocol.check_types(failed)
    again = protocol.model_result(protocol.json.loads(protocol.dumps(GOOD)))
    protocol.check_types(again)
    assert again == GOOD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total_params": True}, "ModelResult.total_params: expected int, got True"),
        ({"total_params": 1.5}, "ModelResult.total_params: expected int, got 1.5"),
        ({"layers": [LAYER]}, "ModelResult.layers: expected a list, got list"),
        ({"error": "boom"}, "ModelResult.error: unexpected str"),
        ({"error": ErrorInfo("boom", line="3")}, "ModelResult.error: unexpected ErrorInfo"),
        ({"layers": param(shape=(4, "2"))}, "ParamInfo.shape: expected int, got '2'"),
        ({"layers": param(shape=[4, 2])}, "ParamInfo.shape: expected a list, got list"),
        ({"layers": param(trainable=1)}, "ParamInfo.trainable: expected bool, got 1"),
        ({"layers": layer(tied=(("/ws/net.py",),))}, "LayerEntry.tied: expected 2 items, got 1"),
        (
            {"layers": layer(tied=(("/ws/net.py", None),))},
            "LayerEntry.tied: expected int, got None",
        ),
    ],
)
def test_a_wrong_type_anywhere_is_refused_and_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as raised:
        protocol.check_types(dataclasses.replace(GOOD, **change))
    assert str(raised.value) == message


def test_an_error_kind_outside_the_declared_ones_is_refused() -> None:
    # a build child runs user code: a kind the server does not know must not get through
    for kind in typing.get_args(protocol.ErrorKind):
        protocol.check_types(ErrorInfo("boom", kind=kind))
    with pytest.raises(TypeError) as raised:
        protocol.check_types(ErrorInfo("boom", kind="exploded"))  # type: ignore[arg-type]
    assert str(raised.value).startswith("ErrorInfo.kind: expected one of exception, import,")
    assert str(raised.value).endswith("got 'exploded'")
    forged = dataclasses.replace(GOOD, error=ErrorInfo("boom", kind=1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        protocol.check_types(forged)
