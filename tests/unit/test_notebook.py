"""A notebook as one module (analysis/notebook.py): cells in order, IPython's syntax left out
line for line, cells that do not compile left out with their error, the (cell, line) map,
and bad input: not JSON, 2,000 cells, 50 MB of outputs."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from paramlens.analysis.notebook import (
    NotebookError,
    load_notebook,
    notebook_module,
    notebook_source,
    read_cells,
    read_notebook,
)
from paramlens.analysis.reading import module_name, read_file
from paramlens.analysis.workspace import scan

from tests.conftest import FIXTURES, ipynb


def test_code_cells_in_order_form_one_module_with_a_line_for_each_cell_line() -> None:
    notebook = read_notebook(
        ipynb(
            ("markdown", "# Title"),
            "import torch\nfrom torch import nn\n",
            ("raw", "not code"),
            ["class Net(nn.Module):\n", "    pass"],  # nbformat's list of lines
        )
    )
    assert notebook.text == "import torch\nfrom torch import nn\nclass Net(nn.Module):\n    pass\n"
    assert [(c.number, c.first_line, c.line_count, c.index) for c in notebook.cells] == [
        (1, 1, 2, 1),
        (2, 3, 2, 3),
    ]
    assert notebook.locate(3) == (2, 1) and notebook.locate(2) == (1, 2)
    assert notebook.locate(5) is None and notebook.locate(0) is None
    assert notebook.module_line(2, 2) == 4


def test_magics_shell_escapes_and_help_are_left_out_line_for_line() -> None:
    cell = (
        "%matplotlib inline\n"
        "!pip install torch\n"
        "files = !ls\n"
        "torch.nn.Linear?\n"
        "x = (10\n"
        "% 3)\n"  # inside brackets: the modulo operator, kept
        "if x:\n"
        "    %time f()\n"  # indented: `pass` keeps the block
        "s = '''\n"
        "!not a shell escape inside a string\n"
        "'''\n"
    )
    notebook = notebook_source([cell])
    assert notebook.text.splitlines() == [
        "",
        "",
        "",
        "",
        "x = (10",
        "% 3)",
        "if x:",
        "    pass",
        "s = '''",
        "!not a shell escape inside a string",
        "'''",
    ]
    assert notebook.errors == ()


def test_cell_magics_keep_a_python_body_and_leave_out_other_languages() -> None:
    notebook = notebook_source(
        ["%%time\nfor i in range(3):\n    pass\n", "%%bash\nls -la\nfor x in; do\n", "y = 1\n"]
    )
    assert notebook.text.splitlines() == ["", "for i in range(3):", "    pass", "", "", "", "y = 1"]
    assert notebook.errors == ()


def test_a_cell_that_does_not_compile_is_left_out_with_its_error_on_its_line() -> None:
    notebook = notebook_source(["import torch\n", "a = 1\nb = (2,\n", "c = 3\n"])
    assert notebook.text.splitlines() == ["import torch", "", "", "c = 3"]
    [error] = notebook.errors
    assert (error.cell, error.line, error.module_line) == (2, 2, 3)
    assert error.message == "SyntaxError: '(' was never closed"
    # top-level await runs in IPython: left out as a job, not an error
    assert notebook_source(["await asyncio.sleep(1)\n"]).errors == ()


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        (b'{"cells": [\n  {"cell_type": "code",\n  "source": "x"\n', "invalid JSON", 4),
        (b"[1, 2]", "the JSON is not an object", 1),
        (b'{"metadata": {}}', "no list of cells", 1),
        (b'{"cells": []}\xff', "not UTF-8", 1),
    ],
)
def test_a_file_that_is_not_a_notebook_says_so_on_its_line(
    data: bytes, message: str, line: int
) -> None:
    with pytest.raises(NotebookError) as caught:
        read_notebook(data)
    assert message in caught.value.message and caught.value.line == line


def test_a_notebook_of_another_language_has_no_code_for_us() -> None:
    data = json.loads(ipynb("x <- 1"))
    data["metadata"] = {"kernelspec": {"language": "R", "name": "ir"}}
    assert read_cells(json.dumps(data).encode()) == ([], [])


def test_nbformat_3_worksheets_are_read() -> None:
    data = {"worksheets": [{"cells": [{"cell_type": "code", "input": "import torch\n"}]}]}
    assert read_notebook(json.dumps(data).encode()).text == "import torch\n"


def test_a_notebook_is_a_module_of_its_folder_named_apart_from_a_py_beside_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "__init__.py").write_text("")  # even inside a package folder
    assert module_name(tmp_path / "01 intro.ipynb") == ("_01_intro_ipynb", tmp_path)
    assert notebook_module("mnist.ipynb") != module_name(tmp_path / "mnist.py")[0]


def test_the_workspace_scan_reads_notebooks_beside_python_files(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    code = "from torch import nn\nclass Net(nn.Module):\n    pass\n"
    (tmp_path / "nb.ipynb").write_bytes(ipynb("%pip install torch", code))
    (tmp_path / "nb.py").write_text(code)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_bytes(ipynb(code))
    workspace = scan(tmp_path)
    assert sorted(Path(p).name for p in workspace.files) == ["nb.ipynb", "nb.py"]
    [notebook_class] = workspace.models_in(str(tmp_path / "nb.ipynb"))
    assert (notebook_class.qualname, notebook_class.line) == ("nb_ipynb.Net", 3)
    assert [c.qualname for c in workspace.models_in(str(tmp_path / "nb.py"))] == ["nb.Net"]


def test_the_py_percent_format_stays_plain_python(tmp_path: Path) -> None:
    # `# %%` cells (VS Code, Spyder, Jupytext) are comments: the file is read as any .py
    text = "# %%\nfrom torch import nn\n\n# %% [markdown]\n# Notes\n\n# %%\nclass Net(nn.Module):\n    pass\n"
    info = read_file(tmp_path / "percent.py", text)
    assert info.module == "percent" and list(info.classes) == ["Net"]
    assert info.classes["Net"].line == 8 and info.syntax_error is None


def test_2000_cells_are_read_quickly_and_a_keystroke_recompiles_one_cell() -> None:
    cells = [f"x{n} = {n}\ndef f{n}(a):\n    return a + {n}\n" for n in range(2000)]
    started = time.perf_counter()
    notebook = read_notebook(ipynb(*cells))
    first = time.perf_counter() - started
    assert len(notebook.cells) == 2000 and notebook.cells[-1].first_line == 5998
    cells[1000] = "x1000 = 1000\ndef f1000(a):\n    return a - 1\n"
    started = time.perf_counter()
    notebook_source(cells)
    again = time.perf_counter() - started
    assert first < 1.0 and again < 0.1, (first, again)  # measured here: 0.05 s and 0.005 s


def test_50_mb_of_outputs_are_skipped_not_read(tmp_path: Path) -> None:
    png = base64.b64encode(os.urandom(3 * 2**20 * 50 // 4)).decode()  # 50 MB of base64
    output = {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}
    path = tmp_path / "big.ipynb"
    path.write_bytes(ipynb("from torch import nn\n", "y = 2\n", outputs=[output]))
    assert path.stat().st_size > 100 * 2**20  # both cells carry it
    started = time.perf_counter()
    notebook = load_notebook(path)
    elapsed = time.perf_counter() - started
    assert notebook.text == "from torch import nn\ny = 2\n"
    assert load_notebook(path) is notebook  # read once per version of the file
    assert elapsed < 5, elapsed  # measured here: 0.3-0.9 s for 100 MB, json's C decoder


def test_the_fixture_notebooks_form_modules_without_errors() -> None:
    for path in sorted((FIXTURES / "notebooks").glob("*.ipynb")):
        notebook = load_notebook(path)
        assert notebook.errors == (), path
        compile(notebook.text, str(path), "exec")


def test_a_future_import_after_other_code_keeps_its_cell_as_a_kernel_does() -> None:
    # IPython compiles a cell's statements one at a time: Python's rule for files (the
    # import first) does not hold in a cell; an unknown feature is still an error there
    notebook = notebook_source(
        [
            "import torch\n",
            "import math\nfrom __future__ import annotations\nX: Later = 1\n",
            "import os\n\nfrom __future__ import braces\n",
            "from __future__ import annotations\nclass Broken(:\n",
        ]
    )
    assert notebook.text.splitlines()[1:4] == [
        "import math",
        "from __future__ import annotations",
        "X: Later = 1",
    ]
    assert [(e.cell, e.line, e.message) for e in notebook.errors] == [
        (3, 3, "SyntaxError: not a chance"),
        (4, 2, "SyntaxError: invalid syntax"),
    ]
