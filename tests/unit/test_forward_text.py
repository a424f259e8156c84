"""Words and shapes the worker's forward() pass reports."""

import torch
from paramlens.cli import input_expression
from paramlens.worker.forward import cpu_wording, shape_text


def test_meta_wording_becomes_the_cpu_wording_users_search_for() -> None:
    meta = "RuntimeError: a and b must have same reduction dim, but got [1, 400] X [256, 120]."
    assert cpu_wording(meta) == (
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x400 and 256x120)."
    )
    with torch.device("cpu"):  # the wording it copies
        try:
            torch.nn.Linear(256, 120)(torch.randn(1, 400))
        except RuntimeError as exc:
            assert "mat1 and mat2 shapes cannot be multiplied (1x400 and 256x120)" in str(exc)


def test_shapes_of_tensors_tuples_and_dicts() -> None:
    x = torch.empty(1, 3, device="meta")
    assert shape_text(x) == "[1, 3]"
    assert shape_text((x, [x, x])) == "([1, 3], ([1, 3], [1, 3]))"
    assert shape_text({"logits": x}) == "{logits: [1, 3]}"
    assert shape_text(3) == "int"


def test_input_flags_as_torchinfo_takes_input_size() -> None:
    assert input_expression(["1,3,224,224"], "float32") == "torch.randn(1, 3, 224, 224)"
    assert input_expression(["8"], "long") == "torch.randint(0, 2, (8,), dtype=torch.long)"
    assert input_expression(["1,16", "1,16"], "bfloat16") == (
        "(torch.randn(1, 16, dtype=torch.bfloat16), torch.randn(1, 16, dtype=torch.bfloat16))"
    )
    assert input_expression(["torch.zeros(2, 2)"], "float32") == "torch.zeros(2, 2)"
