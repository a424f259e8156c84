"""Benchmark paramlens against real model code we did not write: how many classes get figures.

    python -m bench.corpus [--corpus /work/corpus] [--packages timm,vit-pytorch] [--json OUT]

Steps, each cached under the corpus folder (``--corpus``, default ``/work/corpus``):

1. fetch: ``pip download --no-deps`` the pinned wheels below and unpack each into
   ``src/<name>/`` (licence copied from its .dist-info to ``src/<name>/``), with a
   ``pyproject.toml`` holding only ``[tool.paramlens]`` so that folder is the workspace root;
2. an interpreter for the builds, ``.venv``: torch, torchvision and the packages' runtime
   dependencies (pinned in ``VENV_PINS``), but none of the corpus packages themselves;
3. the ground truth, in plain torch, without paramlens: ``bench/corpus_truth.py`` run with
   that interpreter writes ``truth/<name>.json`` (every ``nn.Module`` subclass, which ones a
   user can build and how, and their parameter counts);
4. paramlens: ``paramlens summary <pkgdir> --format json --python .venv/bin/python``, once
   with an empty cache (cold) and once more on the cache it filled (warm), output kept in
   ``paramlens/<name>.json``;
5. a table per package: classes found, reachable (per the truth), built by paramlens, with
   figures (built, measured through a factory, or as instances inside other models), wrong
   totals, reachable but not built (with paramlens's message), and the times.

transformers and diffusers are large: by default only the sub-folders in ``SUBSETS`` are
scanned and measured (``--full`` takes the whole package). Packages whose code imports
another corpus package (timm, for open_clip and segmentation_models_pytorch) get that
package's folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO


@dataclass(frozen=True)
class Package:
    name: str  # the folder under src/, and the name the table shows
    pin: str  # what pip downloads
    pkgdir: str  # the import package inside the wheel
    measured: tuple[str, ...] = ()  # sub-folders of pkgdir to measure ("" = all of it)
    needs: tuple[str, ...] = ()  # other corpus packages its code imports


PACKAGES = [
    Package("vit-pytorch", "vit-pytorch==1.26.14", "vit_pytorch"),
    Package("x-transformers", "x-transformers==2.31.10", "x_transformers"),
    Package("timm", "timm==1.0.31", "timm"),
    Package("torchvision", "torchvision==0.29.1", "torchvision", ("models",)),
    Package("segmentation_models_pytorch", "segmentation_models_pytorch==0.6.0", "segmentation_models_pytorch", needs=("timm",)),
    Package("open_clip_torch", "open_clip_torch==3.3.0", "open_clip", needs=("timm",)),
    Package("monai", "monai==1.6.1", "monai", ("networks",)),
    Package("transformers", "transformers==5.24.0", "transformers"),
    Package("diffusers", "diffusers==0.42.1", "diffusers", needs=("transformers",)),
]

# Sub-folders measured by default for the large packages (``--full`` measures everything).
SUBSETS = {
    "transformers": ("models/gpt2", "models/llama", "models/bert", "models/t5", "models/vit", "models/whisper", "models/clip", "models/mistral"),
    "diffusers": ("models/unets", "models/autoencoders", "models/transformers"),
}

# The build interpreter: torch and torchvision lie on this machine's disk (never an unpinned
# torch: it would download a multi-GB CUDA build), the rest are the corpus's dependencies.
VENV_PINS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "einops==0.8.2",
    "einx==0.4.3",
    "loguru==0.7.3",
    "torch-einops-utils==0.2.0",
    "huggingface_hub==2.4.0",
    "safetensors==0.8.0",
    "tokenizers==0.23.3",
    "regex==2026.11.19",
    "PyYAML==6.0.4",
    "tqdm==4.70.1",
    "packaging==26.4",
    "filelock==4.3.1",
    "requests==2.34.2",
    "typer==0.29.2",
    "importlib_metadata==10.2.0",
    "ftfy==6.3.1",
]

TRUTH_SCRIPT = REPO / "bench" / "corpus_truth.py"


# ---------------------------------------------------------------------------- fetch


def fetch(corpus: Path, package: Package) -> Path:
    """Download and unpack one wheel (once); returns ``src/<name>``."""
    folder = corpus / "src" / package.name
    marker = folder / ".unpacked"
    if marker.exists() and marker.read_text() == package.pin:
        return folder
    wheels = corpus / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = package.pin.split("==")
    stem = name.replace("-", "_").lower()

    def find() -> list[Path]:
        return [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]

    if not find():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", package.pin, "-d", str(wheels)],
            check=True,
        )
    (wheel,) = find()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    for info in folder.glob("*.dist-info"):
        for licence in [*info.glob("LICEN[CS]E*"), *info.glob("licenses/*"), *info.glob("COPYING*")]:
            if licence.is_file():
                shutil.copy(licence, folder / licence.name)
    (folder / "pyproject.toml").write_text("[tool.paramlens]\n")
    marker.write_text(package.pin)
    return folder


def ensure_venv(corpus: Path) -> Path:
    python = corpus / ".venv" / "bin" / "python"
    marker = corpus / ".venv" / ".pins"
    pins = "\n".join(VENV_PINS)
    if python.exists() and marker.exists() and marker.read_text() == pins:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(corpus / ".venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PINS], check=True)
    marker.write_text(pins)
    return python
