"""The Hydra / OmegaConf subset read without Hydra: interpolations, defaults lists,
packages, targets (analysis/configs.py), on small config roots written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from paramlens.analysis.configs import (
    ConfigProblem,
    Value,
    read_configs,
    read_yaml,
    resolve,
)
from paramlens.analysis.model import Target


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def plain(value: object) -> Value:
    if isinstance(value, dict):
        return Value({k: plain(v) for k, v in value.items()}, "c.yaml", 1)
    return Value(value, "c.yaml", 7)


def test_interpolations_resolve_from_the_root() -> None:
    root = plain({"data": {"classes": 10, "name": "digits"}, "x": "${data.classes}"})
    assert resolve(plain("${data.classes}"), root) == 10  # a whole value keeps its type
    assert resolve(plain("run-${data.name}-${data.classes}"), root) == "run-digits-10"
    assert resolve(plain("${x}"), root) == 10  # through another interpolation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${nowhere}", "no such key"),
        ("${oc.env:HOME}", "resolves ${a.b} keys only"),
        ("${.sibling}", "resolves ${a.b} keys only"),
        ("???", "mandatory value"),
        ("${loop}", "refers to itself"),
    ],
)
def test_what_does_not_resolve_says_why_at_its_line(text: str, message: str) -> None:
    root = plain({"loop": "${loop}"})
    with pytest.raises(ConfigProblem) as raised:
        resolve(plain(text), root)
    assert message in raised.value.message and raised.value.line == 7


def test_defaults_lists_packages_and_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "configs/train.yaml": (
                "defaults:\n  - _self_\n  - data: small\n  - model: net\n  - logger: null\n"
                "  - optional local: default\n  - experiment: null\n"
            ),
            "configs/data/small.yaml": "classes: 7\n",
            "configs/model/net.yaml": (
                "_target_: pkg.Net\nwidth: 16\nclasses: ${data.classes}\n"
                "opt:\n  _target_: torch.optim.SGD\n  _partial_: true\n  lr: 0.1\n"
            ),
            "configs/model/wide.yaml": "defaults:\n  - net\n\nwidth: 64\n",
            "configs/experiment/big.yaml": (
                "# @package _global_\ndefaults:\n  - override /model: net\n\nmodel:\n  width: 256\n"
            ),
            "lightning.yaml": (
                "model:\n  class_path: pkg.Net\n  init_args:\n    width: 8\n    classes: 2\n"
            ),
        },
    )
    found = read_configs(tmp_path)
    assert not found.errors
    builds = {b.name: b for b in found.builds}
    net = builds["model/net.yaml"]
    assert net.build == Target(
        "pkg.Net",
        (),
        (
            ("width", 16),
            ("classes", 7),
            ("opt", Target("torch.optim.SGD", (), (("lr", 0.1),), partial=True)),
        ),
    )
    assert (Path(net.file).name, net.line) == ("net.yaml", 1)
    wide = builds["model/wide.yaml"].build
    assert wide is not None and dict(wide.kwargs)["width"] == 64
    assert dict(wide.kwargs)["classes"] == 7
    big = builds["experiment/big.yaml (model)"].build
    assert big is not None and dict(big.kwargs)["width"] == 256
    lightning = builds["lightning.yaml (model)"].build
    assert lightning == Target("pkg.Net", (), (("width", 8), ("classes", 2)))


def test_a_yaml_error_is_kept_with_its_line_and_targets(tmp_path: Path) -> None:
    write(tmp_path, {"configs/model/bad.yaml": "_target_: pkg.Net\nwidth: 3\n  depth: 2\n"})
    read = read_yaml(str(tmp_path / "configs/model/bad.yaml"))
    assert read.error is not None and read.error.line == 3
    assert read.error.targets == ("pkg.Net",)
    assert read_configs(tmp_path).errors == [read.error]
