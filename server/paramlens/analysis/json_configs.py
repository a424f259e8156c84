"""JSON files as model configurations, read and never run: a JSON object whose keys fit a
class's constructor (open_clip's ``model_configs/ViT-B-32.json``, ``{"embed_dim": 512,
"vision_cfg": {...}, "text_cfg": {...}}``, which ``create_model('ViT-B-32')`` passes to
``CLIP(**config)``). It fits when it gives every required parameter and every key is a
parameter, except top-level keys with a boolean value that no parameter takes: the
loader's own switches (open_clip's ``"custom_text": true`` picks the class), left out.
Parsed with the standard library's :mod:`json`; imports :mod:`.model` and
:mod:`.workspace`'s folder rules only."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .model import InitParam
from .workspace import walk_folders

MAX_JSON_FILES = 2_000  # JSON files one workspace offers at most
MAX_JSON_BYTES = 256 * 1024  # a model's config is small: larger JSON is data


@dataclass(frozen=True)
class JsonFile:
    """A JSON file's object, or why it cannot be read and at which line."""

    path: str
    data: dict[str, object] | None
    error: str = ""
    line: int = 1


def json_files(root: Path) -> list[str]:
    """The JSON files of a workspace that may configure models (bounded, in a stable
    order): not a Hugging Face ``config.json`` beside its ``modeling_*.py``, which builds
    through its config class instead."""
    found: list[str] = []
    for dirpath, filenames in walk_folders(root):
        hub = "config.json" in filenames and any(n.startswith("modeling_") for n in filenames)
        for name in filenames:
            if name.endswith(".json") and not (hub and name == "config.json"):
                found.append(os.path.join(dirpath, name))
                if len(found) >= MAX_JSON_FILES:
                    return found
    return found


_FILES: dict[str, tuple[tuple[int, int], JsonFile]] = {}
_LOCK = threading.Lock()


def read_json(path: str) -> JsonFile | None:
    """``path``'s object, read once per version of the file on disk; None when it is not
    a config at all (too large, not an object, unreadable)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if stat.st_size > MAX_JSON_BYTES:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        known = _FILES.get(path)
    if known is not None and known[0] == key:
        return known[1]
    read = _parse(path)
    with _LOCK:
        if len(_FILES) > 4 * MAX_JSON_FILES:
            _FILES.clear()
        _FILES[path] = (key, read)
    return read


def _parse(path: str) -> JsonFile:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_JSON_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        return JsonFile(path, None, f"cannot read it: {exc}")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        return JsonFile(path, None, f"JSON error: {exc.msg}", exc.lineno)
    except RecursionError:
        return JsonFile(path, None, "JSON error: nested too deeply")
    if not isinstance(loaded, dict):
        return JsonFile(path, None, "not a JSON object")
    return JsonFile(path, loaded)


def fitting_kwargs(
    data: dict[str, object], params: Sequence[InitParam]
) -> dict[str, object] | None:
    """The keyword arguments a JSON object gives a constructor of ``params``, if it fits
    (see the module's docstring): None when a required parameter is missing or a key is
    not a parameter. A constructor with no required parameter fits no JSON: any object
    whose keys it takes would."""
    named = {p.name for p in params}
    required = {p.name for p in params if p.required}
    kwargs = {k: v for k, v in data.items() if k in named or not isinstance(v, bool)}
    if not required or not required <= kwargs.keys() or not kwargs.keys() <= named:
        return None
    return kwargs
