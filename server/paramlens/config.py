"""One typed, fully defaulted settings tree, read from every place a user sets it.

Precedence, lowest first: defaults, ``[tool.paramlens]`` in the nearest
``pyproject.toml``, the editor's ``paramlens`` settings (camelCase), command-line
flags. A bad value is reported (as a message the caller shows) and replaced by its
default; it never raises.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEVICES = ("meta", "cpu")
OPTIMIZERS = ("adamw", "adam", "sgd-momentum", "sgd", "none")
# "bf16"/"fp16": autocast over float32 weights; "bf16-pure": bfloat16 weights, no autocast
PRECISIONS = ("fp32", "bf16", "fp16", "bf16-pure")
# kernels assumed for F.scaled_dot_product_attention; "auto": the one a CUDA GPU would pick
ATTENTIONS = ("auto", "math", "flash", "efficient")
# data parallelism over several GPUs; "fsdp" is "zero3" (torch's FSDP2, fully sharded)
STRATEGIES = ("ddp", "zero1", "zero2", "zero3", "fsdp")

GIB = 2**30
# The cuBLAS workspace torch's caching allocator holds once a matmul ran, per
# aten/src/ATen/cuda/CublasHandlePool.cpp (parseChosenWorkspaceSize): ":4096:8" (32 MiB) on
# sm90 (Hopper), ":4096:2:16:8" (4096 KiB x 2 + 16 KiB x 8) on every other card. Blackwell
# (sm100, B200) is "every other" in the sources read; a later torch may differ.
WORKSPACE_HOPPER = 4096 * 8 * 1024
WORKSPACE_DEFAULT = 4096 * 1024 * 2 + 16 * 1024 * 8


@dataclass(frozen=True)
class Gpu:
    """A card to fit a training step in: its memory, and the cuBLAS workspace torch keeps."""

    memory: int  # bytes
    workspace: int  # bytes


# Cards by name (lower case, spaces, dashes and underscores dropped) -> memory in GiB, as
# NVIDIA markets it ("80GB" is 80 GiB of HBM; nvidia-smi shows a little less as usable).
# Sources: NVIDIA's data sheets. Hopper cards (sm90) get the larger cuBLAS workspace.
GPU_TABLE: Mapping[str, int] = {
    "h10080gb": 80,
    "h100": 80,
    "h100sxm": 80,
    "h100pcie": 80,
    "h10094gb": 94,
    "h100nvl": 94,
    "h200": 141,
    "a10080gb": 80,
    "a10040gb": 40,
    "a10": 24,
    "a10g": 24,
    "l4": 24,
    "l40": 48,
    "l40s": 48,
    "t4": 16,
    "v10016gb": 16,
    "v10032gb": 32,
    "rtx4090": 24,
    "rtx4080": 16,
    "rtx3090": 24,
    "rtx3080": 10,
    "rtxa6000": 48,
    "a6000": 48,
    "rtx6000ada": 48,
    "rtx5090": 32,
    "b200": 180,
}
HOPPER = ("h100", "h200")  # name prefixes of sm90 cards
_AMBIGUOUS = {"a100": "A100-40GB or A100-80GB", "v100": "V100-16GB or V100-32GB"}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(gib|gb|g|mib|mb|tib|tb)")
_UNITS = {"g": GIB, "gb": GIB, "gib": GIB, "mb": 2**20, "mib": 2**20, "tb": 2**40, "tib": 2**40}


def gpu_card(text: str) -> Gpu | None:
    """The card ``gpu = "..."`` names: a size ("24GB", "24 GB", "80GiB"; GB read as GiB, as
    cards are sold) or a card ("A100-80GB", "H100", "RTX 4090"), in any case, spaces or
    dashes. None for "" (no card); ValueError with a hint for anything else."""
    key = re.sub(r"[\s_\-]+", "", text.lower()).removeprefix("nvidia").removeprefix("geforce")
    if not key:
        return None
    size = _SIZE.fullmatch(key)
    if size:
        memory = int(float(size.group(1)) * _UNITS[size.group(2)])
        if memory <= 0:
            raise ValueError("must be a positive size")
        return Gpu(memory, WORKSPACE_DEFAULT)
    if key in _AMBIGUOUS:
        raise ValueError(f"names two cards: write {_AMBIGUOUS[key]}")
    if key not in GPU_TABLE:
        raise ValueError(
            'must be a size such as "24GB" or a known card such as "A100-80GB", "H100", '
            '"RTX 4090", "L4"'
        )
    hopper = key.startswith(HOPPER)
    return Gpu(GPU_TABLE[key] * GIB, WORKSPACE_HOPPER if hopper else WORKSPACE_DEFAULT)


@dataclass(frozen=True)
class Settings:
    python: str = ""  # the worker's interpreter; "" = the workspace's .venv, else our own
    timeout: float = 10.0  # seconds per model
    memory_mb: int = 2048  # per build, on top of what torch itself maps
    device: str = "meta"
    layer_lenses: bool = True
    layer_hints: bool = False  # per-layer figures as end-of-line inlay hints too
    shapes: bool = True  # run forward() with an example input: shapes, mult-adds
    optimizer: str = (
        "adamw"  # training memory counts its state: adamw, adam, sgd-momentum, sgd, none
    )
    # the training step: "bf16"/"fp16" autocast, "bf16-pure" bfloat16 weights, else fp32
    precision: str = "fp32"
    batch: int = 0  # the training step's batch: 0 = the example input's own
    attention: str = "auto"  # scaled_dot_product_attention's kernel: auto, math, flash, efficient
    checkpoint: tuple[str, ...] = ()  # module classes whose activations are recomputed
    loss: str = ""  # an expression of `output`; "" = the sum of the output's floating tensors
    gpu: str = ""  # the card to fit the step in: "24GB", "A100-80GB", "H100"; "" = none
    gpus: int = 1  # training spread over this many GPUs: one's figures, `batch` being its own
    strategy: str = "ddp"  # how, when gpus > 1: ddp, zero1, zero2, zero3 or fsdp (= zero3)
    wrap: tuple[str, ...] = ()  # FSDP's units (module classes); () = the repeated blocks
    analyze_on_save: bool = True
    analyze_on_change: bool = True  # debounced; the last good results stay, marked stale
    debounce_ms: int = 500
    models: Mapping[str, str] = field(default_factory=dict)  # class -> constructor expression
    # class (or "path.py::Class") -> forward()'s example input: a tensor expression, a tuple
    # of them (positional arguments) or a dict (keyword arguments)
    inputs: Mapping[str, str] = field(default_factory=dict)
    # values of the named dimensions in forward()'s shape annotations: {batch = 8, seq = 1024}
    dims: Mapping[str, int] = field(default_factory=dict)
    # Python files a workspace scan reads at most: a folder that is no project (the home
    # folder, a checkout of many) is not read for minutes while the file asked for waits
    max_files: int = 5_000


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).replace("-", "_").lower()


def _check(name: str, value: Any, default: Any) -> str | None:
    if name == "batch":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return "must be a whole number: 0 (the example input's batch) or a batch size"
        return None
    if name in ("checkpoint", "wrap"):
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or not all(
            isinstance(n, str) and all(p.isidentifier() for p in n.split(".")) for n in names
        ):
            return 'must be a list of module class names, such as ["Block"]'
        return None
    if name == "loss" and isinstance(value, str) and value.strip():
        try:
            compile(value.strip(), "<loss>", "eval")
        except SyntaxError as exc:
            return f"is not a Python expression of `output` ({exc.msg})"
        return None
    if name == "gpu" and isinstance(value, str):
        try:
            gpu_card(value)
        except ValueError as exc:
            return str(exc)
        return None
    if name == "dims":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
            for k, v in value.items()
        ):
            return "must be a table of dimension name = positive integer"
        return None
    if name in ("models", "inputs"):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            what = "constructor expression" if name == "models" else "input expression"
            return f'must be a table of class name = "{what}"'
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if value > 0 else "must be positive"
    if name == "device" and value not in DEVICES:
        return f"must be one of {', '.join(DEVICES)}"
    if name == "optimizer" and value not in OPTIMIZERS:
        return f"must be one of {', '.join(OPTIMIZERS)}"
    if name == "precision" and value not in PRECISIONS:
        return f"must be one of {', '.join(PRECISIONS)}"
    if name == "attention" and value not in ATTENTIONS:
        return f"must be one of {', '.join(ATTENTIONS)}"
    if name == "strategy" and value not in STRATEGIES:
        return f"must be one of {', '.join(STRATEGIES)}"
    return None if isinstance(value, str) else "must be a string"


def merge(base: Settings, values: Mapping[str, Any], origin: str) -> tuple[Settings, list[str]]:
    """``base`` updated with ``values`` (any key style); problems come back as messages."""
    known = {f.name: f for f in dataclasses.fields(Settings)}
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        name = _snake(key)
        if name not in known:
            problems.append(f"{origin}: unknown setting {key!r} (ignored)")
            continue
        if value is None or (name == "python" and value == ""):
            continue  # unset: a lower layer (pyproject.toml, the default) decides
        default = getattr(Settings(), name)
        problem = _check(name, value, default)
        if problem:
            problems.append(f"{origin}: {key} {problem}; using {default!r}")
            continue
        if isinstance(default, int) and not isinstance(default, bool):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        elif name in ("models", "inputs", "dims"):
            value = {**getattr(base, name), **value}
        elif name in ("checkpoint", "wrap"):
            value = (value,) if isinstance(value, str) else tuple(dict.fromkeys(value))
        elif name == "loss":
            value = value.strip()
        changes[name] = value
    return dataclasses.replace(base, **changes), problems


# The editor asks for settings on every code lens request: parse each pyproject.toml once
# per version of it (keyed by size and mtime), not once per request.
_Parsed = tuple[Any, str | None]  # ([tool.paramlens] or None if absent, TOML error)
_parsed: dict[Path, tuple[tuple[int, int], _Parsed]] = {}


def _paramlens_table(path: Path) -> _Parsed | None:
    """``[tool.paramlens]`` of a pyproject.toml; None if there is no file or no such table."""
    try:
        stat = path.stat()
    except OSError:
        return None
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _parsed.get(path)
    if cached is None or cached[0] != version:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        try:
            parsed: _Parsed = (tomllib.loads(text).get("tool", {}).get("paramlens"), None)
        except tomllib.TOMLDecodeError as exc:
            # broken, and meant for us: report it; broken and not ours: not our business
            parsed = ({}, str(exc)) if "tool.paramlens" in text else (None, None)
        cached = _parsed[path] = (version, parsed)
    return cached[1] if cached[1][0] is not None else None


ROOT_MARKERS = ("pyproject.toml", ".git", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class Root:
    """A workspace root. A loose one (a file outside any project, or the filesystem's root
    or the home folder) is read without its subfolders: its own files only."""

    path: Path
    loose: bool = False


def too_wide(folder: Path) -> bool:
    """Whether ``folder`` is ``/`` (a drive's root) or the home folder: never a project,
    even with a marker (a dotfiles repository), and never read with its subfolders."""
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no password entry
        home = None
    return folder == Path(folder.anchor) or folder == home


def find_root(target: Path) -> Root:
    """The workspace a path belongs to: the nearest folder with a project marker (not ``/``
    nor the home folder), else the file's own folder, loose (its own files only)."""
    is_dir = target.is_dir()
    folder = target if is_dir else target.parent
    for candidate in (folder, *folder.parents):
        if not too_wide(candidate) and any(
            (candidate / marker).exists() for marker in ROOT_MARKERS
        ):
            return Root(candidate)
    # a folder named on the command line is read whole (bounded), unless it is / or home
    return Root(folder, loose=not is_dir or too_wide(folder))


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.paramlens]`` table, at or above ``start``."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        if _paramlens_table(candidate / "pyproject.toml") is not None:
            return candidate / "pyproject.toml"
    return None


def from_pyproject(start: Path, base: Settings | None = None) -> tuple[Settings, list[str]]:
    base = base or Settings()
    path = find_pyproject(start)
    parsed = None if path is None else _paramlens_table(path)
    if path is None or parsed is None:
        return base, []
    table, problem = parsed
    if problem is not None:
        return base, [f"{path}: {problem}; using defaults"]
    if not isinstance(table, dict):
        return base, [f"{path}: [tool.paramlens] must be a table"]
    settings, problems = merge(base, table, str(path))
    if settings.python and not Path(settings.python).is_absolute() and "/" in settings.python:
        # ".venv/bin/python" means next to this pyproject.toml, wherever the editor started
        settings = dataclasses.replace(settings, python=str(path.parent / settings.python))
    return settings, problems


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _bare(key: str) -> str:
    """A TOML key as written, without its quotes and spaces: ``tool . "paramlens"`` ->
    ``tool.paramlens``."""
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def key_line(path: Path, table: str, key: str) -> int | None:
    """The 1-based line of ``key`` in ``[tool.paramlens.<table>]`` of the pyproject.toml at
    ``path`` (also written ``<table> = { key = ... }`` or ``<table>.key = ...`` under
    ``[tool.paramlens]``); None if it is not written there."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    spelled = f"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    in_table = re.compile(rf"^\s*{spelled}\s*=")
    dotted = re.compile(rf"^\s*{re.escape(table)}\s*\.\s*{spelled}\s*=")
    inline = re.compile(rf"^\s*{re.escape(table)}\s*=\s*{{.*(?:^|[{{,\s]){spelled}\s*=")
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _bare(header.group(1))
            continue
        written = {
            f"tool.paramlens.{table}": (in_table,),
            "tool.paramlens": (dotted, inline),
        }.get(current, ())
        if any(pattern.match(line) for pattern in written):
            return number
    return None


def cache_folder() -> Path | None:
    """Where results (and the workspace scan) persist: shared by the CLI and the server."""
    configured = os.environ.get("PARAMLENS_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paramlens"


def scan_file(folder: Path, root: Path) -> Path:
    """Where the cache in ``folder`` keeps the scan of the workspace at ``root``: whether
    it exists tells a workspace analysed before (its results may all be cached)."""
    return folder / f"scan-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.pickle"
