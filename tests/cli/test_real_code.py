"""Code shaped like real projects: packages, factories, configs elsewhere, scripts at import.

Ground truth comes from plain torch in this process, never from paramlens.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, count, model, run_cli, summary_json


@pytest.fixture(scope="module")
def zoo_package() -> Iterator[object]:
    """The fixture package imported the plain way, for ground truth (not another test's
    ``models``: fixtures/recipe/frozen.py imports its own folder's ``models`` module)."""

    def forget() -> None:
        for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
            del sys.modules[name]

    forget()
    sys.path.insert(0, str(FIXTURES / "zoo"))
    try:
        import models

        yield models
    finally:
        sys.path.remove(str(FIXTURES / "zoo"))
        forget()


@pytest.fixture(scope="module")
def zoo() -> dict:
    return summary_json(str(FIXTURES / "zoo"))


def test_factory_functions_are_built_and_exact(zoo: dict, zoo_package: object) -> None:
    from models import resnet  # type: ignore[import-not-found]

    for name in ("ResNet18", "ResNet34", "resnet_tiny"):
        built = model(zoo, name)
        assert built["kind"] == "factory" and built["error"] is None, built
        assert built["model_class"] == "models.resnet.ResNet"
        assert built["total_params"] == count(getattr(resnet, name)()), name
    # a `pretrained` parameter is always passed as False (resnet_tiny raises otherwise)
    assert model(zoo, "resnet_tiny")["ctor"] == "resnet_tiny(pretrained=False)"


def test_call_sites_that_pass_classes_build_the_class(zoo: dict, zoo_package: object) -> None:
    from models import resnet

    built = model(zoo, "ResNet")
    assert built["error"] is None, built["error"]
    assert built["ctor"] == "ResNet(BasicBlock, [2, 2])"
    assert built["total_params"] == count(resnet.ResNet(resnet.BasicBlock, [2, 2]))
    # its constructor reads .item(): built on meta all the same, the schedule on the CPU
    assert built["device"] == "meta"
    assert any("small tensors its constructor reads on the CPU" in n for n in built["notes"])


def test_a_config_class_from_another_module(zoo: dict, zoo_package: object) -> None:
    from models.configs import LlamaConfig  # type: ignore[import-not-found]
    from models.llama import Llama  # type: ignore[import-not-found]

    built = model(zoo, "Llama")
    assert built["error"] is None, built["error"]
    assert built["ctor"] == "Llama(config=LlamaConfig())"
    assert built["total_params"] == count(Llama(LlamaConfig()))


def test_inherited_signatures_are_notes_and_instances_give_figures(zoo: dict) -> None:
    for name, missing, params_each in (
        ("LayerNorm", "normalized_shape", 2 * 64),
        ("ScaledLinear", "in_features, out_features", 64 * 64 + 64 + 1),
    ):
        found = model(zoo, name)
        assert found["error"]["kind"] == "needs-args", found["error"]
        assert found["error"]["message"].endswith(missing)
        assert [(i["model"], i["params"]) for i in found["instances"]] == [("Llama", params_each)]
    block = model(zoo, "BasicBlock")
    assert {i["model"] for i in block["instances"]} == {
        "ResNet",
        "ResNet18",
        "ResNet34",
        "resnet_tiny",
    }
    assert sum(i["count"] for i in block["instances"] if i["model"] == "ResNet") == 4
    assert sum(i["count"] for i in block["instances"] if i["model"] == "ResNet34") == 7


def test_class_lenses_show_instances_and_configurations_in_annotate() -> None:
    result = run_cli("annotate", str(FIXTURES / "zoo/models/layers.py"))
    assert result.returncode == 0, result.stderr
    assert "# ScaledLinear · 4,161 each · 2 in Llama" in result.stdout
    assert "needs constructor arguments" not in result.stderr  # measured: no note needed
    resnet = run_cli("annotate", str(FIXTURES / "zoo/models/resnet.py"))
    assert "# ResNet18 → ResNet: 676,682 params" in resnet.stdout
    assert "# ResNet: 676,682 params" in resnet.stdout
    assert (
        "# BasicBlock · 73,984 each · 2 in ResNet · 2 other sizes · in 3 more models"
        in resnet.stdout
    )


def test_a_training_script_at_import_defines_its_names_and_runs_no_job(tmp_path: Path) -> None:
    workspace = tmp_path / "zoo"
    shutil.copytree(FIXTURES / "zoo", workspace)
    (workspace / "train.py").write_text(
        (workspace / "train.py").read_text()
        + "\n\nclass Probe(torch.nn.Module):\n"
        + "    def __init__(self):\n"
        + "        super().__init__()\n"
        + "        self.head = torch.nn.Linear(args.epochs, 2)  # needs `args` from parse_args()\n"
        + "        self.on = torch.nn.Linear(2, 2) if use_accel or device else None\n"
    )
    doc = summary_json(str(workspace / "train.py"))
    probe = model(doc, "Probe")
    assert probe["error"] is None, probe["error"]
    assert probe["total_params"] == (10 * 2 + 2) + (2 * 2 + 2)
    assert not (workspace / "train.log").exists()  # the `with` block and its loop never ran


def test_a_failed_module_statement_is_named_where_its_name_is_used(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "from torchvision_that_is_not_installed import transforms\n"
        "WIDTH = 8\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(WIDTH, 2)\n"
        "class UsesIt(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.t = transforms.Resize(3)\n"
    )
    doc = summary_json(str(tmp_path / "net.py"))
    assert model(doc, "Net")["total_params"] == 8 * 2 + 2  # the file was not sunk
    error = model(doc, "UsesIt")["error"]
    assert error["line"] == 12  # the user's line that used the name
    assert "transforms is unavailable" in error["message"]
    assert "net.py:3" in error["message"]  # and the line whose statement failed
    assert "No module named 'torchvision_that_is_not_installed'" in error["message"]


REALCODE = FIXTURES / "realcode/torchvision/models"


def published_counts(path: Path) -> dict[str, int]:
    """Each factory's parameter count as torchvision publishes it in its weights' metadata
    (``"num_params": 11689512``), found through the factory's ``@handle_legacy_interface``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    by_weights: dict[str, int] = {}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name.endswith("_Weights"):
            for node in ast.walk(cls):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values):
                        if isinstance(key, ast.Constant) and key.value == "num_params":
                            assert isinstance(value, ast.Constant)
                            by_weights.setdefault(cls.name, value.value)
    counts = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            for deco in fn.decorator_list:
                for node in ast.walk(deco):
                    if isinstance(node, ast.Name) and node.id in by_weights:
                        counts[fn.name] = by_weights[node.id]
    return counts


@pytest.mark.parametrize("name", ["resnet.py", "vgg.py", "alexnet.py", "squeezenet.py"])
def test_a_slice_of_torchvision_builds_every_published_model_exactly(name: str) -> None:
    expected = published_counts(REALCODE / name)
    assert expected, name  # the fixture has the factories it should
    doc = summary_json(str(REALCODE / name))
    built = {m["name"]: m for m in doc["models"] if m["kind"] == "factory"}
    assert {n: built[n]["total_params"] for n in expected} == expected
    for m in doc["models"]:  # every class: built, or measured inside a model
        assert (
            m["error"] is None
            or m["instances"]
            or any(f["model_class"] == m["model_class"] for f in built.values())
        ), (m["name"], m["error"])


def test_classes_whose_arguments_are_all_sizes_are_built_with_labelled_examples(
    zoo_package: object,
) -> None:
    from models.vit import ViT  # type: ignore[import-not-found]

    doc = summary_json(str(FIXTURES / "zoo/models/vit.py"))
    vit = model(doc, "ViT")
    assert vit["error"] is None and vit["example"] is True, vit["error"]
    args = "image_size=32, patch_size=8, num_classes=10, dim=32, depth=2, heads=4, mlp_dim=32"
    assert vit["ctor"] == f"ViT({args})"
    built = ViT(image_size=32, patch_size=8, num_classes=10, dim=32, depth=2, heads=4, mlp_dim=32)
    assert vit["total_params"] == count(built)  # exact for those arguments
    assert any("example arguments" in note for note in vit["notes"])
    # a parameter that is no size (a backbone) is never guessed
    weird = model(doc, "Weird")
    assert weird["error"]["kind"] == "needs-args" and weird["example"] is False
    shown = run_cli("annotate", str(FIXTURES / "zoo/models/vit.py")).stdout
    assert f"· with example arguments {args}" in shown


def test_package_data_read_at_import_with_pkgutil(tmp_path: Path) -> None:
    # timm's *_pruned models read their channel lists with pkgutil.get_data at import
    (tmp_path / "pyproject.toml").write_text("")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "widths.txt").write_text("24\n")
    (package / "net.py").write_text(
        "import pkgutil\nfrom torch import nn\n"
        "WIDTH = int(pkgutil.get_data(__name__, 'widths.txt').decode())\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(WIDTH, 2)\n"
    )
    net = model(summary_json(str(package / "net.py")), "Net")
    assert net["error"] is None, net["error"]
    assert net["total_params"] == 24 * 2 + 2


def test_layers_imported_through_a_re_exporting_package_get_their_models_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``from netpkg.layers import GluMlp`` imports ``layers/__init__.py``, not ``mlp.py``:
    the models that build the layer that way measure it all the same (timm's layers)."""
    monkeypatch.syspath_prepend(str(FIXTURES / "reexport"))
    from netpkg.layers import GluMlp, ScaleNorm  # type: ignore[import-not-found]

    env = {"PARAMLENS_CACHE_DIR": str(tmp_path / "cache")}
    layers = FIXTURES / "reexport/netpkg/layers"
    result = run_cli("summary", str(layers / "mlp.py"), "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    glu = model(json.loads(result.stdout), "GluMlp")
    assert glu["example"] is True  # alone, it needs its sizes: the instances are the news
    assert sorted((i["model"], i["count"], i["params"]) for i in glu["instances"]) == [
        ("GluHead", 1, count(GluMlp(16, 16))),
        ("MixerNet", 2, count(GluMlp(48, 4 * 48))),
    ]
    annotated = run_cli("annotate", str(layers / "norm.py"), env=env)
    assert f"# ScaleNorm · {count(ScaleNorm(48))} each · 1 in MixerNet" in annotated.stdout
