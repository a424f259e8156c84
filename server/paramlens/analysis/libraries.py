"""Model base classes of installed libraries, read (never run) from the user's interpreter.

``class MyViT(timm.models.VisionTransformer)`` or ``class Lit(L.LightningModule)`` is a model
only because of a file in site-packages. The workspace scan does not read site-packages; this
module does, lazily and only for base classes that the workspace cannot resolve itself: it
follows the library's own imports and re-exports (star imports included) with ``ast`` until a
base is ``torch.nn``'s, as an editor's type checker would. Nothing of the library runs here.
The folders to look in come from the caller (the engine asks the interpreter, in
:func:`paramlens.engine.spawn.library_paths`). Imports the other analysis modules only.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .model import FileInfo
from .reading import qualify, read_imports
from .source import MAX_SOURCE_CHARS, SourceError, decode_source
from .workspace import is_torch_module

# A library's module graph can be large: lookups stop once this many of its files were
# read (each is parsed once per process; a miss only means a class shows no figures).
MAX_FILES = 200


@dataclass
class _Module:
    info: FileInfo
    bases: dict[str, tuple[str, ...]]  # class name -> qualified names of its bases
    stars: list[str]  # modules it star-imports


@dataclass
class Libraries:
    """Answers "is this class of an installed library an ``nn.Module``?" for one interpreter."""

    paths: Callable[[], Sequence[str]]  # called once, on the first question
    _folders: Sequence[str] | None = None
    _modules: dict[str, _Module | None] = field(default_factory=dict)
    _answers: dict[str, bool] = field(default_factory=dict)

    def is_module(self, qualname: str) -> bool:
        top = qualname.partition(".")[0]
        if top in sys.stdlib_module_names or "." not in qualname:
            return False
        return self._is_module(qualname, set())

    def _is_module(self, qualname: str, seen: set[str]) -> bool:
        if is_torch_module(qualname):
            return True
        if qualname.startswith("torch.") or qualname in seen or len(self._modules) > MAX_FILES:
            return False  # torch's own modules are all under torch.nn
        if qualname in self._answers:
            return self._answers[qualname]
        seen.add(qualname)
        module_name, _, name = qualname.rpartition(".")
        module = self._module(module_name)
        answer = False
        if module is not None:
            if name in module.bases:
                answer = any(self._is_module(b, seen) for b in module.bases[name])
            elif name in module.info.symbols:  # imported, or re-exported by a package
                answer = self._is_module(module.info.symbols[name], seen)
            else:
                answer = any(self._is_module(f"{m}.{name}", seen) for m in module.stars)
        self._answers[qualname] = answer
        return answer

    def _module(self, name: str) -> _Module | None:
        if name not in self._modules:
            self._modules[name] = self._read(name)
        return self._modules[name]

    def _read(self, name: str) -> _Module | None:
        if self._folders is None:
            self._folders = tuple(self.paths())
        relative = Path(*name.split("."))
        for folder in self._folders:
            for path, is_package in (
                (Path(folder, relative, "__init__.py"), True),
                (Path(folder, relative.with_suffix(".py")), False),
            ):
                if path.is_file():
                    return _parse(path, name, is_package)
        return None


def _parse(path: Path, name: str, is_package: bool) -> _Module | None:
    try:
        data = path.read_bytes()
        if len(data) > MAX_SOURCE_CHARS:
            return None
        tree = ast.parse(decode_source(data), str(path))
    except (OSError, ValueError, SyntaxError, SourceError, RecursionError, MemoryError):
        return None
    info = FileInfo(str(path), name, str(path.parent))
    stars = read_imports(tree.body, info, is_package)
    bases: dict[str, tuple[str, ...]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            info.symbols.pop(stmt.name, None)  # defined here, after any import of the name
            bases[stmt.name] = tuple(q for q in (qualify(info, b) for b in stmt.bases) if q)
        elif (
            isinstance(stmt, ast.Assign)  # an alias: ``Model = VisionTransformer``
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, (ast.Name, ast.Attribute))
            and (target := qualify(info, stmt.value))
        ):
            info.symbols[stmt.targets[0].id] = target
    return _Module(info, bases, stars)
