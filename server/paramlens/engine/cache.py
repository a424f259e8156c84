"""Where results persist: job results by key (in memory and in the cache folder) and the
workspace scan (a warm run parses no file). Our own cache folder and our own dataclasses:
pickles. Imports :mod:`paramlens.config`, the analysis model and the worker's protocol."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..analysis.workspace import ScanCache
from ..config import scan_file
from ..worker.protocol import JobResult


def load(path: Path, tag: object) -> Any:
    """What :func:`dump` wrote under ``tag``, or None (missing, truncated, other version).
    Our own cache folder and our own dataclasses: a pickle loads several times faster than
    JSON plus conversion."""
    try:
        with path.open("rb") as f:
            saved_tag, value = pickle.load(f)
    except Exception:
        return None
    return value if saved_tag == tag else None


def dump(path: Path, tag: object, value: object) -> bool:
    """Write atomically (another process may be reading); False if the disk refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            pickle.dump((tag, value), f, pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError:
        return False
    return True


MEMORY_RESULTS = 64  # results kept in memory, the most recently used; the folder keeps all
# ... and no more rows than this between them (see :func:`rows`): a result of timm's
# vision_transformer.py (169 models, 1.5 MB pickled) is about 10,800 rows
MEMORY_ROWS = 100_000


def rows(result: JobResult) -> int:
    """What a result holds, roughly in proportion to its memory: its models, their module
    trees, layer lines and parameters, and the shapes forward() gave their lines."""
    return sum(
        1
        + len(m.tree)
        + len(m.layers)
        + sum(len(e.parameters) for e in m.layers)
        + (len(m.forward.lines) if m.forward is not None else 0)
        for m in result.models
    )


@dataclass
class ResultCache:
    """Job results by key: the most recent in memory, all of them in the cache folder.

    Every edit of a file is a new key: an unbounded memory would keep every version of
    every file a session ever built (an editing session's server grew without end). The
    memory is bounded by count and by :func:`rows` (64 small results are nothing, 64 of a
    big package's files are hundreds of MB); the newest result is always kept.
    """

    memory: OrderedDict[str, JobResult] = field(default_factory=OrderedDict)
    folder: Path | None = None
    limit: int = MEMORY_RESULTS
    row_limit: int = MEMORY_ROWS
    _rows: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> JobResult | None:
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        if self.folder is not None:
            result = load(self.folder / f"{key}.pickle", __version__)
            if isinstance(result, JobResult):
                self._keep(key, result)
                return result
        return None

    def put(self, key: str, result: JobResult) -> None:
        self._keep(key, result)
        if self.folder is not None:
            dump(self.folder / f"{key}.pickle", __version__, result)

    def _keep(self, key: str, result: JobResult) -> None:
        self.memory[key] = result
        self.memory.move_to_end(key)
        self._rows[key] = rows(result)
        while len(self.memory) > 1 and (
            len(self.memory) > self.limit or sum(self._rows.values()) > self.row_limit
        ):
            old, _ = self.memory.popitem(last=False)
            del self._rows[old]


class ScanStore:
    """The workspace scan, persisted next to the results: a warm run parses no file.

    Only entries read from disk are kept (keyed by mtime and size); a file's parsed call
    sites are kept with it once computed. Our own cache folder, our own dataclasses.
    """

    # FileInfo's and ClassInfo's fields (5: found_call_sites, found_model_calls), or what
    # they hold (6: a .py file's late `from __future__` import is its syntax error; 7: call
    # sites with local values, CallSite.note; 8: calls of classes as call-site arguments,
    # Target, and cases and comprehensions read further; 9: cases that module-level loops
    # append, a dict's read-only methods, ClassInfo.passes_on, aliases as symbols; 10:
    # entries of module-level tables of configurations as call sites; 11: partials of
    # classes as arguments)
    FORMAT = 11

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: dict[str, tuple[int, int]] = {}  # root -> signature when last saved

    def _path(self, root: Path) -> Path:
        return scan_file(self.folder, root)

    @staticmethod
    def _signature(cache: ScanCache) -> tuple[int, int]:
        parsed = sum(1 for _, _, info in cache.values() if info.call_sites_known())
        return len(cache), parsed

    def exists(self, root: Path) -> bool:
        return self._path(root).is_file()

    def load(self, root: Path) -> ScanCache:
        entries = load(self._path(root), (self.FORMAT, __version__))
        if not isinstance(entries, dict):
            return {}
        self.saved[str(root)] = self._signature(entries)
        return entries

    def save(self, root: Path, cache: ScanCache, loose: bool = False) -> None:
        under = str(root) + os.sep

        def inside(path: str) -> bool:  # a loose root's own files only
            return path.startswith(under) and not (loose and os.sep in path[len(under) :])

        entries: ScanCache = {  # read from disk, without their text (the digest stands for it)
            p: (key, "", info.without_text())
            for p, (key, _, info) in cache.items()
            if inside(p) and isinstance(key, tuple)
        }
        signature = self._signature(entries)
        if self.saved.get(str(root)) != signature and dump(
            self._path(root), (self.FORMAT, __version__), entries
        ):
            self.saved[str(root)] = signature
