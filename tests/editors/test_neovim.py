"""A real editor nobody on this team wrote: Neovim, headless, drives the server over stdio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

NVIM = shutil.which("nvim")


@pytest.mark.skipif(
    NVIM is None and os.environ.get("PARAMLENS_REQUIRE_EDITORS") != "1",
    reason="Neovim is not installed (scripts/test.sh installs it and requires this test)",
)
def test_neovim_shows_the_seed_lenses_and_hover(tmp_path: Path) -> None:
    assert NVIM is not None, "PARAMLENS_REQUIRE_EDITORS=1 but nvim is not on PATH"
    out = tmp_path / "seen.json"
    script = Path(__file__).with_name("neovim_client.lua")
    subprocess.run(
        [
            NVIM,
            "--headless",
            "-u",
            "NONE",
            "-n",
            "-c",
            f"let g:paramlens_python = '{sys.executable}'",
            "-c",
            f"let g:paramlens_file = '{FIXTURES / 'recipe/models.py'}'",
            "-c",
            f"let g:paramlens_out = '{out}'",
            "-c",
            f"luafile {script}",
        ],
        timeout=120,
        check=True,
        capture_output=True,
    )
    seen = json.loads(out.read_text())
    lenses = {lens["line"]: lens["title"] for lens in seen["lenses"]}
    # the class lens may go on (training memory); tests/lsp and tests/cli pin its whole text
    assert lenses[6].startswith(
        "NeuralNetwork · 669,706 params · 669,706 trainable · 2.6 MB"
        " · 668.67K mult-adds @ [1, 784] (guessed input)"
    )
    assert lenses[11] == "Linear(784 -> 512) · 401,920 · → [1, 512]"
    assert "`[512, 784]`" in seen["hover"]
