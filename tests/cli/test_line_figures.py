"""Issue 20 item 6: a line shows what builds with real arguments made there, by size; an
example build (``Residual(channels=3)``, which no code of the user's makes) shows only
where nothing real reached the line, and says so. Golden file in tests/cli/golden/
(PARAMLENS_UPDATE_GOLDEN=1 writes it again); ground truth is plain torch in this process."""

from __future__ import annotations

import importlib.util
from collections import Counter

from torch import nn

from tests.conftest import FIXTURES, count, golden, model, plain_package, run_cli, summary_json

RESNET = FIXTURES / "resnet_lines/model.py"


def test_annotate_paints_lines_with_the_real_builds_sizes() -> None:
    result = run_cli("annotate", str(RESNET))
    assert result.returncode == 0, result.stderr
    golden("resnet_lines.annotate.txt", result.stdout)
    lines = {int(row[:2]): row for row in result.stdout.splitlines() if row[:2].strip().isdigit()}
    # the helper's lines: every size TinyResNet() made there, not Residual(channels=3)'s
    assert "# Conv2d(3 -> 16, 3x3) 432 | 2 x Conv2d(16 -> 16, 3x3) 4,608 | +2 more" in lines[11]
    assert "Conv2d(3 -> 3, 3x3)" not in result.stdout
    # inside Residual: its four instances in TinyResNet, by size (1 of 4,672, 3 of 18,560)
    assert lines[19].endswith("# ModuleList 4,672 | 3 x ModuleList 55,680")
    # a class no model uses: its example build, said on its line
    assert lines[45].endswith("# Linear(3 -> 3) 12 → [1, 3] · example sizes")
    # and the shapes its forward() gave, which only that build ran
    assert lines[48].endswith("# return: [1, 3] · example sizes")
    assert [n for n, row in lines.items() if "example sizes" in row] == [45, 48]


def test_the_sizes_of_a_line_are_torchs() -> None:
    spec = importlib.util.spec_from_file_location("resnet_lines_model", RESNET)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    convs = Counter(
        (f"Conv2d({m.in_channels} -> {m.out_channels}, 3x3)", m.weight.numel())
        for m in module.TinyResNet().modules()
        if isinstance(m, nn.Conv2d)
    )
    doc = summary_json(str(RESNET), "--no-shapes")
    entry = next(e for e in model(doc, "TinyResNet")["layers"] if e["line"] == 11)
    sizes = {(s["describe"], s["params"]): s["count"] for s in entry["sizes"]}
    assert (
        sizes
        == dict(convs)
        == {
            ("Conv2d(3 -> 16, 3x3)", 432): 1,
            ("Conv2d(16 -> 16, 3x3)", 2_304): 2,
            ("Conv2d(16 -> 32, 3x3)", 4_608): 1,
            ("Conv2d(32 -> 32, 3x3)", 9_216): 6,
        }
    )
    assert entry["params"] == sum(params * count for (_, params), count in sizes.items())


TWO_MODELS = FIXTURES / "resnet_lines/two_models.py"


def test_a_line_built_by_two_models_shows_both_sizes() -> None:
    spec = importlib.util.spec_from_file_location("two_models", TWO_MODELS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the up-projections (line 11) as plain torch builds the two models
    ups = Counter(
        f"Linear({m.in_features} -> {m.out_features}) {m.weight.numel() + m.bias.numel():,}"
        for net in (module.WideNet(), module.SmallNet())
        for m in net.modules()
        if isinstance(m, nn.Linear) and m.out_features > m.in_features
    )
    assert ups == {"Linear(128 -> 512) 66,048": 1, "Linear(32 -> 64) 2,112": 2}
    result = run_cli("annotate", str(TWO_MODELS))
    assert result.returncode == 0, result.stderr
    lines = {int(row[:2]): row for row in result.stdout.splitlines() if row[:2].strip().isdigit()}
    # MLPBlock's own build (arguments from WideNet's call) first, then SmallNet's two
    # blocks of another size: 2 x 2,112
    assert lines[11].endswith(
        "# Linear(128 -> 512) 66,048 | 2 x Linear(32 -> 64) 4,224 → [1, 512] | [1, 64] \N{MULTIPLICATION SIGN}2"
    )
    assert "example sizes" not in result.stdout


LAYERED = FIXTURES / "layered"


def test_a_block_only_another_block_builds_is_measured_in_the_model_that_builds_that_one() -> None:
    """``Attention`` is built only by ``Block`` (block.py), which needs arguments too; only
    ``Model()`` (model.py, its defaults) builds them with real ones. Opening attention.py
    measures ``Attention`` there, one user further: its instances and the lines of its
    layers, not its example build."""
    result = run_cli("annotate", str(LAYERED / "tinynet/attention.py"))
    assert result.returncode == 0, result.stderr
    with plain_package(LAYERED, "tinynet"):
        from tinynet.attention import Attention
        from tinynet.model import Model

        built = Model().to("meta")
        inside = [m for m in built.modules() if isinstance(m, Attention)]
    each = count(inside[0])
    assert {count(m) for m in inside} == {each}
    assert f"# Attention · {each:,} each · {len(inside)} in Model" in result.stdout
    lines = {int(row[:2]): row for row in result.stdout.splitlines() if row[:2].strip().isdigit()}
    qkv = inside[0].qkv
    assert f"# {len(inside)} x Linear(96 -> 288) {len(inside) * count(qkv):,}" in lines[8]
    assert "example" not in lines[9]  # forward()'s lines keep the example build's shapes


def test_a_folder_summary_measures_a_block_in_any_real_model_it_built() -> None:
    """``Norm`` has four users; its file's analysis builds three (``Head1``..``Head3``, one
    model each, with example sizes), not ``wide.py``, whose ``Wide()`` holds it for real. A
    summary of the folder built every file: ``Norm`` is measured in ``Wide`` there."""
    norms = LAYERED / "tinynet/norms.py"
    alone = model(summary_json(str(norms), "--no-shapes"), "Norm")
    assert alone["example"] and alone["instances"] == []  # the editor's bounds
    folder = model(summary_json(str(LAYERED), "--no-shapes"), "Norm")
    with plain_package(LAYERED, "tinynet"):
        from tinynet.norms import Norm
        from tinynet.wide import Wide

        inside = [m for m in Wide().to("meta").modules() if isinstance(m, Norm)]
    assert folder["instances"] == [
        {
            "model": "Wide",
            "file": str(LAYERED / "tinynet/wide.py"),
            "count": len(inside),
            "params": count(inside[0]),
        }
    ]
