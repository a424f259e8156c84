"""Notebooks on the command line: annotate by cell, summary and JSON with each line's cell,
a folder of notebooks, a notebook that imports its workspace's package, and bad input.
Golden files in tests/cli/golden/ (PARAMLENS_UPDATE_GOLDEN=1 writes them again)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import (
    FIXTURES,
    FUTURE_LATER,
    LENET_CELLS,
    golden,
    ipynb,
    model,
    run_cli,
    summary_json,
)

MNIST = "fixtures/notebooks/mnist.ipynb"


def test_annotate_prints_each_code_cell_under_its_header() -> None:
    result = run_cli("annotate", MNIST)
    assert result.returncode == 0, result.stderr
    golden("mnist.annotate.txt", result.stdout)


def test_json_gives_each_line_its_cell_and_its_line_in_the_cell() -> None:
    doc = summary_json(MNIST)
    where = {
        m["name"]: {
            "line": [m["line"], m["cell"], m["cell_line"]],
            "layers": [[e["line"], e["cell"], e["cell_line"], e["describe"]] for e in m["layers"]],
            "shapes": [
                [s["line"], s["cell"], s["cell_line"], s["name"]] for s in m["forward"]["lines"]
            ],
            "input": m["forward"]["input_source"],
        }
        for m in doc["models"]
    }
    golden("mnist.json", json.dumps(where, indent=1, ensure_ascii=False) + "\n")
    net = model(doc, "Net")
    assert (net["line"], net["cell"], net["cell_line"]) == (10, 3, 1)
    assert net["forward"]["input_source"] == "called at mnist.ipynb:In[5]:2"
    assert model(doc, "MLP")["total_params"] == 203_530  # MLP(hidden=256), in cell 5


def test_a_real_tutorials_notebook_gives_the_tutorials_own_numbers() -> None:
    # the PyTorch recipe this project grew from (../shared/seed), its code cells as a
    # notebook: a loop that freezes a layer, `import numpy`, `import torchinfo` and print()
    # cells among the classes; the recipe prints 669,706 and 1,199,882 parameters
    doc = summary_json("fixtures/notebooks/inspecting_model_parameters.ipynb")
    network, cnn = model(doc, "NeuralNetwork"), model(doc, "CNN")
    assert (network["total_params"], network["cell"], network["cell_line"]) == (669_706, 1, 4)
    assert (cnn["total_params"], cnn["cell"], cnn["cell_line"]) == (1_199_882, 9, 1)
    layers = [(e["cell"], e["cell_line"], e["params"]) for e in network["layers"]]
    assert layers == [
        (1, 7, 0),  # nn.Flatten()
        (1, 8, 669_706),  # the nn.Sequential(...)
        (1, 9, 401_920),  # nn.Linear(28 * 28, 512)
        (1, 10, 0),
        (1, 11, 262_656),
        (1, 12, 0),
        (1, 13, 5_130),  # the recipe's per-layer totals: 401,920, 262,656, 5,130
    ]
    assert network["forward"]["output_shape"] == "[1, 10]"
    assert cnn["forward"]["step"]["phase"] == "optimizer"


def test_summary_of_one_class_names_notebook_lines_by_cell() -> None:
    result = run_cli("summary", f"{MNIST}::MLP")
    assert result.returncode == 0, result.stderr
    assert "Total params: 203,530" in result.stdout
    assert "mnist.ipynb:In[4]:5" in result.stdout  # nn.Linear(784, hidden), line 5 of cell 4


def test_a_notebook_importing_its_workspace_package_and_a_folder_of_notebooks() -> None:
    doc = summary_json("fixtures/notebooks")
    names = {m["name"]: m for m in doc["models"]}
    # mnist.ipynb's, uses_package.ipynb's (and nbpkg's), and the recipe notebook's
    assert set(names) == {"Net", "MLP", "Encoder", "Head", "NeuralNetwork", "CNN"}
    assert names["Head"]["total_params"] == 50_890  # Encoder(64) from nbpkg, Linear(64, 10)
    # the package's class needs its width: the notebook's call Encoder(64) gives it
    assert names["Encoder"]["total_params"] == 50_240 and "cell" not in names["Encoder"]
    annotated = run_cli("annotate", "fixtures/notebooks")
    assert "==> fixtures/notebooks/uses_package.ipynb <==\n# In [1]\n" in annotated.stdout


def test_bad_notebooks_say_what_is_wrong_on_their_line(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "notebooks", tmp_path / "ws")
    broken = tmp_path / "ws" / "broken.ipynb"
    broken.write_text('{"cells": [\n  {"cell_type": "code",\n')
    result = run_cli("annotate", str(broken))
    assert result.returncode == 1
    assert "broken.ipynb:3: not a valid notebook (invalid JSON: Expecting" in result.stderr
    # a cell that does not compile: left out, said at its line; the others keep their figures
    cells = json.loads((tmp_path / "ws" / "mnist.ipynb").read_text())
    cells["cells"][5]["source"] = [
        "class MLP(nn.Module):\n",
        "    def __init__(self, hidden: int)\n",
    ]
    (tmp_path / "ws" / "mnist.ipynb").write_text(json.dumps(cells))
    result = run_cli("annotate", str(tmp_path / "ws" / "mnist.ipynb"))
    assert result.returncode == 1
    assert "mnist.ipynb:In[4]:2: SyntaxError: expected ':'" in result.stderr
    assert "# In [4]  (left out: SyntaxError: expected ':' at line 2)" in result.stdout
    assert "# Net: 101,770 params" in result.stdout


@pytest.mark.parametrize("target", ["annotate", "summary"])
def test_the_py_percent_format_is_plain_python(tmp_path: Path, target: str) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "cells.py").write_text(
        "# %%\nimport torch\nfrom torch import nn\n\n# %% [markdown]\n# A model\n\n"
        "# %%\nclass Tiny(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n"
    )
    result = run_cli(target, str(tmp_path / "cells.py"))
    assert result.returncode == 0, result.stderr
    assert "10" in result.stdout and "In [" not in result.stdout


# the same import first in the first cell, after a magic line (IPython's syntax left out)
FUTURE_FIRST = [
    "%matplotlib inline\nfrom __future__ import annotations\nimport torch\nfrom torch import nn\n"
    "from dataclasses import dataclass\n",
    "@dataclass\nclass Config:\n    hidden: int = 32\n",
    *FUTURE_LATER[2:],
]


@pytest.mark.parametrize("cells", [FUTURE_LATER, FUTURE_FIRST], ids=["later-cell", "first-cell"])
def test_a_future_import_applies_from_its_cell_on_as_in_a_kernel(
    tmp_path: Path, cells: list[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "nb.ipynb").write_bytes(ipynb(*cells))
    result = run_cli("annotate", str(tmp_path / "nb.ipynb"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left out" not in result.stdout
    net_cell = result.stdout.split("# In [3]\n")[1].split("# In [4]")[0].splitlines()
    assert net_cell[0].startswith("    # Net: 288 params · 288 trainable")  # above cell line 1
    assert net_cell[1] == " 1  class Net(nn.Module):"
    assert net_cell[4].startswith(" 4          self.fc = nn.Linear(8, config.hidden)")
    assert net_cell[4].endswith("# Linear(8 -> 32) 288 → [2, 32]")
    assert net_cell[7].endswith("# y: [2, 32]")


def test_a_future_import_after_other_code_in_a_percent_file_fails_as_python_does(
    tmp_path: Path,
) -> None:
    # `# %%` cells are plain Python: the file does not compile, and Python says where
    (tmp_path / "pyproject.toml").write_text("")
    cells = "".join(FUTURE_LATER[2:]).replace("Config())", "32)").replace("config.hidden", "32")
    cells = cells.replace("config: Config", "hidden: int")
    imports = "import torch\nfrom torch import nn\n\n"
    late = f"# %%\n{imports}# %%\nfrom __future__ import annotations\n\n{cells}"
    with pytest.raises(SyntaxError) as python:
        compile(late, "cells.py", "exec")
    (tmp_path / "cells.py").write_text(late)
    result = run_cli("annotate", str(tmp_path / "cells.py"))
    assert result.returncode == 1
    assert python.value.lineno == 6
    assert result.stderr.strip() == f"{tmp_path / 'cells.py'}:6: SyntaxError: {python.value.msg}"
    # first in the file, after the first cell's marker: Python is content, and so are we
    first = f"# %%\nfrom __future__ import annotations\n{imports}# %%\n{cells}"
    (tmp_path / "cells.py").write_text(first)
    result = run_cli("annotate", str(tmp_path / "cells.py"))
    assert result.returncode == 0, result.stderr
    assert "# Net: 288 params" in result.stdout


def test_a_forward_failure_names_the_declarations_cell_line(tmp_path: Path) -> None:
    # fc1 (line 7 of cell 2, the module's line 10) declares 256 inputs and receives 400
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "lenet.ipynb").write_bytes(ipynb(*LENET_CELLS))
    result = run_cli("annotate", str(tmp_path / "lenet.ipynb"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{tmp_path / 'lenet.ipynb'}:In[2]:13: LeNet: forward(): self.fc1 is Linear(256 -> 120)"
        " but receives [1, 400]: in_features should be 400 (declared at In[2]:7)"
    )
