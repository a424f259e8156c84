"""Why a class has only example sizes: where its project calls it (issue 20's < 3% target).

    python -m bench.example_only RESULT.json ROOT [ROOT ...] [--list]

RESULT.json is paramlens's ``summary --format json`` output (or a corpus run's
``paramlens/<name>.json``); ROOT the folders to search: the package, its tests, its docs.
For every class that ``bench.real_args`` counts as having example sizes only (or no figures),
this looks for calls of it by name without paramlens's reading, as a user searching the
project would:

- every ``Name(...)`` call in the Python files of ROOT that define the class or import its
  name (``from .vit import ViT``, ``from vit_pytorch import ViT``, ``import`` of its module
  then ``module.Name(...)``), with what encloses it (a class, a function, the module);
- every ``Name(`` in the Markdown and reST files and in those files' docstrings.

Each class then falls in one group:

- ``called nowhere``: no call, no documentation example, its name used nowhere else;
- ``named, never called by name``: its name is used but never called: passed as a value
  (``norm_layer=RmsNorm``, a registry) or checked (``isinstance``); a real build may
  still hold it, through that value;
- ``only inside classes``: every call is in another class's code, and that class (the
  parent) is itself example-only or without figures here, so the call's values are the
  parent's guesses;
- ``inside a real parent``: a call in a class built with real arguments (a branch its
  real builds do not take, such as a flag no build sets);
- ``elsewhere``: a call in a function, at module level, in a test, or in the documentation:
  a place paramlens might have read real arguments from. These are the ones to look at.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.real_args import categories


@dataclass
class Calls:
    """Where one class name is called."""

    in_classes: set[str] = field(default_factory=set)  # qualified parents
    elsewhere: list[str] = field(default_factory=list)  # "file:line (where)"
    named: list[str] = field(default_factory=list)  # named, not called: "file:line"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(source: str, module: str) -> bool:
    """``source`` is ``module`` or a package above it (dotted components, not prefixes)."""
    return module == source or module.startswith(f"{source}.")


def _refers(tree: ast.Module, name: str, module: str, exported: set[str]) -> set[str]:
    """The names under which ``tree`` may call the class ``name`` of ``module``: ``name``
    imported from that module, or from a package in ``exported`` (those whose
    ``__init__`` re-exports it), ``leaf.name`` after ``from package import leaf``, and
    ``alias.name`` for ``import module as alias``."""
    package, _, leaf = module.rpartition(".")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            relative = node.level > 0
            for alias in node.names:
                if alias.name == name and (
                    source == module
                    or source in exported
                    or (relative and source in (leaf, module))
                ):
                    found.add(alias.asname or name)
                if alias.name == leaf and (source == package or relative):
                    found.add(f"{alias.asname or leaf}.{name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module:
                    found.add(f"{alias.asname or module}.{name}")
    return found


def _exporters(
    files: dict[Path, ast.Module], modules: dict[Path, str], name: str, module: str
) -> set[str]:
    """The packages whose ``__init__`` imports ``name`` from ``module`` (a re-export)."""
    found = set()
    for path, tree in files.items():
        package = modules.get(path, "")
        if path.name != "__init__.py" or not _within(package, module):
            continue
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom) or all(a.name != name for a in node.names):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source == module:
                found.add(package)
    return found


def _callee(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _callee(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _calls_in(
    tree: ast.Module, names: set[str], module: str
) -> tuple[set[str], list[int], list[int]]:
    """(qualified classes whose code calls one of ``names``, lines of the other calls,
    lines that name it without calling it: ``norm_layer=RmsNorm``, ``isinstance(m, X)``).
    A call in a module-level function counts as in the classes of the module that call
    that function (MONAI's ``get_down_block()``, which only ``DiffusionModelUNet``
    calls), else as elsewhere."""
    in_classes: set[str] = set()
    others: list[int] = []
    named: list[int] = []
    in_functions: dict[str, list[int]] = defaultdict(list)  # function -> lines of calls
    callers: dict[str, set[str]] = defaultdict(set)  # callee name -> classes calling it

    def visit(node: ast.AST, owner: str | None, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner, func = owner, function
            if owner is None and function is None:
                if isinstance(child, ast.ClassDef):
                    inner = f"{module}.{child.name}"
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    func = child.name
            if (
                isinstance(child, (ast.Name, ast.Attribute))
                and _callee(child) in names
                and not (isinstance(node, ast.Call) and node.func is child)
            ):
                named.append(child.lineno)
            if isinstance(child, ast.Call):
                callee = _callee(child.func)
                if owner is not None:
                    callers[callee].add(owner)
                if callee in names:
                    if owner is not None:
                        in_classes.add(owner)
                    elif function is not None:
                        in_functions[function].append(child.lineno)
                    else:
                        others.append(child.lineno)
            visit(child, inner, func)

    visit(tree, None, None)
    for function, lines in in_functions.items():
        if callers.get(function):
            in_classes |= callers[function]
        else:
            others += lines
    return in_classes, others, named


def _docs(roots: list[Path]) -> dict[Path, str]:
    texts = {}
    for root in roots:
        for pattern in ("*.md", "*.rst"):
            for path in root.rglob(pattern):
                texts[path] = path.read_text(errors="replace")
    return texts


def _doc_refers(text: str, name: str, module: str, exported: set[str]) -> bool:
    """A documentation text whose imports may name the class ``name`` of ``module``."""
    leaf = module.rsplit(".", 1)[-1]
    for match in re.finditer(r"from\s+([\w.]+)\s+import\s+([^\n]+)", text):
        source, names = match.groups()
        if re.search(rf"\b{re.escape(name)}\b", names) and (source == module or source in exported):
            return True
        if re.search(rf"\b{re.escape(leaf)}\b", names) and _within(source, module):
            return True
    return re.search(rf"import\s+{re.escape(module)}\b", text) is not None


def find_calls(
    classes: dict[str, str], roots: list[Path], files: dict[Path, ast.Module]
) -> dict[str, Calls]:
    """Where each class (qualified name -> its name) is called in ``files`` and the docs."""
    found = {qualname: Calls() for qualname in classes}
    modules = {
        path: _module_name(path, root)
        for root in roots
        for path in files
        if path.is_relative_to(root)
    }
    docs = _docs(roots)
    for qualname, name in classes.items():
        home = qualname.rsplit(".", 1)[0]
        exported = _exporters(files, modules, name, home)
        call = re.compile(rf"\b{re.escape(name)}\(")
        for path, tree in files.items():
            module = modules[path]
            names = {name} if module == home else _refers(tree, name, home, exported)
            if not names:
                continue
            parents, lines, named = _calls_in(tree, names, module)
            found[qualname].in_classes |= parents - {qualname}
            found[qualname].elsewhere += [f"{path}:{line}" for line in lines]
            found[qualname].named += [f"{path}:{line}" for line in named]
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
                    doc = ast.get_docstring(node, clean=False) or ""
                    if ">>>" in doc and call.search(doc):
                        line = getattr(node, "lineno", 1)
                        found[qualname].elsewhere.append(f"{path}:{line} (docstring)")
        for path, text in docs.items():
            if call.search(text) and _doc_refers(text, name, home, exported):
                line = text.count("\n", 0, call.search(text).start()) + 1  # type: ignore[union-attr]
                found[qualname].elsewhere.append(f"{path}:{line} (docs)")
    return found


def _built_real(kind: str) -> bool:
    """Real figures of the class's own build (not only its instances in other models)."""
    return kind.startswith("real") and kind != "real: instances in a real model"


def _real_ancestor(qualname: str, found: dict[str, Calls], category: dict[str, str]) -> bool:
    """Some class above ``qualname`` (its parents' parents, through example-only classes)
    has real figures: a build of it holds this class's instances."""
    seen, todo = {qualname}, [qualname]
    while todo:
        for parent in found[todo.pop()].in_classes:
            if parent in seen:
                continue
            seen.add(parent)
            if category.get(parent, "none").startswith("real"):
                return True  # built real, or measured in a real model: ours is in it too
            if parent in found:
                todo.append(parent)
    return False


def sourceless(found: dict[str, Calls]) -> set[str]:
    """The classes no real build can reach: never called outside a class, never named as a
    value, and called only inside classes that are themselves such (a chain of blocks whose
    top class nothing calls), the largest such set. A parent that is not example-only (one
    without figures, or a real one) may be built some way: its children are not counted."""
    alone = {q for q, c in found.items() if not c.elsewhere and not c.named}
    while True:
        kept = {q for q in alone if found[q].in_classes <= alone}
        if kept == alone:
            return alone
        alone = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--list", action="store_true", help="name every class of each group")
    args = parser.parse_args()
    models = json.loads(args.result.read_text())["models"]
    category = categories(models)
    wanted = {q: q.rsplit(".", 1)[-1] for q, kind in category.items() if kind == "example"}
    files: dict[Path, ast.Module] = {}
    for root in args.roots:
        for path in root.rglob("*.py"):
            try:
                files[path] = ast.parse(path.read_text(errors="replace"))
            except SyntaxError:
                continue
    found = find_calls(
        wanted, [r.resolve() for r in args.roots], {p.resolve(): t for p, t in files.items()}
    )
    groups: dict[str, list[str]] = defaultdict(list)
    for qualname, calls in sorted(found.items()):
        if calls.elsewhere:
            group = "elsewhere"
        elif not calls.in_classes and calls.named:
            group = "named, never called by name"
        elif not calls.in_classes:
            group = "called nowhere"
        elif any(_built_real(category.get(p, "none")) for p in calls.in_classes):
            group = "inside a real parent"
        elif _real_ancestor(qualname, found, category):
            group = "inside a parent inside a real model"
        else:
            group = "only inside classes"
        detail = calls.elsewhere or sorted(calls.in_classes) or calls.named
        groups[group].append(f"{qualname}  {', '.join(map(str, detail[:3]))}")
    counts = Counter({g: len(v) for g, v in groups.items()})
    print(f"{args.result}: {len(wanted)} example-only classes: {dict(counts)}")
    print(f"  with no source of real arguments at all: {len(sourceless(found))}")
    for group, names in groups.items():
        if args.list or group not in {"called nowhere", "only inside classes"}:
            print(f"\n{group} ({len(names)}):")
            for line in names:
                print(f"  {line}")


if __name__ == "__main__":
    main()
