"""Issue 20: models built with the arguments their projects give them (a config method, a
script's module-level model with its argparse defaults, Hydra and LightningCLI YAML), each
saying where its arguments came from. Ground truth is plain torch in this process."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import FIXTURES, count, model, run_cli, summary_json

REAL = FIXTURES / "realargs"


def plain(relative: str) -> object:
    """A fixture module imported the plain way (the fixture root on sys.path)."""
    sys.path.insert(0, str(REAL))
    try:
        name = "realargs_" + relative.replace("/", "_").removesuffix(".py")
        spec = importlib.util.spec_from_file_location(name, REAL / relative)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REAL))


def test_config_methods_build_with_the_projects_defaults() -> None:
    doc = summary_json(str(REAL / "configmethod.py"))
    m = plain("configmethod.py")
    with torch.device("meta"):
        # the open fields from the place that sets them (from_vocabulary), its preset too
        char = model(doc, "CharModel")
        assert char["error"] is None and char["example"] is False
        assert char["source_kind"] == "config method"
        assert char["source"] == (
            "CharModel.get_default_config(), vocab_size=65, block_size=128, "
            "model_type='small' as set at configmethod.py:47"
        )
        assert char["total_params"] == count(m.CharModel.from_vocabulary("abc")) == 99_072
        # nobody sets num_classes: an example size by its name, and labelled so
        mixer = model(doc, "Mixer")
        assert mixer["example"] is True
        assert mixer["source"] == "Mixer.default_config(), example num_classes=10"
        assert mixer["total_params"] == count(m.Mixer({"width": 32, "num_classes": 10}))
        # a classmethod that returns the class itself
        encoder = model(doc, "Encoder")
        assert encoder["ctor"] == "Encoder.from_config()"
        assert encoder["total_params"] == count(m.Encoder.from_config()) == 7_056


def test_config_method_on_the_lens_line() -> None:
    result = run_cli("annotate", str(REAL / "configmethod.py"))
    assert result.returncode == 0, result.stderr
    assert (
        "# Mixer: 1,386 params · 1,386 trainable · 0 non-trainable · 0 buffer values"
        " · 5.4 KB (float32) · from Mixer.default_config(), example num_classes=10"
    ) in result.stdout


def test_a_scripts_module_level_model_with_its_argparse_defaults() -> None:
    doc = summary_json(str(REAL / "gan.py"))
    generator = model(doc, "Generator")
    assert generator["error"] is None, generator["error"]
    assert (generator["source_kind"], generator["source"]) == ("script", "gan.py:50")
    assert generator["ctor"] == "Generator(ngpu)"
    # nz=64, ngf=32 from the defaults; nc=3: --dataset is required, "faces" is the first
    # value the script compares it with, and the failing dataset line does not take nc
    expected = nn.Sequential(
        nn.ConvTranspose2d(64, 64, 4, 1, 0, bias=False),
        nn.BatchNorm2d(64),
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
    )
    assert generator["total_params"] == count(expected) == 68_736


def test_a_model_built_by_another_files_script() -> None:
    doc = summary_json(str(REAL / "tagger.py"))
    tagger = model(doc, "Tagger")
    assert (tagger["source_kind"], tagger["source"]) == ("script", "train_tagger.py:13")
    m = plain("tagger.py")
    assert tagger["total_params"] == count(m.Tagger(5000, 128, 17)) == 774_289
    result = run_cli("annotate", str(REAL / "tagger.py"))
    assert "· as built at train_tagger.py:13 ·" in result.stdout


def test_a_scripts_model_that_fails_keeps_the_note(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens]\n")
    (tmp_path / "m.py").write_text(
        "from torch import nn\n"
        "class Wrapper(nn.Module):\n"
        "    def __init__(self, tokenizer):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(tokenizer.size, 2)\n"
        "net = Wrapper(load_tokenizer())\n"
    )
    doc = summary_json(str(tmp_path / "m.py"))
    error = model(doc, "Wrapper")["error"]
    assert error["kind"] == "needs-args"
    assert error["message"].startswith(
        "Wrapper needs constructor arguments: tokenizer (the model built at m.py:6 failed:"
    )


DENSE = "src/models/components/dense_net.py"


def test_hydra_and_lightning_configs_are_constructors() -> None:
    doc = summary_json(str(REAL / DENSE))
    dense = plain(DENSE).DenseNet  # type: ignore[attr-defined]
    configs = {m["name"]: m for m in doc["models"] if m["kind"] == "config"}
    expected = {
        # ${data.image_size} and ${data.num_classes} from configs/data/digits.yaml
        "model/mnist.yaml (net)": ("configs/model/mnist.yaml:9", dense(28, 64, 10)),
        # its defaults list takes model/mnist.yaml and changes two sizes
        "model/deep.yaml (net)": ("configs/model/deep.yaml:5", dense(28, 128, 10, depth=4)),
        # an experiment: # @package _global_, override /model: mnist, then its own sizes
        "experiment/wide.yaml (model.net)": ("configs/experiment/wide.yaml:8", dense(28, 512, 10)),
        # LightningCLI: class_path and init_args
        "lightning/config.yaml (model.net)": ("lightning/config.yaml:7", dense(784, 32, 10)),
    }
    assert set(configs) == set(expected)
    for name, (source, built) in expected.items():
        config = configs[name]
        assert config["error"] is None, config["error"]
        assert (config["source_kind"], config["source"]) == ("config file", source)
        assert config["total_params"] == count(built), name
        assert config["model_class"] == "src.models.components.dense_net.DenseNet"
    # the class itself needs arguments: its lens lists the configs, not a note
    assert model(doc, "DenseNet")["error"]["kind"] == "needs-args"


def test_nested_targets_and_partials_build_the_wrapper() -> None:
    doc = summary_json(str(REAL / "src/models/classifier.py"))
    mnist = model(doc, "model/mnist.yaml")
    assert mnist["error"] is None, mnist["error"]
    assert mnist["ctor"] == (
        "Classifier(optimizer=partial(Adam, lr=0.001), "
        "net=DenseNet(input_size=28, hidden=64, output_size=10), compile=False)"
    )
    assert mnist["total_params"] == 6_666  # the net's: the wrapper has none of its own
    cli = model(doc, "lightning/config.yaml (model)")
    assert cli["total_params"] == 26_506 and cli["source"] == "lightning/config.yaml:4"


def test_the_class_lens_lists_its_configs() -> None:
    result = run_cli("annotate", str(REAL / DENSE))
    assert result.returncode == 0, result.stderr
    assert (
        "# DenseNet · experiment/wide.yaml (model.net) 282,634 · model/deep.yaml (net) 54,538"
        " · model/mnist.yaml (net) 6,666 · +1 more"
    ) in result.stdout


def test_a_malformed_yaml_is_reported_on_its_line_and_costs_nothing(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(REAL, workspace)
    (workspace / "configs/model/broken.yaml").write_text(
        "_target_: src.models.components.dense_net.DenseNet\n"
        "input_size: 784\n"
        "  hidden: 64\n"
        "output_size: 10\n"
    )
    result = run_cli("annotate", str(workspace / DENSE), cwd=workspace)
    assert (
        "configs/model/broken.yaml:3: model/broken.yaml: YAML error: "
        "mapping values are not allowed here"
    ) in result.stderr
    assert result.returncode == 1
    assert "model/mnist.yaml (net) 6,666" in result.stdout  # the other configs still build
    doc = summary_json(str(workspace / DENSE))
    broken = model(doc, "model/broken.yaml")
    assert broken["error"]["kind"] == "syntax" and broken["error"]["line"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "_target_: src.models.components.dense_net.DenseNet\nhidden: ${nowhere.size}\n",
            "no such key",
        ),
        ("_target_: src.models.components.dense_net.DenseNet\nhidden: ???\n", "mandatory value"),
    ],
)
def test_values_that_do_not_resolve(tmp_path: Path, text: str, message: str) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(REAL, workspace)
    (workspace / "configs/model/odd.yaml").write_text(text)
    doc = summary_json(str(workspace / DENSE))
    odd = model(doc, "model/odd.yaml")
    assert message in odd["error"]["message"] and odd["error"]["line"] == 2
    assert model(doc, "model/mnist.yaml (net)")["error"] is None


def test_a_hugging_face_config_json_beside_its_modeling_file(tmp_path: Path) -> None:
    doc = summary_json(str(REAL / "hub/tiny/modeling_tiny.py"))
    config = model(doc, "hub/tiny/config.json")
    assert config["error"] is None, config["error"]
    assert (config["kind"], config["source"]) == ("config", "hub/tiny/config.json:1")
    # built on meta from its config class with the file's fields: nothing downloaded
    vocab, hidden, layers = 30_522, 128, 4
    expected = vocab * hidden + layers * (hidden * hidden + hidden) + hidden * vocab + vocab
    assert config["total_params"] == expected == 7_910_202
    # a config.json that does not parse: an error at its line, the class unaffected
    workspace = tmp_path / "ws"
    shutil.copytree(REAL, workspace)
    (workspace / "hub/tiny/config.json").write_text('{\n  "vocab_size": 10,\n  oops\n}\n')
    doc = summary_json(str(workspace / "hub/tiny/modeling_tiny.py"))
    broken = model(doc, "hub/tiny/config.json")
    assert broken["error"]["kind"] == "syntax" and broken["error"]["line"] == 3
    assert broken["error"]["message"].startswith("JSON error at line 3")
    assert model(doc, "TinyForMaskedLM")["error"] is None


AMBIGUOUS = FIXTURES / "ambiguous"


def test_a_bare_class_name_that_several_classes_answer_to(tmp_path: Path) -> None:
    """Item 5: ``MLP`` in [tool.paramlens.models] and .inputs, with an MLP of the project's
    own and nanoGPT's: applied to neither (nanoGPT's used to get the other's arguments and
    input), and said so at each key's line with the ``path::Class`` spelling that picks."""
    result = run_cli("summary", str(AMBIGUOUS / "nanogpt/model.py"), "--format", "json")
    assert result.returncode == 0, result.stderr
    gpt_mlp = model(json.loads(result.stdout), "MLP")
    assert gpt_mlp["error"] is None, gpt_mlp["error"]
    assert gpt_mlp["source_kind"] == "example" and gpt_mlp["ctor"] == "MLP(n_embd=32)"
    assert gpt_mlp["forward"]["error"] is None  # not fed the other MLP's [2, 784]
    names = "(mine.py::MLP, nanogpt/model.py::MLP)"
    assert result.stderr.splitlines() == [
        f'fixtures/ambiguous/pyproject.toml:{line}: warning: "MLP" in [tool.paramlens.{table}]'
        f" names 2 classes {names} and is applied to none: to pick one, key it by"
        ' "path.py::Class", e.g. "mine.py::MLP"'
        for line, table in ((8, "models"), (11, "inputs"))
    ]
    own = model(summary_json(str(AMBIGUOUS / "mine.py")), "MLP")
    assert own["source_kind"] == "example"  # nor the project's own
    # a path::Class key picks one; the bare name then means the one left
    workspace = tmp_path / "ws"
    shutil.copytree(AMBIGUOUS, workspace)
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'MLP = "MLP(hidden=64)"', 'MLP = "MLP(hidden=64)"\n"nanogpt/model.py::MLP" = "MLP(48)"'
        )
    )
    picked = run_cli("summary", str(workspace), "--format", "json")
    assert picked.returncode == 0, picked.stderr
    assert "pyproject.toml:12: warning" in picked.stderr  # the inputs' MLP is still ambiguous
    assert "[tool.paramlens.models]" not in picked.stderr
    mlps = {m["file"]: m for m in json.loads(picked.stdout)["models"] if m["name"] == "MLP"}
    mine, gpt = mlps[str(workspace / "mine.py")], mlps[str(workspace / "nanogpt/model.py")]
    assert (mine["ctor"], mine["total_params"]) == ("MLP(hidden=64)", 784 * 64 + 64 + 64 * 10 + 10)
    assert (gpt["ctor"], gpt["total_params"]) == ("MLP(48)", 2 * 48 * 4 * 48 + 4 * 48 + 48)
