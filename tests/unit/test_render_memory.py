"""The simulated training step as text (issue 18), from hand-made StepMemory: the class lens,
the hover, the summary's lines, and ``paramlens memory``'s table and JSON."""

from __future__ import annotations

import dataclasses
import json

from paramlens import render
from paramlens.render import memory
from paramlens.worker.protocol import ForwardInfo, ModelResult, ModuleMemory, StepMemory

GB = 2**30
MB = 2**20

STEP = StepMemory(
    peak=1_825_361_920,  # 1.70 GB
    phase="backward",
    module="layer3.1.conv2",
    parameters=102_228_128,
    buffers=212_992,
    inputs=9_633_792,
    activations=1_300_000_000,
    gradients=102_228_128,
    optimizer_state=204_456_256,
    temporaries=106_602_624,
    batch=16,
    input="torch.randn(16, 3, 224, 224)",
    optimizer="adamw",
    foreach=True,
    precision="fp32",
    attention="",
    gpu_allocated=1_834_000_000,
    gpu_workspace=8_519_680,
    gpu_reserved=2_000_000_000,
    gpu="24GB",
    gpu_bytes=24 * GB,
    fits=True,
    max_batch=212,
    search="batch 212 fits, 213 does not",
    modules=(
        ModuleMemory("layer1", "Sequential", 600 * MB, 1_500_000_000),
        ModuleMemory("layer1.0", "Bottleneck", 200 * MB, 1_400_000_000),
        ModuleMemory("layer2", "Sequential", 300 * MB, 1_600_000_000),
        ModuleMemory("layer3", "Sequential", 150 * MB, 1_825_361_920),
        ModuleMemory("conv1", "Conv2d", 49 * MB, 900_000_000),
        ModuleMemory("fc", "Linear", 1 * MB, 1_000_000_000),
    ),
)


def resnet(step: StepMemory | None = STEP, step_error: str = "") -> ModelResult:
    forward = ForwardInfo(
        "torch.randn(16, 3, 224, 224)",
        "pyproject.toml",
        input_shape="[16, 3, 224, 224]",
        output_shape="[16, 1000]",
        macs=65_400_000_000,
        activation_bytes=1_250_000_000,
        train_bytes=1_658_912_512,
        optimizer="adamw",
        step=step,
        step_error=step_error,
    )
    return ModelResult(
        "ResNet",
        "/w/models.py",
        20,
        25_557_032,
        25_557_032,
        0,
        53_120,
        102_228_128,
        212_992,
        ("float32",),
        forward=forward,
    )


def test_the_lens_shows_the_peak_where_and_the_fit_instead_of_the_old_sum() -> None:
    lens = render.render_model_lens(resnet())
    assert lens.endswith(
        " · peak 1.70 GB @ batch 16 (backward, layer3.1) · fits 24 GB up to batch 212"
    )
    assert "train ≈" not in lens
    # annotate's class line says the same
    assert render.render_totals(resnet()).endswith(
        "peak 1.70 GB @ batch 16 (backward, layer3.1) · fits 24 GB up to batch 212"
    )


def test_the_lens_without_a_step_keeps_the_old_sum() -> None:
    assert render.render_model_lens(resnet(None)).endswith(" · train ≈ 1.5 GB (float32, AdamW)")


def test_the_lens_where_and_fit_variants() -> None:
    in_model = dataclasses.replace(STEP, phase="forward", module="", gpu="", fits=None)
    assert memory.step_lens(in_model) == "peak 1.70 GB @ batch 16 (forward)"
    over = dataclasses.replace(STEP, fits=False, max_batch=3)
    assert memory.step_lens(over).endswith(" · over 24 GB (fits up to batch 3)")
    # the search found no batch fits; or it could not run, and only this batch is known
    none_fit = dataclasses.replace(
        STEP, fits=False, max_batch=0, search="batch 1 does not fit (3 more steps simulated)"
    )
    assert memory.step_lens(none_fit).endswith(" · over 24 GB at batch 1")
    unsearched = dataclasses.replace(STEP, fits=False, max_batch=0, search="")
    assert memory.step_lens(unsearched).endswith(" · over 24 GB at batch 16")
    card = dataclasses.replace(STEP, gpu="A100-80GB", gpu_bytes=80 * GB, max_batch=0)
    assert memory.step_lens(card).endswith(" · fits A100-80GB")
    spaced = dataclasses.replace(STEP, gpu="80 gib", gpu_bytes=80 * GB)
    assert memory.fit_text(spaced) == "fits 80 GB up to batch 212"
    small = dataclasses.replace(STEP, peak=10_906_112, module="linear_relu_stack.0")
    assert memory.step_lens(small).startswith(
        "peak 10.4 MB @ batch 16 (backward, linear_relu_stack.0)"
    )


def test_the_hover_breaks_the_peak_down_and_says_how_to_change_each_option() -> None:
    hover = render.render_class_hover(resnet())
    assert "- training: peak 1.70 GB @ batch 16" in hover
    assert (
        "**Peak training memory: 1.70 GB** (1,825,361,920 bytes) at batch 16, in backward, "
        "layer3.1.conv2"
    ) in hover
    assert "Fits 24 GB up to batch 212 (batch 212 fits, 213 does not)" in hover
    assert "| activations | 1.2 GB | 71.2% |" in hover
    assert "| optimizer state | 195.0 MB | 11.2% |" in hover
    assert "| parameters | 97.5 MB | 5.6% |" in hover
    # every kind's share, and the kinds add up to the peak
    kinds = [line for line in hover.splitlines() if line.endswith("% |") and "`" not in line]
    assert len(kinds) == 7
    assert sum(size for _, size in memory.breakdown(STEP)) == STEP.peak
    assert "| batch | 16 (`torch.randn(16, 3, 224, 224)`) | `batch = 32` |" in hover
    assert '| optimizer | AdamW (foreach, as on CUDA) | `optimizer = "sgd"` |' in hover
    assert '| precision | fp32 | `precision = "bf16"` |' in hover
    assert '| attention | not used | `attention = "math"` |' in hover
    # the hint names a class of this model worth checkpointing (no container)
    assert '| checkpoint | none | `checkpoint = ["Bottleneck"]` |' in hover
    assert '| gpu | 24 GB | `gpu = "80GB"` |' in hover
    assert "torch.cuda.max_memory_allocated() ≈ 1.71 GB (with the 8.1 MB cuBLAS workspace)" in hover
    assert "torch.cuda.max_memory_reserved() ≈ 1.86 GB (an estimate" in hover
    assert (
        "Old sum estimate: 1.5 GB (parameters + gradients + AdamW state + 1.2 GB saved activations)"
    ) in hover
    modules = [line for line in hover.splitlines() if line.startswith("| `")]
    assert [m.split("`")[1] for m in modules] == ["layer1", "layer1.0", "layer2", "layer3", "conv1"]
    assert "| `layer1` | Sequential | 600.0 MB | 1.4 GB |" in hover


def test_the_hover_without_a_step_says_why() -> None:
    hover = render.render_class_hover(resnet(None, "the loss is not a tensor"))
    assert "*The training step could not be simulated: the loss is not a tensor*" in hover
    assert "- training: ≈ 1.5 GB (float32, AdamW)" in hover
    assert "Peak training memory" not in render.render_class_hover(resnet(None))


def test_the_summary_names_the_peak_and_the_old_sum() -> None:
    table = render.render_summary_table(resnet())
    assert (
        "Peak training memory: 1.70 GB at batch 16 (backward, layer3.1.conv2) · "
        "fits 24 GB up to batch 212"
    ) in table
    assert (
        "Old sum estimate: 1.5 GB (parameters + gradients + AdamW state + 1.2 GB saved activations)"
    ) in table
    assert "Training memory:" not in table
    failed = render.render_summary_table(resnet(None, "output.loss: no attribute 'loss'"))
    assert "Peak training memory: not simulated: output.loss: no attribute 'loss'" in failed


def test_the_memory_table() -> None:
    text = memory.render_memory_table(resnet(), top=3)
    lines = text.splitlines()
    assert lines[:4] == [
        "ResNet (models.py:20)",
        "Peak: 1.70 GB (1,825,361,920 bytes) in backward, layer3.1.conv2",
        "Input: torch.randn(16, 3, 224, 224) (batch 16)",
        "Optimizer: AdamW (foreach, as on CUDA) · precision: fp32 · attention: not used · "
        "checkpointed: none",
    ]
    assert "At the peak              Bytes      Size   Share" in lines
    assert "activations      1,300,000,000    1.2 GB   71.2%" in lines
    assert "total            1,825,361,920    1.7 GB  100.0%" in lines
    assert "Fit: fits 24 GB up to batch 212 (batch 212 fits, 213 does not)" in lines
    assert (
        "GPU: torch.cuda.max_memory_allocated() ≈ 1.71 GB (with the 8.1 MB cuBLAS workspace)"
    ) in lines
    assert any(line.startswith("Old sum estimate: 1.5 GB") for line in lines)
    modules = lines[lines.index("Modules that keep the most for backward:") + 2 :]
    assert [m.split()[0] for m in modules] == ["layer1", "layer1.0", "layer2"]


def test_the_memory_table_without_a_step() -> None:
    text = memory.render_memory_table(resnet(None, "cannot checkpoint: no class Block"))
    assert text.splitlines() == [
        "ResNet (models.py:20): the training step could not be simulated: cannot checkpoint: "
        "no class Block",
        "Old sum estimate: 1.5 GB (parameters + gradients + AdamW state + 1.2 GB saved "
        "activations)",
    ]


def test_the_memory_json_is_the_step_itself() -> None:
    document = json.loads(memory.render_memory_json([resnet(), resnet(None, "why")]))
    first, second = document["models"]
    assert first["step"]["peak"] == 1_825_361_920
    assert first["step"]["modules"][0] == {
        "module": "layer1",
        "type": "Sequential",
        "kept": 600 * MB,
        "peak": 1_500_000_000,
    }
    assert set(first["step"]) == {f.name for f in dataclasses.fields(StepMemory)}
    assert (first["name"], first["line"], first["train_bytes"]) == ("ResNet", 20, 1_658_912_512)
    assert (second["step"], second["step_error"]) == (None, "why")
