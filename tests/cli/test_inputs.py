"""Guessed forward() inputs from the model's own sizes (issue 20, item 4): an image of the
size and channels its constructor declares (vit-pytorch's SimpleViT cuts it into patches
with einops' Rearrange first; MaxViT's squeeze-excitation pools it with Reduce), a spectrogram of its n_mels and frames; and a block whose
forward() takes several tensors (llama2.c's ``Attention.forward(x, freqs_cos, freqs_sin)``)
gets the ones its parent passes. Ground truth: plain torch in this process."""

from __future__ import annotations

import importlib.util
import types

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import FIXTURES, golden, model, run_cli, summary_json

INPUTS = FIXTURES / "inputs"


def plain(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"inputs_{name}", INPUTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shape_and_macs(net: nn.Module, *args: torch.Tensor) -> tuple[list[int], int]:
    """Output shape and multiply-adds (torch's FLOP formulas / 2) of one plain call, on
    meta: the math attention path, as paramlens runs it."""
    with FlopCounterMode(display=False) as counter:
        out = net(*args)
    return list(out.shape), counter.get_total_flops() // 2


def test_image_models_get_the_size_and_channels_their_constructor_declares() -> None:
    doc = summary_json(str(INPUTS / "simple_vit.py"))
    m = plain("simple_vit")
    with torch.device("meta"):
        cases = {
            "SimpleViT": (m.vit, torch.randn(1, 3, 32, 32)),
            "PatchEncoder": (m.encoder, torch.randn(1, 1, 48, 48)),
            "AudioEncoder": (m.audio, torch.randn(1, 40, 100)),
            "SqueezeExcitation": (m.excite, torch.randn(1, 24, 224, 224)),
        }
        for name, (net, x) in cases.items():
            forward = model(doc, name)["forward"]
            assert forward["error"] is None, (name, forward["error"])
            assert forward["input"] == f"torch.randn({', '.join(map(str, x.shape))})"
            shape, macs = shape_and_macs(net.to("meta"), x)
            assert (forward["output_shape"], forward["macs"]) == (str(shape), macs), name
    sources = {n: model(doc, n)["forward"]["input_source"] for n in cases}
    assert sources == {
        "SimpleViT": 'guessed from Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)") '
        "and image_size and channels",
        "PatchEncoder": "guessed from Linear(256 -> …) and image_size and channels",
        "AudioEncoder": "guessed from Conv1d(40 -> …), n_mels and 2 x n_audio_ctx",
        # an einops Reduce first: its channels from the Linear after it
        "SqueezeExcitation": 'guessed from Reduce("b c h w -> b c")',
    }


def test_blocks_get_the_arguments_their_parent_passes() -> None:
    doc = summary_json(str(INPUTS / "llama2c.py"))
    m = plain("llama2c")
    tables = "torch.randn(48, 8), torch.randn(48, 8)"
    with torch.device("meta"):
        x, cos, sin = torch.randn(1, 48, 64), torch.randn(48, 8), torch.randn(48, 8)
        blocks = {
            "Attention": (m.Attention(m.ModelArgs()), "TransformerBlock at llama2c.py:96"),
            "TransformerBlock": (
                m.TransformerBlock(0, m.ModelArgs()),
                "Transformer at llama2c.py:122",
            ),
        }
        for name, (block, caller) in blocks.items():
            forward = model(doc, name)["forward"]
            assert forward["error"] is None, (name, forward["error"])
            assert forward["input"] == f"(torch.randn(1, 48, 64), {tables})"
            assert forward["input_source"] == f"as passed by {caller}"
            assert forward["guessed"] is False
            shape, macs = shape_and_macs(block, x, cos, sin)
            assert (forward["output_shape"], forward["macs"]) == (str(shape), macs), name
        # the model itself: tokens of its declared context
        top = model(doc, "Transformer")["forward"]
        assert top["input"] == "torch.randint(0, 256, (1, 48))"
        tokens = torch.randint(0, 256, (1, 48))
        assert top["macs"] == shape_and_macs(m.Transformer(m.ModelArgs()), tokens)[1]


def test_annotate_shows_the_blocks_and_the_images_shapes() -> None:
    for name in ("llama2c", "simple_vit"):
        result = run_cli("annotate", f"fixtures/inputs/{name}.py")
        assert result.returncode == 0, result.stderr
        golden(f"inputs_{name}.annotate.txt", result.stdout)


def test_autocast_for_the_inputs_device_type_runs_on_meta() -> None:
    # torch.autocast("meta", enabled=False) raises "unsupported scalarType" in plain torch
    forward = model(summary_json(str(INPUTS / "rotary.py")), "RotaryMixer")["forward"]
    assert forward["error"] is None, forward["error"]
    assert forward["step"].get("error") is None and forward["step"]["peak"] > 0  # training too
    net, x = plain("rotary").RotaryMixer(), torch.randn(1, 32)
    with torch.no_grad():
        assert forward["output_shape"] == str(list(net(x).shape))


def test_a_dense_network_that_flattens_its_image_gets_one() -> None:
    # Linear(784 -> ...) first, but forward() unpacks [b, c, w, h]: 784 = 1 x 28 x 28
    forward = model(summary_json(str(INPUTS / "dense.py")), "DenseNet")["forward"]
    assert forward["error"] is None, forward["error"]
    assert forward["input"] == "torch.randn(1, 1, 28, 28)"
    assert forward["input_source"] == "guessed from Linear(784 -> …) as a flattened image"
    with torch.device("meta"):
        shape, macs = shape_and_macs(plain("dense").DenseNet(), torch.randn(1, 1, 28, 28))
    assert (forward["output_shape"], forward["macs"]) == (str(shape), macs)
