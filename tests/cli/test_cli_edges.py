"""The command line's rough edges: usage errors, folders, encodings, -v and progress."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, run_cli

NET = (
    "from torch import nn\n\n\n"
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(2, 3)\n"
)
BROKEN = "from torch import nn\n\nclass Broken(nn.Module:\n    pass\n"


def workspace(root: Path, files: dict[str, bytes | str]) -> Path:
    (root / "pyproject.toml").write_text("")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_a_negative_depth_is_a_usage_error() -> None:
    result = run_cli("summary", "fixtures/recipe/models.py", "--depth", "-1")
    assert result.returncode == 2
    assert "argument --depth: expected 0 or a positive whole number, got '-1'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_summary_reports_files_with_syntax_errors(tmp_path: Path) -> None:
    root = workspace(tmp_path, {"net.py": NET, "sub/broken.py": BROKEN})
    result = run_cli("summary", str(root), "--format", "json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert [m["name"] for m in document["models"]] == ["Net"]
    assert document["errors"] == [
        {
            "message": "SyntaxError: invalid syntax",
            "file": str(root / "sub/broken.py"),
            "line": 3,
            "kind": "syntax",
            "traceback": "",
        }
    ]
    assert f"{root / 'sub/broken.py'}:3: SyntaxError" in result.stderr


def test_annotate_a_folder_annotates_each_model_file(tmp_path: Path) -> None:
    root = workspace(tmp_path, {"a/net.py": NET, "b/other.py": NET.replace("Net", "Other")})
    (root / "plain.py").write_text("x = 1\n")
    result = run_cli("annotate", str(root), cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("==> a/net.py <==\n")
    assert "\n\n==> b/other.py <==\n" in result.stdout
    assert result.stdout.count("self.fc = nn.Linear(2, 3)  # Linear(2 -> 3) 9") == 2
    assert "plain.py" not in result.stdout


def test_the_needs_arguments_note_is_printed_once_in_table_mode() -> None:
    result = run_cli("summary", "fixtures/needs_args/model.py")
    fix = 'Unknown = "Unknown(tokenizer=..., width=...)"'
    assert (result.stdout + result.stderr).count(fix) == 1, result.stdout + result.stderr
    as_json = run_cli("summary", "fixtures/needs_args/model.py", "--format", "json")
    assert fix in as_json.stderr  # stdout is for machines there: the note stays on stderr


def test_verbose_shows_each_models_time_and_not_a_normal_worker_exit(tmp_path: Path) -> None:
    root = workspace(tmp_path, {"net.py": NET})
    result = run_cli("summary", str(root / "net.py"), "-v", "--no-cache")
    assert result.returncode == 0, result.stderr
    assert f"{root / 'net.py'}:4: Net: built on meta in " in result.stderr
    assert "the worker exited" not in result.stderr


def test_latin1_sources_are_annotated_and_undeclared_ones_are_a_clear_error(
    tmp_path: Path,
) -> None:
    declared = "# -*- coding: latin-1 -*-\n" + NET + "        self.name = 'caf\u00e9'\n"
    undeclared = NET.replace("Net", "Plain") + "        self.name = 'caf\u00e9'\n"
    root = workspace(
        tmp_path,
        {"declared.py": declared.encode("latin-1"), "undeclared.py": undeclared.encode("latin-1")},
    )
    good = run_cli("annotate", str(root / "declared.py"))
    assert good.returncode == 0, good.stderr
    assert "self.name = 'caf\u00e9'" in good.stdout and "# Linear(2 -> 3) 9" in good.stdout
    bad = run_cli("annotate", str(root / "undeclared.py"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert f"{root / 'undeclared.py'}:8: SyntaxError: byte b'\\xe9' on line 8" in bad.stderr


def run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe): (exit code, out, err)."""
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "paramlens", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**os.environ},
    )
    os.close(secondary)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the pty closes when the process ends
            break
        if not chunk:
            break
        seen += chunk
    assert process.stdout is not None
    out = process.stdout.read().decode()
    os.close(main)
    return process.wait(timeout=30), out, seen.decode(errors="replace")


def test_a_cold_run_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    target = str(FIXTURES / "recipe/models.py")
    code, out, err = run_on_a_terminal("summary", target, "--no-cache")
    assert code == 0
    assert "starting the PyTorch worker" in err
    assert "0 of 2 models done" in err and "2 of 2 models done" in err
    assert err.endswith("\r\x1b[K")  # the status line is erased at the end
    assert "Total params: 669,706" in out and "\x1b" not in out
    piped = run_cli("summary", target, "--no-cache")
    assert piped.returncode == 0 and piped.stderr == ""


FROZEN = (
    "from torch import nn\n\n\n"
    "class Frozen(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.emb = nn.Embedding(10, 4)\n"
    "        self.fc = nn.Linear(4, 2)\n"
    "        self.rnn = nn.GRU(32, 32, num_layers=2, bidirectional=True)\n"
    "        self.emb.weight.requires_grad_(False)\n"
    "        self.fc.bias.requires_grad = False\n"
)


def test_tied_and_frozen_parameters_are_marked_where_they_appear(tmp_path: Path) -> None:
    gpt = run_cli("annotate", str(FIXTURES / "gpt/model.py"), "--no-cache")
    lines = {
        int(t.split()[0]): t
        for t in gpt.stdout.splitlines()
        if t.split()[:1] != ["#"] and t.split() and t.split()[0].isdigit()
    }
    # the guessed input is GPT's context, config.block_size tokens
    tied = "# Linear(768 -> 50257) 38.6M (tied with line 66, counted there) → [1, 1024, 50257]"
    assert lines[72].endswith(tied)
    assert lines[66].endswith("# Embedding(50257, 768) 38.6M → [1, 1024, 768]")
    root = workspace(tmp_path, {"frozen.py": FROZEN})
    result = run_cli("annotate", str(root / "frozen.py"), "--no-cache")
    assert "# Frozen: 31,538 params · 31,496 trainable · 42 non-trainable" in result.stdout
    assert "nn.Embedding(10, 4)  " in result.stdout
    assert "# Embedding(10, 4) 40 (frozen)" in result.stdout
    assert "# Linear(4 -> 2) 10 (2 frozen)" in result.stdout
    assert "# GRU(32 -> 32, 2 layers, bidirectional) 31,488" in result.stdout


ATTENTION = (
    "import torch\n"
    "from torch import nn\n\n\n"
    "class Attn(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.scale = nn.Parameter(torch.ones(1))\n"
    "        self.attn = nn.MultiheadAttention(64, 4)\n"
)


def test_summary_rows_count_whole_subtrees_and_own_parameters_get_rows(tmp_path: Path) -> None:
    root = workspace(tmp_path, {"attn.py": ATTENTION})
    result = run_cli("summary", str(root / "attn.py"), "--no-cache", "--depth", "2")
    assert result.returncode == 0, result.stderr

    def row(name: str, text: str = result.stdout) -> list[str]:
        return next(t.split() for t in text.splitlines() if name in t)

    assert "Param # (with children)" in result.stdout and "Own param shapes" in result.stdout
    # a module row is its subtree's total at any depth; its own tensors are rows below it
    assert row("Attn ")[:3] == ["Attn", "16,641", "--"]
    assert row("scale") == ["├─scale", "(Parameter)", "1", "[1]", "True", "attn.py:8"]
    assert row("MultiheadAttention")[:4] == ["├─MultiheadAttention:", "1-1", "16,640", "--"]
    assert row("in_proj_weight")[:5] == ["│", "├─in_proj_weight", "(Parameter)", "12,288", "[192,"]
    assert row("in_proj_bias")[:4] == ["│", "├─in_proj_bias", "(Parameter)", "192"]
    collapsed = run_cli("summary", str(root / "attn.py"), "--no-cache", "--depth", "1")
    assert row("MultiheadAttention", collapsed.stdout)[:4] == row("MultiheadAttention")[:4]
    assert "in_proj_weight" not in collapsed.stdout
    # JSON keeps its fields' meanings and names the module's own tensors
    document = json.loads(run_cli("summary", str(root / "attn.py"), "--format", "json").stdout)
    [top, attention, _] = document["models"][0]["tree"]
    assert (top["params"], top["own_params"], top["own_shapes"]) == (16_641, 1, [[1]])
    assert (top["own_names"], top["own_trainable"]) == (["scale"], [True])
    assert attention["own_names"] == ["in_proj_weight", "in_proj_bias"]


SLOW_IMPORT = {
    "models/__init__.py": "",
    "models/slow.py": "import time\n\nWIDTH = 4\npause = time.sleep(30)\n",
    "models/big.py": (
        "from torch import nn\n\nfrom models.slow import WIDTH\n\n\n"
        "class Big(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(WIDTH, WIDTH)\n"
    ),
}


def test_a_timeout_while_importing_names_the_step_and_the_files(tmp_path: Path) -> None:
    root = workspace(tmp_path, SLOW_IMPORT)
    big = str(root / "models/big.py")
    stopped = run_cli("summary", big, "--timeout", "2", "--no-cache")
    assert stopped.returncode == 1
    assert (
        f"{root / 'models/slow.py'}:4: Big: TimeoutError: importing models/big.py "
        "(in models/slow.py, which it imports) took longer than 2 s; paramlens stopped it"
    ) in stopped.stderr
    # within the whole timeout, one slow statement is skipped alone, and -v says where
    skipped = run_cli("summary", big, "--no-cache", "-v")
    assert skipped.returncode == 0, skipped.stderr
    assert (
        "note: models/slow.py:4: skipped while importing models/big.py (it ran longer than 3 s)"
    ) in skipped.stderr
    # an import that ignores the alarm is killed: still the import, at the line it hung on
    deaf = "import signal\nimport time\n\nWIDTH = 4\n"
    deaf += (
        "_ = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\npause = time.sleep(30)\n"
    )
    (root / "models/slow.py").write_text(deaf)
    killed = run_cli("summary", big, "--timeout", "2", "--no-cache")
    assert (
        f"{root / 'models/slow.py'}:6: Big: TimeoutError: importing models/big.py "
        "(in models/slow.py, which it imports) took longer than 2 s; paramlens stopped it"
    ) in killed.stderr


SWALLOWS = """import time

from torch import nn


class Swallows(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        end = time.monotonic() + 3.0
        while time.monotonic() < end:  # a library that imports under `except Exception`
            try:
                time.sleep(0.05)
            except Exception:
                pass
        raise ValueError("only supported on CUDA")
"""


def test_a_forward_that_swallows_the_alarm_keeps_the_classs_parameters(tmp_path: Path) -> None:
    # forward() outlives its budget and the class's 2 s: the parameters measured before it
    # stand, no further input is tried (each would take as long), the model's own error shows
    (tmp_path / "swallows.py").write_text(SWALLOWS)
    doc = json.loads(
        run_cli(
            "summary",
            str(tmp_path / "swallows.py"),
            "--format",
            "json",
            "--timeout",
            "2",
            "--no-cache",
        ).stdout
    )
    (swallows,) = doc["models"]
    assert swallows["error"] is None, swallows["error"]["message"]
    assert swallows["total_params"] == 10
    assert swallows["forward"]["error"]["message"] == "ValueError: only supported on CUDA"


def test_a_worker_killed_mid_run_is_exit_5_naming_the_class(tmp_path: Path) -> None:
    slow = "import sys\nimport time\n\nfrom torch import nn\n\n\nclass Slow(nn.Module):\n"
    slow += "    def __init__(self):\n        super().__init__()\n"
    slow += "        print('BUILDING Slow', file=sys.stderr, flush=True)\n        time.sleep(60)\n"
    root = workspace(tmp_path, {"slow.py": slow})
    command = [sys.executable, "-m", "paramlens", "summary", str(root / "slow.py")]
    process = subprocess.Popen(
        [*command, "--timeout", "60", "--no-cache", "-v"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    worker = None
    try:
        for line in process.stderr:  # -v logs the worker's pid, then what the build prints
            if "worker ready:" in line:
                worker = int(line.rpartition(" pid ")[2])
            if "BUILDING Slow" in line:
                break
        assert worker is not None
        time.sleep(0.5)  # the worker relays which class its child started
        os.kill(worker, 9)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 5, stderr
    assert (
        "paramlens: error: the paramlens worker died while building Slow in slow.py "
        "(killed by signal 9)"
    ) in stderr
    assert "paramlens.python" not in stderr and "Traceback" not in stderr and not stdout


def test_a_killed_cli_leaves_no_worker_or_build_behind(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        {
            "slow.py": "import time\nfrom torch import nn\n\n"
            "class Slow(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        time.sleep(60)\n        self.fc = nn.Linear(2, 2)\n"
        },
    )
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paramlens",
            "summary",
            str(root / "slow.py"),
            "-v",
            "--timeout",
            "60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PARAMLENS_CACHE_DIR": "off"},
    )
    assert cli.stderr is not None
    worker = None
    for line in cli.stderr:  # "worker ready: ... in N ms, pid P"
        if "worker ready" in line:
            worker = int(line.rsplit("pid", 1)[1])
            break
    assert worker is not None
    time.sleep(1.5)  # the build is sleeping now
    cli.kill()
    cli.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived the CLI that started it"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_model_without_init_gets_the_config_class_its_body_declares(tmp_path: Path) -> None:
    # transformers' CLIPPreTrainedModel: no __init__ of its own, `config: CLIPConfig` in its
    # body, PreTrainedModel.__init__(config: PreTrainedConfig) in another file
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    (tmp_path / "modeling_utils.py").write_text(
        "from torch import nn\n\n\n"
        "class PreTrainedConfig:\n"
        "    def __init__(self, hidden=4):\n"
        "        self.hidden = hidden\n\n\n"
        "class PreTrainedModel(nn.Module):\n"
        "    def __init__(self, config: PreTrainedConfig):\n"
        "        super().__init__()\n"
        "        self.head = nn.Linear(config.hidden, 2)\n"
    )
    (tmp_path / "modeling_tiny.py").write_text(
        "from modeling_utils import PreTrainedConfig, PreTrainedModel\n\n\n"
        "class TinyConfig(PreTrainedConfig):\n"
        "    def __init__(self, hidden=8):\n"
        "        super().__init__(hidden)\n\n\n"
        "class TinyPreTrainedModel(PreTrainedModel):\n"
        "    config: TinyConfig\n\n\n"
        "class TinyModel(TinyPreTrainedModel):\n"
        "    def __init__(self, config: PreTrainedConfig):\n"
        "        super().__init__(config)\n"
    )
    result = run_cli("summary", str(tmp_path / "modeling_tiny.py"), "--format", "json")
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    declared = models["TinyPreTrainedModel"]
    assert declared["ctor"] == "TinyPreTrainedModel(config=TinyConfig())"
    assert declared["error"] is None and declared["total_params"] == 8 * 2 + 2
    # an __init__ of its own: its annotation says which config it takes
    own = models["TinyModel"]
    assert own["ctor"] == "TinyModel(config=PreTrainedConfig())" and own["total_params"] == 10


def _with_installed(tmp_path: Path, library: dict[str, str], model: str, *flags: str) -> dict:
    """The models `summary --format json` finds in a workspace holding ``model`` (model.py),
    with ``library`` (relative path -> text) outside it, on PYTHONPATH as if installed."""
    for relative, text in library.items():
        (tmp_path / "site" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / relative).write_text(text)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    (root / "model.py").write_text(model)
    result = run_cli(
        "summary",
        str(root / "model.py"),
        "--format",
        "json",
        *flags,
        env={"PYTHONPATH": str(tmp_path / "site")},
    )
    return {m["name"]: m for m in json.loads(result.stdout)["models"]}


def test_a_model_built_on_an_installed_librarys_base_is_found_and_built(tmp_path: Path) -> None:
    # `class LitMLP(L.LightningModule)`: the base lives in site-packages, which the scan
    # never reads; a stand-in `lightning` outside the workspace plays the installed one
    models = _with_installed(
        tmp_path,
        {
            "lightning/__init__.py": (
                "from torch import nn\n\n\nclass LightningModule(nn.Module):\n    pass\n"
            )
        },
        "import lightning as L\n"
        "import torch\n"
        "from torch import nn\n\n\n"
        "class LitMLP(L.LightningModule):\n"
        "    def __init__(self, hidden: int = 16):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))\n"
        "        self.example_input_array = torch.zeros(4, 8)\n\n"
        "    def forward(self, x):\n"
        "        return self.net(x)\n",
    )
    [lit] = models.values()
    assert lit["name"] == "LitMLP" and lit["error"] is None
    assert lit["total_params"] == (8 * 16 + 16) + (16 * 2 + 2)
    assert lit["forward"]["input_source"] == "example_input_array"
    assert lit["forward"]["output_shape"] == "[4, 2]"


def test_a_subclass_of_an_installed_librarys_model_is_found_and_built(tmp_path: Path) -> None:
    # `class CifarResNet(torchvision.models.ResNet)`: a library on no list of ours, whose
    # model is re-exported through a star import, read from the interpreter's sys.path
    models = _with_installed(
        tmp_path,
        {
            "visionlib/__init__.py": "from .models import *\n",
            "visionlib/models/__init__.py": (
                "from torch import nn\n\n\n"
                "class ResNet(nn.Module):\n"
                "    def __init__(self, width: int, classes: int = 2):\n"
                "        super().__init__()\n"
                "        self.fc = nn.Linear(width, classes)\n"
            ),
        },
        "import visionlib\n\n\n"
        "class CifarResNet(visionlib.ResNet):\n"
        "    def __init__(self):\n"
        "        super().__init__(width=8, classes=10)\n\n\n"
        "class Wide(CifarResNet):\n"
        "    pass\n",
        "--no-shapes",
    )
    assert sorted(models) == ["CifarResNet", "Wide"]
    assert all(m["error"] is None and m["total_params"] == 8 * 10 + 10 for m in models.values())


def test_an_inherited_init_takes_the_config_its_annotation_names_where_it_is_written(
    tmp_path: Path,
) -> None:
    # transformers' modular_mistral.py: MistralModel(LlamaModel) runs LlamaModel.__init__,
    # whose `config: LlamaConfig` names modeling_llama's import; the module's own
    # MistralConfig lacks what that __init__ reads
    package = tmp_path / "ws" / "models"
    package.mkdir(parents=True)
    (tmp_path / "ws" / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    (package / "__init__.py").write_text("")
    (package / "configuration_llama.py").write_text(
        "class LlamaConfig:\n"
        "    def __init__(self, hidden: int = 8, mlp_bias: bool = True):\n"
        "        self.hidden, self.mlp_bias = hidden, mlp_bias\n"
    )
    (package / "configuration_mistral.py").write_text(
        "class MistralConfig:\n    def __init__(self, hidden: int = 8):\n        self.hidden = hidden\n"
    )
    (package / "modeling_llama.py").write_text(
        "from torch import nn\n\nfrom .configuration_llama import LlamaConfig\n\n\n"
        "class LlamaModel(nn.Module):\n"
        "    def __init__(self, config: LlamaConfig):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(config.hidden, config.hidden, bias=config.mlp_bias)\n"
    )
    (package / "modular_mistral.py").write_text(
        "from .configuration_mistral import MistralConfig\n"
        "from .modeling_llama import LlamaModel\n\n\n"
        "class MistralModel(LlamaModel):\n    pass\n"
    )
    result = run_cli(
        "summary", str(package / "modular_mistral.py"), "--format", "json", "--no-shapes"
    )
    [mistral] = json.loads(result.stdout)["models"]
    assert mistral["ctor"] == "MistralModel(config=LlamaConfig())"
    assert mistral["error"] is None and mistral["total_params"] == 8 * 8 + 8


def recording_python(folder: Path) -> tuple[Path, Path]:
    """An interpreter (this one, through a script) that notes the PID of each worker it
    starts: the worker's command line is the only one that names paramlens_worker."""
    log, python = folder / "workers.log", folder / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *paramlens_worker*) echo $$ >> {log} ;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    return python, log


def test_a_cold_run_starts_one_worker_and_a_cached_run_none(tmp_path: Path) -> None:
    # the command line starts the worker first thing, before its own imports: only when the
    # run needs it, and the engine uses that very worker
    root = workspace(tmp_path, {"ws/net.py": NET}) / "ws"
    python, log = recording_python(tmp_path)
    env = {"PARAMLENS_CACHE_DIR": str(tmp_path / "cache")}
    args = ("summary", str(root / "net.py"), "--python", str(python), "-v")
    first, second = run_cli(*args, env=env), run_cli(*args, env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "Total params: 9" in first.stdout and first.stdout == second.stdout
    assert "jobs run: 1" in first.stderr and "jobs run: 0" in second.stderr
    assert len(log.read_text().split()) == 1  # the first run's; none for the cached one


def test_a_worker_started_for_nothing_is_stopped(tmp_path: Path) -> None:
    # cold runs whose worker turns out not to be needed: a class that is not there (found
    # once the workspace is read), a folder without models
    root = workspace(tmp_path, {"ws/net.py": NET, "ws/empty/notes.py": "x = 1\n"}) / "ws"
    python, log = recording_python(tmp_path)
    env = {"PARAMLENS_CACHE_DIR": "off"}
    missing = run_cli("summary", f"{root / 'net.py'}::Nope", "--python", str(python), env=env)
    empty = run_cli("annotate", str(root / "empty"), "--python", str(python), env=env)
    assert missing.returncode == 2 and "no nn.Module class 'Nope'" in missing.stderr
    assert empty.returncode == 3, empty.stderr
    workers = [int(pid) for pid in log.read_text().split()]
    assert len(workers) == 2
    assert not any(_alive(pid) for pid in workers), "a worker outlived its command"


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_reader_that_stops_reading_ends_the_command_quietly(unbuffered: str) -> None:
    # `paramlens summary ... | head -1`: the reader has what it wants and closes the pipe;
    # the command ends with exit 0 and no traceback, what it still had to print dropped.
    # Buffered (a terminal user's default), the pipe breaks when the command flushes last
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-m", "paramlens", "summary", "fixtures/recipe/models.py::CNN"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, **({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {})},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before it prints anything
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_a_scan_cut_short_is_a_note_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens]\nmax-files = 2\n")
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.py").write_text("X = 1\n")
    (tmp_path / "z_net.py").write_text(NET)  # past the budget: the file asked about is read
    result = run_cli("annotate", "z_net.py", "--no-shapes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "self.fc = nn.Linear(2, 3)  # Linear(2 -> 3) 9" in result.stdout
    assert result.stderr == (
        f"paramlens: note: paramlens read the first 2 Python files under {tmp_path} and "
        "stopped; set max-files in [tool.paramlens] or add a pyproject.toml to mark the "
        "project\n"
    )


def test_a_loose_file_inside_a_package_imports_it_as_the_project_would(tmp_path: Path) -> None:
    """timm's models/ opened from a bare copy (no project marker anywhere above it): the
    package's optional imports are the user's code too, with placeholders as in a project."""
    for folder in ("pkg", "pkg/layers", "pkg/models"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "pkg/layers/__init__.py").write_text("from .norm import Norm\n")
    (tmp_path / "pkg/layers/norm.py").write_text(
        "from paramlens_missing_dependency.ops import FrozenNorm  # optional, like torchvision\n"
        "from torch import nn\n\n\nclass Norm(nn.LayerNorm):\n    pass\n"
    )
    (tmp_path / "pkg/models/net.py").write_text(
        "from torch import nn\n\nfrom ..layers import Norm\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.norm = Norm(8)\n        self.fc = nn.Linear(8, 4)\n"
    )
    result = run_cli("summary", "pkg/models/net.py", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [net] = json.loads(result.stdout)["models"]
    assert (net["name"], net["error"], net["total_params"]) == ("Net", None, 16 + 36)


def test_a_class_whose_base_failed_to_define_says_why_not_that_its_build_crashed(
    tmp_path: Path,
) -> None:
    """transformers without huggingface_hub: ``PreTrainedModel``'s statement fails, and
    so does every model class built on it. Each says which statement failed and why (the
    loader's placeholder), and the file's other classes are built."""
    base = (
        "from torch import nn\n\nfrom not_installed_lib import Mixin\n\n\n"
        "class Base(nn.Module, Mixin):\n    pass\n"
    )
    models = NET.replace("class Net(nn.Module)", "class Net(Base)").replace(
        "from torch import nn\n", "from torch import nn\n\nfrom .base import Base\n"
    )
    models += "\n\nclass Other(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    models += "        self.fc = nn.Linear(2, 2)\n"
    root = workspace(
        tmp_path, {"pkg/__init__.py": "", "pkg/base.py": base, "pkg/models.py": models}
    )
    result = run_cli("summary", str(root / "pkg/models.py"), "--format", "json")
    document = json.loads(result.stdout.splitlines()[0])
    models = {m["name"]: m for m in document["models"]}
    assert models["Other"]["total_params"] == 6
    message = models["Net"]["error"]["message"]
    assert message.startswith("UnavailableNameError: Net is unavailable: the statement at "), (
        message
    )
    assert "Base is unavailable" in message and "ended unexpectedly" not in result.stdout


@pytest.mark.parametrize("zygote", ["1", "0"], ids=["zygote", "no-zygote"])
def test_a_size_from_a_failed_module_statement_says_which_statement_failed(
    tmp_path: Path, zygote: str
) -> None:
    """``N = int(os.environ["N"])`` fails in the package's ``__init__``; the loader leaves a
    placeholder, which torch's C code refuses by its type (``found element of type
    Unavailable``). The error says what failed, where and why, whether the package was
    imported by its zygote or by the build itself."""
    models = (
        "from torch import nn\n\nfrom pkg import N\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(N, N)\n"
    )
    root = workspace(
        tmp_path,
        {
            "pkg/__init__.py": 'import os\n\nN = int(os.environ["PARAMLENS_TEST_NO_SUCH"])\n',
            "pkg/models.py": models,
        },
    )
    env = {**os.environ, "PARAMLENS_NO_ZYGOTE": "" if zygote == "1" else "1"}
    result = run_cli(
        "summary", str(root / "pkg/models.py"), "--format", "json", "--no-shapes", env=env
    )
    [net] = json.loads(result.stdout.splitlines()[0])["models"]
    error = net["error"]
    assert error["message"].startswith(
        "UnavailableNameError: N is unavailable: the statement at __init__.py:3 that defines "
        "it failed when paramlens imported the file (KeyError: 'PARAMLENS_TEST_NO_SUCH')"
    ), error["message"]
    assert (error["file"], error["line"]) == (str(root / "pkg/models.py"), 9)


def test_a_package_whose_import_defeats_the_alarm_is_reported_not_waited_for(
    tmp_path: Path,
) -> None:
    """``paramlens summary`` of a package whose ``__init__`` blocks SIGALRM and sleeps: its
    zygote never answers (the command used to wait forever); it is stopped past its
    deadline, and the build child's timeout reports the line the import hung on."""
    init = (
        "import signal\nimport time\n\n\ndef _size():\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        "    time.sleep(1e6)\n    return 4\n\n\nN = _size()\n"
    )
    models = (
        "from torch import nn\n\nfrom pkg import N\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(N, N)\n"
    )
    root = workspace(tmp_path, {"pkg/__init__.py": init, "pkg/models.py": models})
    result = run_cli(
        "summary",
        str(root / "pkg"),
        "--timeout",
        "1",
        "--no-shapes",
        env={"PARAMLENS_IMPORT_BUDGET_S": "1", "PARAMLENS_NO_ZYGOTE": ""},
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"{root / 'pkg/__init__.py'}:7: Net: TimeoutError: importing pkg/models.py "
        "(in pkg/__init__.py, which it imports) took longer than 1 s; paramlens stopped it"
    ) in result.stderr
