"""The command line end to end: the installed ``paramlens`` run on the fixtures."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FIXTURES, model, run_cli, summary_json


def torch_count(path: Path, expression: str) -> tuple[int, int]:
    """What torch itself says: build the fixture on meta here and count (total, trainable)."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"fixture_{path.parent.name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with torch.device("meta"):
            net = eval(expression, vars(module))
    finally:
        sys.path.remove(str(path.parent))
    total = sum(p.numel() for p in net.parameters())
    return total, sum(p.numel() for p in net.parameters() if p.requires_grad)


def numbered(stdout: str) -> dict[int, str]:
    """``annotate`` output by source line number (totals lines above classes have none)."""
    return {
        int(line.split()[0]): line
        for line in stdout.splitlines()
        if line.split() and line.split()[0].isdigit()
    }


def test_annotate_shows_the_seed_figures_on_their_lines() -> None:
    result = run_cli("annotate", "fixtures/recipe/models.py")
    assert result.returncode == 0, result.stderr
    lines = numbered(result.stdout)
    expected = {
        11: "# Linear(784 -> 512) 401,920 → [1, 512]",
        13: "# Linear(512 -> 512) 262,656 → [1, 512]",
        15: "# Linear(512 -> 10) 5,130 → [1, 10]",
        28: "# Conv2d(1 -> 32, 3x3) 320 → [1, 32, 26, 26]",
        30: "# Conv2d(32 -> 64, 3x3) 18,496 → [1, 64, 24, 24]",
        36: "# Linear(9216 -> 128) 1,179,776 → [1, 128]",
        38: "# Linear(128 -> 10) 1,290 → [1, 10]",
    }
    for number, figures in expected.items():
        assert lines[number].endswith(figures), lines[number]
    assert lines[12].endswith("# ReLU → [1, 512]")  # no parameters: its output alone
    assert "# NeuralNetwork: 669,706 params · 669,706 trainable · 0 non-trainable" in result.stdout
    assert "# CNN: 1,199,882 params · 1,199,882 trainable" in result.stdout


def test_frozen_weight_in_init_counts_as_non_trainable() -> None:
    doc = summary_json("fixtures/recipe/frozen.py::FrozenFirstLayer")
    frozen = model(doc, "FrozenFirstLayer")
    assert (frozen["total_params"], frozen["trainable_params"], frozen["non_trainable_params"]) == (
        669_706,
        268_298,
        401_408,
    )
    # the subclass's layers live in the other file, with their lines
    first = next(layer for layer in frozen["layers"] if layer["line"] == 11)
    assert first["file"].endswith("recipe/models.py")
    assert [(p["name"], p["shape"], p["numel"], p["trainable"]) for p in first["parameters"]] == [
        ("linear_relu_stack.0.weight", [512, 784], 401_408, False),
        ("linear_relu_stack.0.bias", [512], 512, True),
    ]


def test_json_piped_to_a_program_is_one_compact_line() -> None:
    piped = run_cli("summary", "fixtures/recipe/models.py", "--format", "json")
    assert piped.stdout.count("\n") == 1  # indented, it would be hundreds of lines


def test_json_format_is_the_documented_one() -> None:
    doc = summary_json("fixtures/recipe/models.py")
    assert [m["name"] for m in doc["models"]] == ["NeuralNetwork", "CNN"]
    mlp = model(doc, "NeuralNetwork")
    for key in (
        "name",
        "file",
        "line",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "buffer_numel",
        "param_bytes",
        "error",
        "layers",
    ):
        assert key in mlp
    assert (mlp["line"], mlp["error"], mlp["param_bytes"]) == (6, None, 669_706 * 4)
    by_line = {layer["line"]: layer for layer in mlp["layers"]}
    assert by_line[11]["type"] == "Linear" and by_line[11]["count"] == 1
    assert by_line[11]["params"] == 401_920
    assert {k for p in by_line[11]["parameters"] for k in p} >= {
        "name",
        "shape",
        "numel",
        "trainable",
    }
    assert by_line[10]["type"] == "Sequential" and by_line[10]["params"] == 669_706


def test_tied_weights_count_once_like_torch() -> None:
    doc = summary_json("fixtures/gpt/model.py::GPT")
    gpt = model(doc, "GPT")
    total, trainable = torch_count(FIXTURES / "gpt/model.py", "GPT(GPTConfig())")
    assert gpt["total_params"] == total == 124_439_808
    assert gpt["trainable_params"] == trainable
    blocks = next(layer for layer in gpt["layers"] if layer["line"] == 68)
    assert (blocks["type"], blocks["count"], blocks["params"]) == ("Block", 12, 85_054_464)


def test_a_70b_model_from_a_dataclass_config_builds_on_meta() -> None:
    doc = summary_json("fixtures/llama/model.py::Transformer")
    llama = model(doc, "Transformer")
    total, _ = torch_count(FIXTURES / "llama/model.py", "Transformer(ModelArgs())")
    assert llama["total_params"] == total == 68_976_648_192
    assert llama["device"] == "meta" and llama["ctor"] == "Transformer(params=ModelArgs())"
    assert llama["buffer_numel"] == 2 * 8192 * 64
    by_line = {layer["line"]: layer for layer in llama["layers"]}
    assert (by_line[115]["type"], by_line[115]["count"]) == ("TransformerBlock", 80)
    assert (by_line[30]["type"], by_line[30]["count"], by_line[30]["params"]) == (
        "Parameter",
        161,
        161 * 8192,
    )
    # forward() through 80 blocks on meta, at a guessed input: no weight touched
    assert llama["forward"]["error"] is None
    assert llama["forward"]["output_shape"].endswith(", 32000]")


def test_helper_functions_map_to_their_line_and_the_callers() -> None:
    doc = summary_json("fixtures/cnn/model.py")
    cnn = model(doc, "FrozenBackboneCNN")
    assert (cnn["total_params"], cnn["trainable_params"]) == torch_count(
        FIXTURES / "cnn/model.py", "FrozenBackboneCNN()"
    )
    assert cnn["trainable_params"] == 650
    assert cnn["buffer_numel"] == (32 + 32 + 1) + (64 + 64 + 1)  # running mean, var, batch count
    by_line = {layer["line"]: layer for layer in cnn["layers"]}
    assert (by_line[8]["type"], by_line[8]["count"], by_line[8]["params"]) == (
        "Conv2d",
        2,
        3 * 32 * 9 + 32 * 64 * 9,
    )
    assert by_line[18]["params"] == 3 * 32 * 9 + 2 * 32  # the caller's line: conv + batchnorm
    assert by_line[19]["params"] == 32 * 64 * 9 + 2 * 64


def test_a_training_script_is_not_run_and_its_call_site_gives_the_arguments(tmp_path: Path) -> None:
    workspace = tmp_path / "script"
    shutil.copytree(FIXTURES / "script", workspace)
    result = run_cli("summary", str(workspace / "train.py"), "--format", "json", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    import json

    tower = model(json.loads(result.stdout), "TwoTower")
    assert tower["error"] is None
    assert tower["ctor"] == "TwoTower(32, 3)"
    assert tower["total_params"] == 3 * (32 * 32 + 32) + 33
    by_line = {layer["line"]: layer for layer in tower["layers"]}
    assert (by_line[18]["count"], by_line[18]["type"]) == (3, "Linear")
    assert by_line[20]["params"] == 33  # a call over three lines maps to its first
    assert not (workspace / "training.log").exists()


def test_package_relative_imports_and_classes_built_through_their_users() -> None:
    result = run_cli("annotate", "fixtures/pkgws/mypkg/blocks.py")
    assert result.returncode == 0, result.stderr
    # Block needs `d`, but four of them were measured inside Tower: that is its figure,
    # and the needs-arguments note would only be noise.
    assert "# Block · 16,832 each · 4 in Tower" in result.stdout
    assert "Block needs constructor arguments" not in result.stderr
    lines = numbered(result.stdout)
    assert lines[17].endswith("# 4 x LayerNorm(64) 512"), lines[17]
    assert lines[18].endswith("# 4 x Linear(64 -> 256) 66,560"), lines[18]
    assert lines[19].endswith("# 4 x Parameter 256"), lines[19]


def test_constructor_arguments_from_pyproject_and_config_classes() -> None:
    result = run_cli("summary", "fixtures/needs_args/model.py", "--format", "json")
    assert result.returncode == 0, result.stderr  # a class that needs arguments is a note
    import json

    doc = json.loads(result.stdout)
    assert model(doc, "Encoder")["total_params"] == 2 * (128 * 128 + 128)
    assert model(doc, "Configured")["ctor"] == "Configured(in_features=16, out_features=4)"
    assert model(doc, "Configured")["total_params"] == 16 * 4 + 4
    unknown = model(doc, "Unknown")["error"]
    assert unknown["kind"] == "needs-args" and unknown["line"] == 30
    assert "tokenizer, width" in unknown["message"]


def test_hostile_models_fail_alone_on_their_own_lines(tmp_path: Path) -> None:
    escape = Path.home() / "paramlens-was-here.txt"
    spawned = Path("/tmp/paramlens-spawned")
    c_escape = Path("/tmp/paramlens-c-escape")
    for leftover in (escape, spawned, c_escape):
        leftover.unlink(missing_ok=True)
    result = run_cli(
        "summary", "fixtures/hostile/hostile.py", "--format", "json", "--timeout", "2", "--no-cache"
    )
    assert result.returncode == 1
    import json

    doc = json.loads(result.stdout)
    errors = {m["name"]: m["error"] for m in doc["models"]}
    assert errors["WellBehaved"] is None
    assert model(doc, "WellBehaved")["total_params"] == 110
    expected = {
        "BusyLoop": ("timeout", 16, "TimeoutError: building BusyLoop took longer than 2 s"),
        "Network": (
            "blocked",
            23,
            "ConnectionError: network access is blocked while paramlens builds models",
        ),
        "WriteOutside": ("blocked", 29, "PermissionError: writing to"),
        "Spawn": ("blocked", 36, "PermissionError: starting processes is blocked"),
        "HugeAllocation": ("memory", 42, "MemoryError: building needs more memory than the cap"),
        "Raises": ("exception", 48, "ValueError: bad hyper-parameters"),
        "CLevelWrite": ("exception", 77, "PermissionError: [Errno 13] Permission denied"),
        "Stubborn": ("timeout", (57, 58), "TimeoutError: building Stubborn took longer than 2 s"),
    }
    for name, (kind, line, message) in expected.items():
        error = errors[name]
        lines = line if isinstance(line, tuple) else (line,)  # a loop stops on either of its lines
        assert error["kind"] == kind and error["line"] in lines, (name, error)
        assert error["message"].startswith(message), (name, error["message"])
        assert error["file"].endswith("hostile/hostile.py")
    assert not escape.exists() and not spawned.exists()
    assert not c_escape.exists()  # Landlock: the kernel refused a write the audit hook cannot see
    assert "hostile.py:23: Network: ConnectionError" in result.stderr
    assert any("network namespace" in layer for layer in doc["isolation"])
    assert any("Landlock" in layer for layer in doc["isolation"])


def test_exit_codes_and_messages(tmp_path: Path) -> None:
    missing = run_cli("annotate", "nope.py")
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "paramlens: error: nope.py: no such file or folder",
    )
    (tmp_path / "plain.py").write_text("x = 1\n")
    none = run_cli("annotate", str(tmp_path / "plain.py"))
    assert none.returncode == 3 and "no nn.Module subclass found" in none.stderr
    (tmp_path / "broken.py").write_text("from torch import nn\n\nclass A(nn.Module:\n    pass\n")
    broken = run_cli("summary", str(tmp_path / "broken.py"))
    assert broken.returncode == 1
    assert f"{tmp_path / 'broken.py'}:3: SyntaxError" in broken.stderr
    wrong = run_cli("summary", "fixtures/recipe/models.py::Nope")
    assert wrong.returncode == 2 and "models found: NeuralNetwork, CNN" in wrong.stderr


def test_a_folder_summary_covers_every_model() -> None:
    result = run_cli("summary", "fixtures/recipe", "--depth", "1")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.count("Layer (type:depth-idx)") == 3
    )  # NeuralNetwork, CNN, FrozenFirstLayer
    assert "├─Sequential: 1-2" in result.stdout and "Linear: 2-" not in result.stdout
    assert "Total params: 1,199,882" in result.stdout
    root_row = next(line for line in result.stdout.splitlines() if line.startswith("CNN"))
    # the root counts everything; no line: nobody's code built it
    cells = root_row.replace(", ", ",").split()  # shapes as one cell each
    assert cells == ["CNN", "[1,1,28,28]", "[1,10]", "1,199,882", "11,992,448", "--", "True"]
    markdown = run_cli("summary", "fixtures/recipe/models.py::CNN", "--format", "markdown")
    header = "| Layer (type:depth-idx) | Input Shape | Output Shape | Param # (with children) |"
    assert header in markdown.stdout
    assert (
        "| [1, 9216] | [1, 128] | 1,179,776 | 1,179,648 | [128, 9216], [128] |" in markdown.stdout
    )


def test_unchanged_files_are_not_built_again(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "pkgws", tmp_path / "ws")
    target = str(tmp_path / "ws/mypkg/models.py")
    env = {"PARAMLENS_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("summary", target, "-v", env=env)
    # a fully cached run never starts the worker and never imports torch
    second = run_cli("summary", target, "-v", env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert "jobs run: 1" in first.stderr and "jobs run: 0" in second.stderr
    assert "worker ready" in first.stderr and "worker ready" not in second.stderr
    assert "| torch\n" not in second.stderr and "| paramlens.cli\n" in second.stderr
    assert first.stdout == second.stdout
    blocks = tmp_path / "ws/mypkg/blocks.py"  # an imported file changes: build again
    blocks.write_text(blocks.read_text().replace("4 * d", "2 * d"))
    third = run_cli("summary", target, "-v", env=env)
    assert "jobs run: 1" in third.stderr and "Total params: 34,698" in third.stdout


def test_an_unchanged_workspace_is_answered_without_reading_it_again(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "pkgws", tmp_path / "ws")
    target = str(tmp_path / "ws/mypkg/models.py")
    env = {"PARAMLENS_CACHE_DIR": str(tmp_path / "cache")}
    saved = "its saved answer, no file read"
    first = run_cli("annotate", target, "-v", env=env)
    second = run_cli("annotate", target, "-v", env=env)
    assert saved not in first.stderr and saved in second.stderr
    assert first.stdout == second.stdout and "jobs run: 0" in second.stderr
    # a setting is part of what the answer depends on
    pyproject = tmp_path / "ws/pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.paramlens]\nshapes = false\n")
    third = run_cli("annotate", target, "-v", env=env)
    assert saved not in third.stderr and "jobs run: 1" in third.stderr
    # so is every file of the workspace, even one the target does not import
    (tmp_path / "ws/mypkg/notes.py").write_text("X = 1\n")
    fourth = run_cli("annotate", target, "-v", env=env)
    assert saved not in fourth.stderr and fourth.stdout == third.stdout


def test_the_workspace_venv_is_the_default_interpreter(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES / "recipe", workspace)
    import site
    import sysconfig
    import venv

    # A venv that sees the test interpreter's packages (torch), never the base Python's: a
    # fresh machine has torch only in the project's .venv (system_site_packages hid that).
    builder = venv.EnvBuilder(symlinks=True, with_pip=False)
    builder.create(workspace / ".venv")
    context = builder.ensure_directories(workspace / ".venv")
    purelib = Path(sysconfig.get_path("purelib", vars={"base": context.env_dir}))
    (purelib / "test-torch.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = run_cli("summary", str(workspace / "models.py"), "-v", "--no-cache")
    assert result.returncode == 0, result.stderr
    assert f"worker ready: {workspace / '.venv/bin/python'}" in result.stderr
    assert "Total params: 669,706" in result.stdout


def test_an_interpreter_without_torch_is_a_clear_error(tmp_path: Path) -> None:
    import venv

    venv.EnvBuilder(symlinks=True, with_pip=False).create(tmp_path / "bare")
    result = run_cli(
        "annotate",
        "fixtures/recipe/models.py",
        "--python",
        str(tmp_path / "bare/bin/python"),
        "--no-cache",
    )
    assert result.returncode == 4
    assert "cannot import torch in" in result.stderr and "bare/bin/python" in result.stderr


@pytest.mark.parametrize("mode", ["fork", "no-fork"])
def test_platforms_without_fork_use_a_fresh_interpreter_per_job(mode: str) -> None:
    env = {"PARAMLENS_NO_FORK": "1"} if mode == "no-fork" else {}
    result = run_cli("summary", "fixtures/recipe/models.py::CNN", "--no-cache", "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert "Total params: 1,199,882" in result.stdout
    assert "audit hook" in result.stderr


def test_a_model_that_reads_values_gets_its_small_tensors_on_the_cpu_and_says_so() -> None:
    doc = summary_json("fixtures/meta_fallback/model.py")
    model_ = model(doc, "DataDependent")
    assert model_["error"] is None
    # the small tensor it reads is made on the CPU (at once: its file's __init__ calls
    # .item()); its Linear's weights stay on meta
    assert (model_["device"], model_["total_params"]) == ("meta", 32 * 8 + 8)
    assert model_["notes"] == [
        "built on meta, with the small tensors its constructor reads on the CPU"
    ]
