"""Shapes through forward(): the command line end to end, each source of the example input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import model, run_cli, summary_json


def torch_shapes_and_macs(net: nn.Module, x: torch.Tensor) -> tuple[dict[str, str], int]:
    """Output shape of every named module and the multiply-adds of the convolutions and
    linear layers, computed here by hand from real CPU tensors (no paramlens)."""
    shapes: dict[str, str] = {}
    macs = 0

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            nonlocal macs
            shapes[name] = str(list(output.shape))
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs += output.numel() * module.in_channels * kh * kw // module.groups
            elif isinstance(module, nn.Linear):
                macs += output.numel() * module.in_features

        return record

    for name, module in net.named_modules():
        if name:
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        net(x)
    return shapes, macs


def test_the_seed_cnn_gets_a_guessed_input_and_torchs_shapes_and_mult_adds() -> None:
    doc = summary_json("fixtures/recipe/models.py::CNN")
    cnn = model(doc, "CNN")
    forward = cnn["forward"]
    # Conv2d(1 -> ...): 224 and 32 do not fit the classifier's 64 * 12 * 12; 28 does
    assert forward["input"] == "torch.randn(1, 1, 28, 28)"
    assert forward["guessed"] and forward["input_source"] == "guessed from Conv2d(1 -> …)"
    assert forward["error"] is None and forward["output_shape"] == "[1, 10]"

    from fixtures.recipe.models import CNN  # real weights, real compute: the reference

    shapes, macs = torch_shapes_and_macs(CNN(), torch.randn(1, 1, 28, 28))
    assert forward["macs"] == macs
    rows = {row["path"]: row for row in cnn["tree"] if row["path"]}
    assert {path: row["output_shape"] for path, row in rows.items()} == shapes
    first_conv = next(layer for layer in cnn["layers"] if layer["line"] == 28)
    assert first_conv["calls"] == [
        {
            "inputs": "[1, 1, 28, 28]",
            "output": "[1, 32, 26, 26]",
            "count": 1,
            "macs": 194_688,
            "saved_bytes": 28 * 28 * 4,  # the convolution keeps its input for backward
        }
    ]


def test_the_summary_table_has_torchinfos_shape_columns() -> None:
    result = run_cli("summary", "fixtures/recipe/models.py::NeuralNetwork", "--input", "1,28,28")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("Layer"))
    assert header.split("   ")[:4] == [
        "Layer (type:depth-idx)",
        "Input Shape",
        "Output Shape",
        "Param # (with children)",
    ]
    assert "Mult-Adds" in header
    linear = next(line for line in result.stdout.splitlines() if "Linear: 2-1" in line)
    assert linear.partition("2-1")[2].split()[:5] == ["[1,", "784]", "[1,", "512]", "401,920"]
    assert "Input: torch.randn(1, 28, 28)  (command line)" in result.stdout
    assert "Total mult-adds: 668.67K (668,672)" in result.stdout


def test_annotate_shows_each_line_of_forward_and_the_layers_outputs() -> None:
    result = run_cli("annotate", "fixtures/recipe/models.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def at(number: int) -> str:
        return next(line for line in lines if line.startswith(f"{number:>2}  "))

    assert at(11).endswith("# Linear(784 -> 512) 401,920 → [1, 512]")
    assert at(19).endswith("# x: [1, 784]")
    assert at(21).endswith("# return: [1, 10]")
    assert at(42).endswith("# x: [1, 64, 12, 12]")


def test_an_input_that_does_not_fit_fails_on_the_users_line_with_the_number_to_change() -> None:
    result = run_cli(
        "summary",
        "fixtures/recipe/models.py::NeuralNetwork",
        "--input",
        "1,29,28",
        "--format",
        "json",
    )
    assert result.returncode == 1  # the user's own input: a shape bug in the model
    forward = model(json.loads(result.stdout), "NeuralNetwork")["forward"]
    error = forward["error"]
    assert error["line"] == 20  # logits = self.linear_relu_stack(x), not inside torch
    assert error["message"] == (
        "self.linear_relu_stack.0 is Linear(784 -> 512) but receives [1, 812]: "
        "in_features should be 812 (declared at line 11)"
    )
    assert forward["declared"][1] == 11
    assert forward["fix"] == {
        "file": forward["declared"][0],
        "line": 11,
        "layer": "Linear",
        "param": "in_features",
        "old": 784,
        "new": 812,
        "internal": False,  # the first layer: the input does not fit the model at all
    }
    assert "models.py:20: NeuralNetwork: forward(): self.linear_relu_stack.0" in result.stderr


WORKSPACE = {
    "pyproject.toml": """
        [tool.paramlens]
        dims = { batch = 4 }

        [tool.paramlens.inputs]
        Pinned = "torch.randn(2, 8)"
        "nets.py::TwoInputs" = "(torch.randn(3, 4), torch.randn(3, 6))"
        Keywords = "{'tokens': torch.randint(0, 10, (2, 5)), 'mask': torch.ones(2, 5)}"
    """,
    "nets.py": """
        import torch
        from torch import nn

        class Pinned(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                return self.fc(x)

        class TwoInputs(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 5)
                self.b = nn.Linear(6, 5)

            def forward(self, left, right):
                both = self.a(left) + self.b(right)
                return both, both.sum(-1)

        class Keywords(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 4)

            def forward(self, tokens, mask=None):
                h = self.embed(tokens) * mask[..., None]
                return {"hidden": h}

        class Lightning(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(2, 4, 3)
                self.example_input_array = torch.zeros(1, 2, 10)

            def forward(self, x):
                return self.conv(x)

        class Trained(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(12, 3)

            def forward(self, x):
                return self.fc(x)

        class Timmish(nn.Module):  # timm declares its input size in pretrained_cfg
            def __init__(self):
                super().__init__()
                self.pretrained_cfg = {"input_size": (3, 40, 40)}
                self.conv = nn.Conv2d(3, 4, 4, stride=4)
                self.head = nn.Linear(4 * 10 * 10, 2)

            def forward(self, x):
                return self.head(self.conv(x).flatten(1))

        class TokenBlock(nn.Module):  # a transformer block: a sequence of vectors
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(8, 24)

            def forward(self, x):
                batch, tokens, width = x.shape
                return self.qkv(x).reshape(batch, tokens, 3, width)

        class Looped(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Linear(16, 16) for _ in range(3)])
                self.heads = nn.ModuleList([nn.Linear(16, 8), nn.Linear(16, 4)])

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                outs = [head(x) for head in self.heads]
                return outs
    """,
}


WORKSPACE["annotated.py"] = """
    from __future__ import annotations

    from typing import Annotated

    import torch
    from torch import Tensor, nn

    class Jax(nn.Module):  # jaxtyping's spelling; jaxtyping itself is not even installed
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x: Float[Tensor, "batch 3 32 32"]) -> Tensor:
            return self.conv(x)

    class Ann(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 2)

        def forward(self, x: Annotated[torch.Tensor, "batch seq 8"], scale: float = 1.0):
            return self.fc(x) * scale
"""

WORKSPACE["train.py"] = """
    import torch
    from nets import Trained

    BATCH = 64

    def main():
        net = Trained().to("cpu")
        x = torch.randn(BATCH, 12, device="cpu")
        loss = net(x).sum()  # read, never run

    if __name__ == "__main__":
        main()
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    for name, text in WORKSPACE.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_each_source_of_the_example_input(workspace: Path) -> None:
    doc = summary_json(str(workspace / "nets.py"), "--no-cache")
    forward = {m["name"]: m["forward"] for m in doc["models"]}
    assert forward["Pinned"]["input_source"] == "pyproject.toml"
    assert forward["Pinned"]["output_shape"] == "[2, 3]"
    assert forward["TwoInputs"]["input_shape"] == "([3, 4], [3, 6])"
    assert forward["TwoInputs"]["output_shape"] == "([3, 5], [3])"
    assert forward["Keywords"]["input_shape"] == "{tokens: [2, 5], mask: [2, 5]}"
    assert forward["Keywords"]["output_shape"] == "{hidden: [2, 5, 4]}"
    assert forward["Lightning"]["input_source"] == "example_input_array"
    assert forward["Lightning"]["output_shape"] == "[1, 4, 8]"
    assert forward["Looped"]["input_source"] == "guessed from Linear(16 -> …)"
    assert forward["Timmish"]["input"] == "torch.randn(1, 3, 40, 40)"
    assert forward["TokenBlock"]["input"] == "torch.randn(1, 16, 8)"  # [1, 8] did not fit
    assert forward["TokenBlock"]["output_shape"] == "[1, 16, 3, 8]"
    # a training script's call: x = torch.randn(BATCH, 12) then net(x), BATCH folded
    assert forward["Trained"]["input"] == "torch.randn(64, 12)"
    assert forward["Trained"]["input_source"] == "called at train.py:10"
    assert forward["Trained"]["output_shape"] == "[64, 3]"
    assert all(f["error"] is None for f in forward.values()), forward


def test_shape_annotations_with_named_dimensions(workspace: Path) -> None:
    doc = summary_json(str(workspace / "annotated.py"), "--no-cache")
    forward = {m["name"]: m["forward"] for m in doc["models"]}
    assert forward["Jax"]["input"] == "torch.randn(4, 3, 32, 32)"  # batch = 4 in pyproject
    assert forward["Jax"]["input_source"] == "forward()'s shape annotations"
    assert forward["Jax"]["output_shape"] == "[4, 8, 30, 30]"
    assert forward["Ann"]["input"] == "torch.randn(4, 16, 8)"  # seq: the default, 16
    assert forward["Ann"]["output_shape"] == "[4, 16, 2]"


def test_a_layer_called_in_a_loop_lists_its_calls(workspace: Path) -> None:
    doc = summary_json(str(workspace / "nets.py") + "::Looped", "--no-cache")
    looped = model(doc, "Looped")
    blocks = next(
        layer for layer in looped["layers"] if layer["type"] == "Linear" and layer["count"] == 3
    )
    assert blocks["calls"] == [
        {
            "inputs": "[1, 16]",
            "output": "[1, 16]",
            "count": 3,
            "macs": 3 * 256,
            "saved_bytes": 3 * 64,
        }
    ]
    result = run_cli("annotate", str(workspace / "nets.py"), "--no-cache")
    assert "x = block(x)" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "x = block(x)" in line)
    assert line.endswith("# x: [1, 16]")
    outs = next(line for line in result.stdout.splitlines() if "outs = [head(x)" in line)
    assert outs.endswith("# outs: ([1, 8], [1, 4])")


def test_a_token_input_is_guessed_at_the_context_length_the_model_declares(
    workspace: Path,
) -> None:
    (workspace / "lm.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from torch import nn


            @dataclass
            class Config:
                vocab_size: int = 100
                max_position_embeddings: int = 131072


            class Tiny(nn.Module):
                def __init__(self, config: Config = Config(), context: int = 64):
                    super().__init__()
                    self.config = config
                    self.block_size = context
                    self.embed = nn.Embedding(config.vocab_size, 8)

                def forward(self, tokens):
                    return self.embed(tokens)


            class Long(Tiny):
                def __init__(self):
                    super().__init__()
                    del self.block_size
            """
        )
    )
    doc = summary_json(str(workspace / "lm.py"))
    tiny, long = model(doc, "Tiny")["forward"], model(doc, "Long")["forward"]
    assert tiny["input_shape"] == "[1, 64]" and tiny["output_shape"] == "[1, 64, 8]"
    assert tiny["input_source"] == "guessed from Embedding(100, …) and block_size"
    # 131,072 positions: guessed at 1,024 tokens (an input can ask for more)
    assert long["input_shape"] == "[1, 1024]"
    assert long["input_source"].endswith("and config.max_position_embeddings")


def test_no_shapes_means_parameters_only() -> None:
    doc = summary_json("fixtures/recipe/models.py::CNN", "--no-shapes")
    assert model(doc, "CNN")["forward"] is None
    assert model(doc, "CNN")["total_params"] == 1_199_882


def test_a_forward_that_hangs_keeps_the_parameters(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Slow(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    while True:
                        x = self.fc(x)
            """
        )
    )
    doc = summary_json(str(tmp_path / "slow.py"), "--no-cache", "--timeout", "3")
    slow = model(doc, "Slow")
    assert slow["error"] is None and slow["total_params"] == 20
    assert "forward() took longer than" in slow["forward"]["error"]["message"]


def cpu_training_step(net: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(bytes autograd saved for backward, bytes of AdamW's state after one step), on the CPU
    with real tensors: each saved storage once, the parameters' own storages excluded."""
    own = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = net(x).sum()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad])
    loss.backward()
    optimizer.step()
    state = sum(
        t.numel() * t.element_size()
        for per_param in optimizer.state.values()
        for name, t in per_param.items()
        if name != "step"  # a scalar counter
    )
    return sum(saved.values()), state


@pytest.mark.parametrize(
    ("target", "cls", "shape"),
    [
        ("models.py::NeuralNetwork", "NeuralNetwork", (1, 784)),
        ("models.py::CNN", "CNN", (1, 1, 28, 28)),
        ("frozen.py::FrozenFirstLayer", "FrozenFirstLayer", (1, 784)),
    ],
)
def test_training_memory_is_what_a_real_adamw_step_holds(
    target: str, cls: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    monkeypatch.syspath_prepend(str(Path("fixtures/recipe").resolve()))  # frozen: import models
    doc = summary_json(f"fixtures/recipe/{target}")
    measured = model(doc, cls)
    forward = measured["forward"]
    module = importlib.import_module(f"fixtures.recipe.{target.partition('.py')[0]}")
    net = getattr(module, cls)()
    activations, adamw_state = cpu_training_step(net, torch.randn(*shape))
    assert forward["activation_bytes"] == activations
    trainable_bytes = sum(p.numel() * 4 for p in net.parameters() if p.requires_grad)
    gradients = trainable_bytes
    assert forward["optimizer"] == "adamw"
    assert forward["train_bytes"] == (
        measured["param_bytes"] + gradients + adamw_state + activations
    )


def test_each_layer_says_what_autograd_saved_for_backward_during_its_calls() -> None:
    doc = summary_json("fixtures/recipe/models.py::NeuralNetwork")
    measured = model(doc, "NeuralNetwork")
    saved = {
        layer["line"]: sum(c["saved_bytes"] for c in layer["calls"]) for layer in measured["layers"]
    }
    # Linear(784 -> 512) keeps its input for the weight's gradient: 784 float32 values; each
    # tensor is counted once, for the call that saved it first (the line's ReLU output is
    # what the next Linear reads)
    assert (saved[11], saved[12], saved[13], saved[14], saved[15]) == (784 * 4, 2048, 0, 2048, 0)
    # the Sequential on line 10: everything its children saved, which is forward()'s total
    assert saved[10] == sum(saved[line] for line in range(11, 16))
    assert saved[10] == measured["forward"]["activation_bytes"]


@pytest.mark.parametrize(("cls", "shape"), [("NeuralNetwork", (1, 784)), ("CNN", (1, 1, 28, 28))])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_memory_is_what_autocast_saves_on_the_cpu(
    cls: str, shape: tuple[int, ...], precision: str
) -> None:
    import importlib

    doc = summary_json(f"fixtures/recipe/models.py::{cls}", "--precision", precision)
    forward = model(doc, cls)["forward"]
    net = getattr(importlib.import_module("fixtures.recipe.models"), cls)()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with torch.autocast("cpu", dtype=dtype):
        activations, _ = cpu_training_step(net, torch.randn(*shape))
    float32, _ = cpu_training_step(net, torch.randn(*shape))
    assert forward["precision"] == precision and activations != float32
    assert forward["activation_bytes"] == activations
    table = run_cli("summary", f"fixtures/recipe/models.py::{cls}", "--precision", precision)
    assert f"(under {precision} autocast)" in table.stdout


def test_a_forward_that_reads_values_runs_again_on_the_cpu(tmp_path: Path) -> None:
    (tmp_path / "item.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            class ReadsValues(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    times = int(x.abs().sum().item() > 0) + 1  # meta has no values
                    for _ in range(times):
                        x = self.fc(x)
                    return x
            """
        )
    )
    doc = summary_json(str(tmp_path / "item.py"), "--no-cache")
    reads = model(doc, "ReadsValues")
    assert reads["device"] == "meta" and reads["total_params"] == 20  # built on meta still
    forward = reads["forward"]
    assert forward["error"] is None and forward["device"] == "cpu"
    assert "Tensor.item() cannot be called on meta tensors" in forward["note"]
    [fc] = [layer for layer in reads["layers"] if layer["type"] == "Linear"]
    assert fc["calls"] == [
        {"inputs": "[1, 4]", "output": "[1, 4]", "count": 2, "macs": 32, "saved_bytes": 2 * 16}
    ]


def test_a_guess_that_does_not_fit_is_no_error_and_says_how_to_pin_an_input(
    tmp_path: Path,
) -> None:
    (tmp_path / "pairs.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            class WantsImages(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    assert x.dim() == 4, "images only"
                    return self.fc(x)
            """
        )
    )
    result = run_cli("annotate", str(tmp_path / "pairs.py"), "--no-cache")
    assert result.returncode == 0, result.stderr
    assert "forward()" not in result.stderr  # the guess's fault, not the code's
    assert "no shapes: the guessed input does not fit (hover to pin one)" in result.stdout


def test_batchnorm_after_global_pooling_is_guessed_a_batch_of_two(tmp_path: Path) -> None:
    # MobileNet's head: BatchNorm in training refuses one value per channel, as torch does
    # (timm's mobilenetv3/v4 and efficientnet families failed forward() at batch 1)
    source = textwrap.dedent(
        """
        from torch import nn


        class PooledHead(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.norm = nn.BatchNorm2d(8)
                self.fc = nn.Linear(8, 5)

            def forward(self, x):
                x = self.norm(self.pool(self.conv(x)))
                return self.fc(x.flatten(1))
        """
    )
    (tmp_path / "head.py").write_text(source)
    forward = model(summary_json(str(tmp_path / "head.py"), "--no-cache"), "PooledHead")["forward"]
    assert forward["error"] is None and forward["input"] == "torch.randn(2, 3, 224, 224)"
    assert forward["input_source"].endswith("a batch of 2, as BatchNorm needs in training")

    namespace: dict[str, object] = {}
    exec(source, namespace)
    net = namespace["PooledHead"]()
    assert isinstance(net, nn.Module)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        net(torch.randn(1, 3, 224, 224))  # torch itself refuses a batch of 1
    shapes, macs = torch_shapes_and_macs(net, torch.randn(2, 3, 224, 224))
    assert forward["output_shape"] == shapes["fc"] == "[2, 5]" and forward["macs"] == macs


def test_a_constructor_that_reads_values_builds_on_meta_with_small_cpu_tensors(
    tmp_path: Path,
) -> None:
    # vit-pytorch's CCT (3D) reads a drop-path schedule with .item() and runs a trial
    # forward() on an 8-frame 224x224 clip in its constructor: on the CPU that took longer
    # than the timeout; with only its small tensors on the CPU, it builds on meta
    source = textwrap.dedent(
        """
        import torch
        from torch import nn


        class Clip(nn.Module):
            def __init__(self, dim=96, depth=3):
                super().__init__()
                self.rates = [x.item() for x in torch.linspace(0, 0.1, depth)]
                self.embed = nn.Conv3d(3, dim, (3, 7, 7), stride=(1, 4, 4))
                tokens = self.embed(torch.zeros(1, 3, 8, 224, 224)).flatten(2).shape[2]
                self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
                self.register_buffer("scale", torch.arange(dim).float())
                self.blocks = nn.Sequential(*(nn.Linear(dim, dim) for _ in range(depth)))
                self.norm_in, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim)
                self.norm_out.weight = self.norm_in.weight  # small, so built on the CPU: tied
                self.head = nn.Linear(dim, 10)
                self.example_input_array = torch.zeros(1, 3, 8, 224, 224)

            def forward(self, x):
                x = self.norm_in(self.embed(x).flatten(2).transpose(1, 2) + self.pos)
                return self.head(self.norm_out(self.blocks(x * self.scale)).mean(1))


        class Mixes(nn.Module):
            def __init__(self):
                super().__init__()
                offset = (torch.zeros(10_000)[:10] + torch.ones(10)).sum().item()
                self.fc = nn.Linear(4, int(offset))


        CALLS = [0]


        class Once(nn.Module):  # the file's __init__s read values: its constructor runs once
            def __init__(self):
                super().__init__()
                CALLS[0] += 1
                self.fc = nn.Linear(4, CALLS[0])  # Linear(4, 2) if this ran twice
                self.rate = torch.linspace(0, 0.1, 3)[1].item()
        """
    )
    (tmp_path / "clip.py").write_text(source)
    doc = summary_json(str(tmp_path / "clip.py"), "--no-cache")
    namespace: dict[str, object] = {}
    exec(source, namespace)

    clip = model(doc, "Clip")
    assert clip["error"] is None and clip["device"] == "meta"
    assert any("small tensors its constructor reads on the CPU" in n for n in clip["notes"])
    real = namespace["Clip"]()
    assert isinstance(real, nn.Module)
    assert clip["total_params"] == sum(p.numel() for p in real.parameters())
    assert clip["buffer_numel"] == 96
    assert clip["forward"]["error"] is None
    assert clip["forward"]["output_shape"] == "[1, 10]"
    # small CPU tensors that meet meta ones: the whole model on the CPU, as before
    mixes = model(doc, "Mixes")
    assert mixes["error"] is None and mixes["device"] == "cpu" and mixes["total_params"] == 50
    # not built on meta first (CCT's 4 s of Python before its .item() ran twice, past the
    # timeout): small tensors on the CPU at once
    once = model(doc, "Once")
    assert once["error"] is None and once["device"] == "meta" and once["total_params"] == 5


def test_repeated_blocks_give_what_running_every_block_gives(tmp_path: Path) -> None:
    # on meta, alike blocks called with the same input run twice and are replayed after:
    # every figure must equal torch's own run, and paramlens' with every block run
    source = textwrap.dedent(
        """
        import torch
        from torch import nn


        class Block(nn.Module):
            def __init__(self, dim: int, layer_id: int):
                super().__init__()
                self.layer_id = layer_id  # only __init__ reads it: the blocks are alike
                self.norm = nn.LayerNorm(dim)
                self.fc = nn.Linear(dim, dim)

            def forward(self, x):
                return x + self.fc(torch.nn.functional.gelu(self.norm(x)))


        class Halving(nn.Module):  # alike, but forward() reads the index
            def __init__(self, dim: int, index: int):
                super().__init__()
                self.index = index
                self.fc = nn.Linear(dim, dim)

            def forward(self, x):  # the fourth halves what the first three kept
                x = self.fc(x)
                return x[:, ::2].contiguous() if self.index % 4 == 3 else x


        class Deep(nn.Module):
            def __init__(self, dim=32, depth=6):
                super().__init__()
                self.embed = nn.Embedding(100, dim)
                self.blocks = nn.ModuleList(Block(dim, i) for i in range(depth))
                self.halving = nn.ModuleList(Halving(dim, i) for i in range(4))
                self.head = nn.Linear(dim, 10)

            def forward(self, tokens):
                x = self.embed(tokens)
                for block in self.blocks:
                    x = block(x)
                for block in self.halving:
                    x = block(x)
                return self.head(x)
        """
    )
    (tmp_path / "deep.py").write_text(source)
    target = f"{tmp_path / 'deep.py'}::Deep"
    replayed = model(
        summary_json(target, "--no-cache", "--input", "2,16", "--dtype", "long"), "Deep"
    )
    result = run_cli(
        "summary",
        target,
        "--format",
        "json",
        "--no-cache",
        "--input",
        "2,16",
        "--dtype",
        "long",
        env={"PARAMLENS_NO_REPEATS": "1"},
    )
    every = model(json.loads(result.stdout), "Deep")
    forward = replayed["forward"]
    assert forward["error"] is None and forward["output_shape"] == "[2, 8, 10]"
    for key in ("forward", "tree", "layers"):
        assert replayed[key] == every[key], key

    namespace: dict[str, object] = {}
    exec(source, namespace)
    net = namespace["Deep"]()
    assert isinstance(net, nn.Module)
    shapes, macs = torch_shapes_and_macs(net, torch.randint(0, 100, (2, 16)))
    called = {r["path"]: r["output_shape"] for r in replayed["tree"][1:] if r["output_shape"]}
    assert called == shapes  # (the ModuleLists themselves are never called)
    assert forward["macs"] == macs
