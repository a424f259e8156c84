"""``paramlens memory``: the simulated training step of the recipe's models, figures checked
by hand (669,706 float32 parameters: 2,678,824 bytes)."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES, run_cli

SEED = FIXTURES / "recipe" / "models.py"
PARAMS = 2_678_824


def test_memory_table_of_the_mlp_at_batch_256() -> None:
    result = run_cli("memory", f"{SEED}::NeuralNetwork", "--batch", "256", "--no-cache")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # AdamW's foreach step at its peak: parameters, gradients, 2 states, 1 temporary, and
    # the 256 x 784 float32 input
    assert lines[1] == f"Peak: 13.5 MB ({5 * PARAMS + 256 * 784 * 4:,} bytes) in optimizer"
    assert lines[2] == "Input: torch.randn(1, 784) (batch 256)"
    assert "optimizer state   5,357,648    5.1 MB   37.7%" in lines
    assert "inputs              802,816  784.0 KB    5.7%" in lines
    assert any(line.startswith("linear_relu_stack.0  Linear      512.0 KB") for line in lines)


def test_memory_json_and_options_reach_the_worker() -> None:
    result = run_cli(
        "memory", f"{SEED}::NeuralNetwork", "--optimizer", "sgd", "--gpu", "H100", "--format",
        "json", "--no-cache",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [model] = json.loads(result.stdout)["models"]
    step = model["step"]
    assert (step["optimizer"], step["optimizer_state"]) == ("sgd", 0)
    # no state: the peak moves into backward, before every gradient exists
    assert step["parameters"] == PARAMS and 0 < step["gradients"] < PARAMS
    assert step["phase"] == "backward"
    assert (step["gpu"], step["gpu_bytes"], step["gpu_workspace"]) == ("H100", 80 * 2**30, 2**25)
    assert step["fits"] is True and step["max_batch"] > 1
    assert step["peak"] == sum(
        step[k]
        for k in (
            *("parameters", "buffers", "inputs", "activations"),
            *("gradients", "optimizer_state", "temporaries"),
        )
    )


def test_a_bad_card_is_reported_and_no_card_used() -> None:
    result = run_cli("memory", f"{SEED}::NeuralNetwork", "--gpu", "A100", "--no-cache")
    assert result.returncode == 0
    assert "gpu names two cards: write A100-40GB or A100-80GB; using ''" in result.stderr
    assert "Fit:" not in result.stdout
