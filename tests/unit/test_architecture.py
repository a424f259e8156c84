"""The shape of the code: imports flow one way, privates stay home, the worker stays portable.

Every import in ``server/paramlens`` counts, wherever it is written (inside a function, under
``TYPE_CHECKING``): a late import that closes a circle is still a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "paramlens"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            yield target, names, node.lineno
            for each in names:  # `from . import loader`: the submodule itself
                if f"{target}.{each}" in known:
                    yield f"{target}.{each}", [], node.lineno


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for target, _, _ in imports(name, path, known):
            if target in known and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle_through_three_modules() -> None:
    # the check below is only as good as this: a circle of three, beside a clean chain
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_anywhere_in_the_package() -> None:
    edges = graph()
    assert len(edges) > 40 and edges["paramlens.worker.processes.child"]  # it read the code
    assert cycles(edges) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    found = modules()
    known = set(found)
    private = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {target}.{each}"
        for name, path in found.items()
        for target, names, line in imports(name, path, known)
        if target.startswith("paramlens")
        for each in names
        if each.startswith("_") and not each.startswith("__")
    ]
    assert private == []


def in_worker(name: str) -> bool:
    return name == "paramlens.worker" or name.startswith("paramlens.worker.")


@pytest.mark.parametrize("name", sorted(filter(in_worker, modules())))
def test_the_worker_imports_only_the_standard_library_torch_and_itself(name: str) -> None:
    # it runs in the user's interpreter, where paramlens is not installed (see BOOTSTRAP)
    path = modules()[name]
    outside = [
        f"{line}: {target}"
        for target, _, line in imports(name, path, set(modules()))
        if not in_worker(target)
        and target.partition(".")[0] not in {*sys.stdlib_module_names, "torch", "__future__"}
    ]
    assert outside == []


def test_no_source_file_of_the_package_is_ignored_by_git() -> None:
    # `build/` in .gitignore once hid the worker's build/ package: every test passed here,
    # and a fresh clone had no paramlens.worker.build at all
    repo = PACKAGE.parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout (an sdist)")
    ignored = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", str(PACKAGE)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [p for p in ignored if p.endswith(".py")] == []


# paramlens/__init__.py's order: a package imports only those before it
LAYERS = ["worker", "config", "analysis", "render", "engine", "lsp", "cli", "__main__"]


def test_packages_import_only_the_layers_below_them() -> None:
    def layer(module: str) -> int:
        part = module.split(".")[1] if module.count(".") else ""
        return LAYERS.index(part) if part else -1  # paramlens/__init__: the version only

    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if layer(source) != layer(target) and layer(source) < layer(target)
    ]
    assert upward == []


def test_the_command_line_imports_no_parser_of_documents_or_configs_at_start() -> None:
    """A warm `paramlens annotate` reads a saved answer and parses nothing: markdown-it,
    PyYAML and doctest (35 ms of its 0.2 s) are imported where a file is parsed."""
    code = (
        "import sys, paramlens.cli.commands, paramlens.lsp.server\n"
        "print(sorted({'markdown_it', 'yaml', 'doctest'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
