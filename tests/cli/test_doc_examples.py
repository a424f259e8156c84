"""Issue 20: classes that only the project's documentation builds (a README code block, a
docstring's ``>>>`` example) get their figures from those examples, each saying where; a
stale example falls back to the next source with a note. Ground truth is plain torch in
this process. Golden file in tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import FIXTURES, count, golden, model, plain_package, run_cli, summary_json

DOCEX = FIXTURES / "docex"


@pytest.fixture
def tinynet() -> Iterator[object]:
    """The fixture's package imported the plain way."""
    with plain_package(DOCEX, "tinynet"):
        import tinynet.distill
        import tinynet.mixer
        import tinynet.vision

        yield tinynet


def test_classes_built_only_in_the_readme_and_a_docstring(tinynet: object) -> None:
    from tinynet import Stack, Wrapper
    from tinynet.distill import DistillablePatchNet
    from tinynet.mixer import Mixer, MixerConfig
    from tinynet.vision import PatchNet

    doc = summary_json(str(DOCEX))
    with torch.device("meta"):
        expected = {
            "PatchNet": (
                "README.md:11",
                count(PatchNet(image_size=32, patch_size=8, dim=64, depth=2, num_classes=10)),
            ),
            # the nested constructor is the outer class's argument, and an example of its own
            "Wrapper": (
                "README.md:28",
                count(Wrapper(num_tokens=100, max_len=16, layers=Stack(dim=32, depth=3))),
            ),
            "Stack": ("README.md:31", count(Stack(dim=32, depth=3))),
            # a constructor that passes *args, **kwargs on: its defaults build nothing
            "DistillablePatchNet": (
                "README.md:48",
                count(
                    DistillablePatchNet(
                        image_size=32, patch_size=16, dim=48, depth=1, num_classes=10
                    )
                ),
            ),
            # a docstring's example, its config bound to a name first
            "Mixer": (
                "tinynet/mixer.py:17 (docstring)",
                count(Mixer(MixerConfig(width=24, tokens=8))),
            ),
        }
    for name, (source, params) in expected.items():
        built = model(doc, name)
        assert built["error"] is None, built["error"]
        assert (built["source_kind"], built["source"]) == ("doc example", source)
        assert built["example"] is False
        assert built["total_params"] == params, name
    assert model(doc, "Wrapper")["ctor"] == (
        "Wrapper(num_tokens=100, max_len=16, layers=Stack(dim=32, depth=3))"
    )
    assert model(doc, "Mixer")["ctor"] == "Mixer(MixerConfig(width=24, tokens=8))"


def test_a_stale_readme_example_falls_back_to_example_sizes() -> None:
    pooler = model(summary_json(str(DOCEX / "tinynet" / "vision.py")), "Pooler")
    assert pooler["error"] is None, pooler["error"]
    assert (pooler["source_kind"], pooler["source"]) == ("example", "example arguments")
    assert pooler["example"] is True
    assert pooler["notes"][0] == (
        "the example at README.md:40 failed: "
        "TypeError: Pooler.__init__() got an unexpected keyword argument 'width'"
    )


def test_annotate_says_which_example_built_each_class() -> None:
    for name in ("vision", "mixer"):
        result = run_cli("annotate", str(DOCEX / "tinynet" / f"{name}.py"))
        assert result.returncode == 0, result.stderr
        golden(f"docex_{name}.annotate.txt", result.stdout)


def test_a_readme_example_never_asks_for_weights(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens]\n")
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, dim, pretrained=False):\n"
        "        super().__init__()\n"
        "        if pretrained:\n"
        "            raise RuntimeError('downloading weights')\n"
        "        self.fc = nn.Linear(dim, dim)\n"
    )
    (tmp_path / "README.md").write_text(
        "# pk\n\n```python\nfrom pk import Net\nnet = Net(dim=7, pretrained=True)\n```\n"
    )
    net = model(summary_json(str(tmp_path)), "Net")
    assert (net["source"], net["ctor"]) == ("README.md:5", "Net(dim=7, pretrained=False)")
    assert net["total_params"] == 56
