"""The worker runs in interpreters we do not control: Python 3.10+, stdlib + torch only."""

import ast
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "server/paramlens/worker"
ALLOWED_TOP_LEVEL = set(sys.stdlib_module_names) | {"torch", "__future__"}


@pytest.mark.parametrize("path", sorted(WORKER.rglob("*.py")), ids=lambda p: p.name)
def test_worker_modules_parse_as_python_310_and_import_only_stdlib_and_torch(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path), feature_version=(3, 10))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED_TOP_LEVEL, imported - ALLOWED_TOP_LEVEL
