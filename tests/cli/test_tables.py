"""Issue 20: a module-level table of configurations as the constructors of the class each
entry names (segmentation_models_pytorch's ``densenet_encoders``: ``{"densenet121":
{"encoder": DenseNetEncoder, "params": {...}}}``, which ``get_encoder(name)`` builds as
``Class(**params)``). Ground truth is plain torch in this process, building each entry the
way the fixture's own ``get_encoder`` does."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, count, model, plain_package, run_cli, summary_json

TABLES = FIXTURES / "tables"
ENCODERS = TABLES / "towers" / "encoders.py"


@pytest.fixture(scope="module")
def doc() -> dict:
    return summary_json(str(ENCODERS), "--no-shapes")


@pytest.fixture(scope="module")
def truth() -> dict[str, object]:
    with plain_package(TABLES, "towers"):
        from towers import encoders

        return {name: encoders.get_encoder(name).to("meta") for name in encoders.encoders}


def test_the_first_entry_builds_the_class_and_the_others_are_its_configurations(
    doc: dict, truth: dict
) -> None:
    encoder = model(doc, "Encoder")
    assert encoder["source_kind"] == "call site"
    assert encoder["source"] == "towers/encoders.py:45 (encoders['small'])"
    assert encoder["total_params"] == count(truth["small"])
    wide = model(doc, "towers/encoders.py:50 (encoders['wide'])")
    assert wide["kind"] == "config" and wide["total_params"] == count(truth["wide"])


def test_the_blocks_an_entry_names_are_measured_in_its_build(doc: dict, truth: dict) -> None:
    """``"block": WideBottleneck`` is only ever built through the "wide" entry."""
    blocks = [m for m in truth["wide"].modules() if type(m).__name__ == "WideBottleneck"]
    (instances,) = model(doc, "WideBottleneck")["instances"]
    assert instances["count"] == len(blocks)
    assert instances["params"] == count(blocks[0])
    assert instances["model"] == "towers/encoders.py:50 (encoders['wide'])"


def test_an_entry_that_differs_only_by_the_class_it_names_is_a_configuration_too(
    doc: dict, truth: dict
) -> None:
    """ "gated" gives "small"'s sizes with another block: a class given as an argument
    switches blocks on as a flag does, so it is built, and the block it names measured."""
    gated = model(doc, "towers/encoders.py:61 (encoders['gated'])")
    assert gated["total_params"] == count(truth["gated"])
    blocks = [m for m in truth["gated"].modules() if type(m).__name__ == "GatedBottleneck"]
    (instances,) = model(doc, "GatedBottleneck")["instances"]
    assert (instances["count"], instances["params"]) == (len(blocks), count(blocks[0]))


def test_annotate_says_which_entry_built_the_class(truth: dict) -> None:
    gated = truth["gated"]
    result = run_cli("annotate", str(ENCODERS), "--no-shapes")
    assert result.returncode == 0, result.stderr
    lens = next(row for row in result.stdout.splitlines() if "# Encoder:" in row)
    assert lens.endswith(
        "as called at towers/encoders.py:45 (encoders['small'])"
        " · towers/encoders.py:50 (encoders['wide']) 11,024"
        f" · towers/encoders.py:61 (encoders['gated']) {count(gated):,}"
    )
    assert "example" not in lens


def test_an_argument_that_is_a_partial_of_a_class() -> None:
    """``"norm_layer": partial(nn.LayerNorm, eps=1e-6)``: the class is built with it, as
    the table says, not with its default ``nn.BatchNorm1d``."""
    path = TABLES / "towers" / "mixers.py"
    mixer = model(summary_json(str(path), "--no-shapes"), "Mixer")
    with plain_package(TABLES, "towers"):
        from towers.mixers import mixers

        entry = mixers["base"]
        truth = entry["cls"](**entry["kwargs"]).to("meta")
    assert mixer["source"] == "towers/mixers.py:22 (mixers['base'])"
    assert mixer["total_params"] == count(truth)
    result = run_cli("annotate", str(path), "--no-shapes")
    norm = next(row for row in result.stdout.splitlines() if "self.norm = " in row)
    assert norm.endswith("# LayerNorm(64) 128")
