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
PRECISIONS = ("fp32", "bf16", "fp16")


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
    # training memory under mixed precision: "bf16" or "fp16" autocast, else the model's dtype
    precision: str = "fp32"
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
