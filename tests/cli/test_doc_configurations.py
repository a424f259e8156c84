"""Issue 20, more real arguments: every documentation example of a class that switches on
something new is a configuration of its own (the blocks only it builds get real figures);
reST literal blocks (a docstring's ``Examples::``, ``.. code-block:: python``, a
``docs/*.rst``) are documentation examples; a JSON object whose keys fit a constructor
(``model_configs/small.json``) is a configuration named by its path, and a JSON file that
does not parse is an error at its line. Ground truth is plain torch in this process.
Golden files in tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes them)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from tests.conftest import FIXTURES, count, golden, model, plain_package, run_cli, summary_json

DOCEX2 = FIXTURES / "docex2"
CONFIGS = DOCEX2 / "towers" / "model_configs"


@pytest.fixture
def towers() -> Iterator[object]:
    """The fixture's package imported the plain way."""
    with plain_package(DOCEX2, "towers"):
        import towers
        import towers.clip
        import towers.unet

        yield towers


def test_a_later_readme_example_is_a_configuration_and_measures_its_blocks(
    towers: object,
) -> None:
    from towers import Gate, Tower

    doc = summary_json(str(DOCEX2 / "towers" / "tower.py"), "--no-shapes")
    tower = model(doc, "Tower")
    assert (tower["source"], tower["ctor"]) == ("README.md:10", "Tower(dim=16, depth=2)")
    # the second example switches the gates on: a configuration of its own
    gated = model(doc, "README.md:18")
    assert (gated["kind"], gated["source_kind"], gated["model_class"]) == (
        "config",
        "doc example",
        "towers.tower.Tower",
    )
    assert gated["ctor"] == "Tower(dim=16, depth=2, use_gate=True)"
    with torch.device("meta"):
        assert gated["total_params"] == count(Tower(dim=16, depth=2, use_gate=True))
        each = count(Gate(16))
    # the third only changes a size: no new blocks, not built again
    assert not [m for m in doc["models"] if m["name"] == "README.md:24"]
    gate = model(doc, "Gate")
    assert [(i["model"], i["count"], i["params"]) for i in gate["instances"]] == [
        ("README.md:18", 2, each)
    ]


def test_rest_literal_blocks_of_docstrings_and_docs_are_examples(towers: object) -> None:
    from towers.unet import Stem, TinyUNet

    doc = summary_json(str(DOCEX2 / "towers" / "unet.py"), "--no-shapes")
    unet = model(doc, "TinyUNet")
    assert (unet["source_kind"], unet["source"]) == ("doc example", "towers/unet.py:12 (docstring)")
    assert unet["ctor"] == "TinyUNet(in_channels=1, out_channels=2, channels=(4, 8))"
    stem = model(doc, "Stem")  # docs/usage.rst comes first by path; its `::` block
    assert (stem["source"], stem["ctor"]) == ("docs/usage.rst:8", "Stem(channels=1, width=4)")
    with torch.device("meta"):
        assert unet["total_params"] == count(
            TinyUNet(in_channels=1, out_channels=2, channels=(4, 8))
        )
        assert stem["total_params"] == count(Stem(channels=1, width=4))
    # a note's text and a bash block are not examples
    assert "99" not in json.dumps([m["ctor"] for m in doc["models"]])


def test_json_configs_that_fit_a_constructor_are_configurations(towers: object) -> None:
    from towers.clip import Clip

    doc = summary_json(str(DOCEX2 / "towers" / "clip.py"), "--no-shapes")
    configs = {m["name"]: m for m in doc["models"] if m["kind"] == "config" and m["error"] is None}
    assert sorted(configs) == [
        "towers/model_configs/small-quickgelu.json",
        "towers/model_configs/small.json",
        "towers/model_configs/wide.json",
    ]
    for name, built in configs.items():
        fields = json.loads((DOCEX2 / name).read_text())
        fields.pop("custom_text", None)  # a loader's switch no parameter takes: left out
        with torch.device("meta"):
            assert built["total_params"] == count(Clip(**fields)), name
        assert (built["source_kind"], built["source"]) == ("config file", f"{name}:1")
        assert built["model_class"] == "towers.clip.Clip"
    [broken] = [m for m in doc["models"] if m["kind"] == "config" and m["error"] is not None]
    assert broken["name"] == "towers/model_configs/broken.json"
    assert broken["error"]["message"] == "JSON error: Expecting ',' delimiter"
    assert (broken["error"]["file"], broken["error"]["line"]) == (str(CONFIGS / "broken.json"), 3)


def test_annotate_lists_the_configurations() -> None:
    for name in ("tower", "unet", "clip"):
        result = run_cli("annotate", str(DOCEX2 / "towers" / f"{name}.py"), "--no-shapes")
        # the broken JSON is an error, at its line: the run says so in its exit code
        assert result.returncode == (1 if name == "clip" else 0), result.stderr
        golden(f"docex2_{name}.annotate.txt", result.stdout + result.stderr)
