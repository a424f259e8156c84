"""Finding nn.Module subclasses and their constructors without running anything."""

from pathlib import Path

import pytest
from paramlens.analysis.libraries import Libraries
from paramlens.analysis.workspace import ScanCache, scan
from paramlens.config import Settings
from paramlens.engine.constructors import constructor


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_every_import_style_and_subclasses_across_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.py": "from torch import nn\nclass A(nn.Module): pass\n",
            "b.py": "import torch.nn as tnn\nclass B(tnn.Module): pass\n",
            "c.py": "import torch\nclass C(torch.nn.Module): pass\n",
            "d.py": "from torch.nn import Module\nclass D(Module): pass\n",
            "e.py": (
                "from torch import nn\nclass E(nn.Sequential): ...\n"
                "class NotOne(nn.Parameter): ...\n"
            ),
            "pkg/__init__.py": "from .base import Base\n",
            "pkg/base.py": "import torch\nclass Base(torch.nn.Module): pass\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep.py": "from .. import Base\nclass Deep(Base): pass\nclass Plain: pass\n",
            "user.py": "from pkg.sub.deep import Deep\nclass Deeper(Deep): ...\nclass Other: ...\n",
        },
    )
    workspace = scan(tmp_path)
    names = {q.rpartition(".")[2] for q in workspace.module_classes}
    assert names == {"A", "B", "C", "D", "E", "Base", "Deep", "Deeper"}
    assert workspace.files[str(tmp_path / "pkg/sub/deep.py")].module == "pkg.sub.deep"
    assert str(tmp_path / "pkg/base.py") in workspace.imported_files(str(tmp_path / "user.py"))


def test_a_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"bad.py": "from torch import nn\n\nclass A(nn.Module:\n    pass\n"})
    info = scan(tmp_path).files[str(tmp_path / "bad.py")]
    assert info.syntax_error is not None
    assert info.syntax_error[1] == 3


CTORS = """
from dataclasses import dataclass
from torch import nn
WIDTH = 16

@dataclass
class NetConfig:
    width: int = 8

class Defaults(nn.Module):
    def __init__(self, width=3, *, depth=2): super().__init__()

class Inherits(Defaults):
    pass

class ByAnnotation(nn.Module):
    def __init__(self, cfg: NetConfig): super().__init__()

class ByName(nn.Module):
    def __init__(self, config): super().__init__()

class ByCallSite(nn.Module):
    def __init__(self, width, depth): super().__init__()

class FromPyproject(nn.Module):
    def __init__(self, width): super().__init__()

class Missing(nn.Module):
    def __init__(self, tokenizer, *, width): super().__init__()

net = ByCallSite(WIDTH * 2, depth=3)
other = Missing(get_tokenizer(), width=3)
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Defaults", "Defaults()"),
        ("Inherits", "Inherits()"),
        ("ByAnnotation", "ByAnnotation(cfg=NetConfig())"),
        ("ByName", "ByName(config=NetConfig())"),
        ("ByCallSite", "ByCallSite(32, depth=3)"),
        ("FromPyproject", "FromPyproject(width=5)"),
        # a script's own model: tried first, the note kept for when it fails
        ("Missing", "Missing(get_tokenizer(), width=3)"),
    ],
)
def test_constructor_arguments_in_order(tmp_path: Path, name: str, expected: str | None) -> None:
    write(tmp_path, {"m.py": CTORS})
    workspace = scan(tmp_path)
    cls = workspace.files[str(tmp_path / "m.py")].classes[name]
    settings = Settings(
        models={"FromPyproject": "FromPyproject(width=5)", "Defaults": "Defaults()"}
    )
    spec = constructor(cls, workspace, settings)
    assert spec.ctor == expected
    if name == "Missing":
        assert spec.missing_args == ("tokenizer", "width")
        assert 'Missing = "Missing(tokenizer=..., width=...)"' in spec.fix_hint
        assert "[tool.paramlens.models]" in spec.fix_hint


def test_an_init_without_parameters_is_not_the_parents(tmp_path: Path) -> None:
    # fixtures/gpt/xl.py: class GPT2XL(GPT) with def __init__(self) calling GPT's with a config
    write(
        tmp_path,
        {
            "m.py": """
from torch import nn

class Config:
    pass

class GPT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()

class GPT2XL(GPT):
    def __init__(self):
        super().__init__(Config())
""",
        },
    )
    workspace = scan(tmp_path)
    cls = workspace.files[str(tmp_path / "m.py")].classes["GPT2XL"]
    assert constructor(cls, workspace, Settings()).ctor == "GPT2XL()"


def test_example_values_only_for_parameters_named_like_sizes() -> None:
    from paramlens.analysis.example_args import example_value

    assert example_value("dim", None) == "32"
    assert example_value("num_heads", "int") == "4"
    assert example_value("image_size", None) == "32"
    assert example_value("depth", None) == "2"
    assert example_value("in_channels", None) == "3"
    assert example_value("spatial_dims", "int") == "2"  # not a width, though it ends in _dims
    assert example_value("channels", "Sequence") == "(16, 32)"  # monai: Sequence[int]
    assert example_value("in_channels", None, "wide") == "64"  # GroupNorm(32, ...) accepts it
    assert example_value("use_pair", "bool") == "False"
    assert example_value("norm_name", "tuple") == '"batch"'  # monai: tuple | str
    assert example_value("norm_name", "nn.Module") is None
    assert example_value("num_vision_layers", "int") == "2"
    assert example_value("backbone", None) is None
    assert example_value("dim", "torch.Tensor") is None  # an annotation that is not a size
    assert example_value("config", None) is None
    assert example_value("num_classes", "Sequence") is None  # no sequence to guess


def test_example_arguments_small_then_wide_and_never_pretrained_weights(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "m.py": """
from typing import Optional, Sequence, Union
from torch import nn

class Configured:
    pass

class Other:
    pass

class Blocks(nn.Module):
    def __init__(self, spatial_dims: int, channels: Sequence[int], dim_out, *, act: bool):
        super().__init__()

class Either(nn.Module):
    def __init__(self, config: "Union[Configured, Other]", width: Optional[int]):
        super().__init__()

class Backboned(nn.Module):
    def __init__(self, encoder_weights="imagenet", pretrained=True, depth=3):
        super().__init__()
""",
        },
    )
    workspace = scan(tmp_path)
    classes = workspace.files[str(tmp_path / "m.py")].classes
    spec = constructor(classes["Blocks"], workspace, Settings())
    assert spec.ctor == "Blocks(spatial_dims=2, channels=(16, 32), dim_out=32, act=False)"
    assert spec.alternatives == (
        "Blocks(spatial_dims=2, channels=(64, 128), dim_out=64, act=False)",
    )
    either = constructor(classes["Either"], workspace, Settings())
    assert either.ctor == "Either(config=Configured(), width=32)"  # a union's first member
    backboned = constructor(classes["Backboned"], workspace, Settings())
    assert backboned.ctor == "Backboned(pretrained=False, encoder_weights=None)"
    assert backboned.ctor_source == "default arguments"


def test_an_imported_config_class_the_most_derived_one_named_config(tmp_path: Path) -> None:
    # transformers: configs in their own module, a base config, a TypedDict of kwargs
    write(
        tmp_path,
        {
            "configuration_utils.py": "class PreTrainedConfig:\n    def __init__(self, **kw): pass\n",
            "utils.py": "from typing import TypedDict\nclass TransformersKwargs(TypedDict, total=False):\n    x: int\n",
            "configuration_llama.py": (
                "from configuration_utils import PreTrainedConfig\n"
                "class LlamaConfig(PreTrainedConfig):\n    def __init__(self, hidden_size=64): pass\n"
            ),
            "modeling_llama.py": (
                "from torch import nn\n"
                "from configuration_utils import PreTrainedConfig\n"
                "from configuration_llama import LlamaConfig\n"
                "from utils import TransformersKwargs\n"
                "class LlamaMLP(nn.Module):\n    def __init__(self, config): super().__init__()\n"
                "class LlamaAttention(nn.Module):\n"
                "    def __init__(self, config: LlamaConfig, layer_idx): super().__init__()\n"
            ),
        },
    )
    workspace = scan(tmp_path)
    classes = workspace.files[str(tmp_path / "modeling_llama.py")].classes
    mlp = constructor(classes["LlamaMLP"], workspace, Settings())
    assert (mlp.ctor, mlp.ctor_source) == ("LlamaMLP(config=LlamaConfig())", "config class")
    assert mlp.refs == (("LlamaConfig", "configuration_llama.LlamaConfig"),)
    attention = constructor(classes["LlamaAttention"], workspace, Settings())
    assert attention.ctor == "LlamaAttention(config=LlamaConfig(), layer_idx=0)"
    assert attention.ctor_source == "example arguments"


def test_a_dataclass_with_required_fields_is_no_config(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "m.py": (
                "from dataclasses import dataclass\nfrom torch import nn\n"
                "@dataclass\nclass ByoModelCfg:\n    blocks: tuple\n    width: int = 2\n"
                "class ByobNet(nn.Module):\n"
                "    def __init__(self, cfg: ByoModelCfg): super().__init__()\n"
            )
        },
    )
    workspace = scan(tmp_path)
    spec = constructor(
        workspace.files[str(tmp_path / "m.py")].classes["ByobNet"], workspace, Settings()
    )
    assert spec.ctor is None and spec.missing_args == ("cfg",)


def test_only_the_importers_that_use_most_missing_classes_are_built(tmp_path: Path) -> None:
    from paramlens.engine.engine import MAX_DEPENDENTS, dependents_to_build

    files = {
        "blocks.py": "from torch import nn\nclass Block(nn.Module): pass\nclass Norm(nn.Module): pass\n"
    }
    for i in range(6):  # six models import the blocks; two use both missing classes
        uses = "Block, Norm" if i in (2, 4) else "Block"
        files[f"model{i}.py"] = (
            f"from torch import nn\nfrom blocks import {uses}\nclass Model{i}(nn.Module): pass\n"
        )
    files["helpers.py"] = "from blocks import Block\n"  # no model: nothing to build there
    write(tmp_path, files)
    workspace = scan(tmp_path)
    chosen = dependents_to_build([str(tmp_path / "blocks.py")], workspace, {"Block", "Norm"}, True)
    assert len(chosen) == MAX_DEPENDENTS
    assert chosen[:2] == [str(tmp_path / "model2.py"), str(tmp_path / "model4.py")]
    assert str(tmp_path / "helpers.py") not in chosen
    assert dependents_to_build([str(tmp_path / "blocks.py")], workspace, set(), True) == []


def test_users_through_a_re_exporting_package_are_built_the_cheapest_first(
    tmp_path: Path,
) -> None:
    from paramlens.engine.engine import dependents_to_build

    def models(uses: str, count: int) -> str:
        classes = "".join(f"class M{i}(nn.Module): pass\n" for i in range(count))
        return f"from torch import nn\nfrom pkg.layers import {uses}\n{classes}"

    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/layers/__init__.py": "from .blocks import Block, Norm, Gate\n",
            "pkg/layers/blocks.py": "from torch import nn\n"
            + "".join(f"class {c}(nn.Module): pass\n" for c in ("Block", "Norm", "Gate")),
            "pkg/models/__init__.py": "",
            "pkg/models/big.py": models("Block, Norm", 12),
            "pkg/models/big2.py": models("Block, Norm", 12),
            "pkg/models/small.py": models("Block, Norm", 4),  # as many names, fewer models
            "pkg/models/gate.py": models("Gate", 4),  # the name the others leave out
            "pkg/models/other.py": models("Block", 1),
        },
    )
    workspace = scan(tmp_path)
    blocks = str(tmp_path / "pkg/layers/blocks.py")
    assert workspace.importers(blocks) == [str(tmp_path / "pkg/layers/__init__.py")]
    assert len(workspace.users(blocks)) == 6  # the package's __init__ and five models
    chosen = dependents_to_build([blocks], workspace, {"Block", "Norm", "Gate"}, True)
    assert [Path(p).name for p in chosen] == ["small.py", "big.py", "gate.py"]


def test_users_one_level_up_are_chosen_among_all_the_files_holding_the_block(
    tmp_path: Path,
) -> None:
    """MONAI's ``SABlock`` is held by ``SpatialAttentionBlock`` (whose users build it with
    example sizes too) and by ``TransformerBlock`` (which ``vit.py`` builds): the users of
    both files compete for the few builds, the files already built are skipped."""
    from paramlens.engine.engine import MAX_DEPENDENTS, dependents_to_build

    def user(module: str, name: str, count: int) -> str:
        classes = "".join(f"class {name}{i}(nn.Module): pass\n" for i in range(count))
        return f"from torch import nn\nfrom {module} import {name}\n{classes}"

    files = {
        "spatial.py": "from torch import nn\nclass Spatial(nn.Module): pass\n",
        "transformer.py": "from torch import nn\nclass Transformer(nn.Module): pass\n",
        "vit.py": user("transformer", "Transformer", 2),
        "built.py": user("transformer", "Transformer", 1),  # built already, one level down
    }
    files |= {f"diffusion{i}.py": user("spatial", "Spatial", 1) for i in range(4)}
    write(tmp_path, files)
    workspace = scan(tmp_path)
    carriers = [str(tmp_path / "spatial.py"), str(tmp_path / "transformer.py")]
    skip = {str(tmp_path / "built.py")}
    chosen = dependents_to_build(carriers, workspace, {"Spatial", "Transformer"}, True, skip=skip)
    assert len(chosen) == MAX_DEPENDENTS
    assert str(tmp_path / "vit.py") in chosen  # it names the block the others do not
    assert not skip & set(chosen)


def test_a_buffer_equal_to_the_persisted_file_is_not_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("class A:\n    pass\n")
    cache: ScanCache = {}
    scan(tmp_path, None, cache)
    # as the scan store persists it: the digest, not the text
    persisted: ScanCache = {p: (k, "", info.without_text()) for p, (k, _, info) in cache.items()}
    reused = scan(tmp_path, {str(path): path.read_text()}, persisted).files[str(path)]
    assert reused is persisted[str(path)][2] and reused.text == path.read_text()
    edited = scan(tmp_path, {str(path): "class B:\n    pass\n"}, persisted).files[str(path)]
    assert edited is not reused and "B" in edited.classes


def test_models_on_installed_libraries_bases_are_found(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "import lightning as L\n"
        "import pytorch_lightning as pl\n"
        "from diffusers import ModelMixin\n"
        "from transformers import PreTrainedModel\n"
        "from somewhere import Thing\n\n\n"
        "class Lit(L.LightningModule):\n    pass\n\n\n"
        "class OldLit(pl.LightningModule):\n    pass\n\n\n"
        "class Unet(ModelMixin):\n    pass\n\n\n"
        "class HF(PreTrainedModel):\n    pass\n\n\n"
        "class Deeper(HF):\n    pass\n\n\n"
        "class NotAModel(Thing):\n    pass\n"
    )
    found = [c.name for c in scan(tmp_path).models_in(str(tmp_path / "m.py"))]
    assert found == ["Lit", "OldLit", "Unet", "HF", "Deeper"]


def _stand_in_library(site: Path) -> None:
    """``visionlib``, laid out as installed libraries are: a package re-exporting with a
    star import, a subpackage re-exporting by name, an alias, and a model two bases deep."""
    package = site / "visionlib"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("from .models import *\nfrom .config import Config\n")
    (package / "config.py").write_text("class Config:\n    depth = 2\n")
    (package / "models" / "__init__.py").write_text("from .resnet import ResNet as ResNet, Plain\n")
    (package / "models" / "resnet.py").write_text(
        "import torch.nn as nn\n\n\n"
        "class _Base(nn.Module):\n    pass\n\n\n"
        "class ResNet(_Base):\n"
        "    def __init__(self, width: int = 4):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(width, 2)\n\n\n"
        "class Plain:\n    pass\n\n\n"
        "Net = ResNet\n"
    )


def test_models_on_any_installed_librarys_models_are_found(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _stand_in_library(site)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "m.py").write_text(
        "import visionlib\n"
        "from visionlib.models import ResNet\n"
        "from visionlib.models.resnet import Net, Plain\n"
        "from enum import Enum\n\n\n"
        "class Mine(ResNet):\n    pass\n\n\n"
        "class ByPackage(visionlib.ResNet):\n    pass\n\n\n"
        "class ByAlias(Net):\n    pass\n\n\n"
        "class Settings(visionlib.Config):\n    pass\n\n\n"
        "class NotAModel(Plain):\n    pass\n\n\n"
        "class Missing(visionlib.Nowhere):\n    pass\n\n\n"
        "class Kind(Enum):\n    A = 1\n"
    )
    asked: list[int] = []

    def paths() -> list[str]:
        asked.append(1)
        return [str(site)]

    libraries = Libraries(paths)
    found = [c.name for c in scan(root, libraries=libraries).models_in(str(root / "m.py"))]
    assert found == ["Mine", "ByPackage", "ByAlias"]
    assert asked == [1]  # the interpreter is asked once, and only if a base is not known
    # without the installed library, none of them is a model (as before)
    assert scan(root).models_in(str(root / "m.py")) == []


def test_a_workspace_that_is_the_library_is_not_read_from_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _stand_in_library(site)
    root = tmp_path / "ws"
    (root / "visionlib").mkdir(parents=True)
    (root / "visionlib" / "__init__.py").write_text("")
    (root / "visionlib" / "head.py").write_text(
        "from visionlib.models import ResNet\n\n\nclass Head(ResNet):\n    pass\n"
    )
    asked: list[int] = []
    libraries = Libraries(lambda: asked.append(1) or [str(site)])
    assert scan(root, libraries=libraries).module_classes == set()
    assert asked == []


def test_a_function_that_returns_the_model_it_assigned_is_a_factory(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "nets.py": (
                "from torch import nn\n"
                "class Net(nn.Module):\n"
                "    def __init__(self, head, dim=8): ...\n"
                "class Head(nn.Module):\n"
                "    def __init__(self, dim): ...\n"
                "def net_small(dim: int = 48):\n"  # MONAI's vista3d132
                '    """A small one."""\n'
                "    head = Head(dim)\n"
                "    model = Net(head=head, dim=dim)\n"
                "    return model\n"
                "def main():\n"  # a script's: trains what it returns
                "    model = Net(Head(8))\n"
                "    for _ in range(10):\n"
                "        model.train()\n"
                "    return model\n"
                "def assigned_twice():\n"
                "    model = Net(Head(8))\n"
                "    model = model.half()\n"
                "    return model\n"
            ),
        },
    )
    workspace = scan(tmp_path)
    factories = workspace.factories_in(str(tmp_path / "nets.py"))
    assert [(f.name, f.returns) for f in factories] == [("net_small", ("nets.Net",))]
