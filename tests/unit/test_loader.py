"""The worker's definitions-only filter: what a user's module may run when imported."""

import ast

from paramlens.worker.loader import definitions_only

SOURCE = '''
"""doc"""
import torch
from torch import nn
HIDDEN = 4 * 128
NAMES = dict(a=1)
LOG = open("log.txt", "w")
model = nn.Linear(2, 2)
CFG = Config(width=3)
print("training")
for epoch in range(10):
    pass
while True:
    pass
with open("x") as f:
    pass
try:
    import apex
except ImportError:
    apex = None
    print("no apex")
if TYPE_CHECKING:
    import numpy
if __name__ == "__main__":
    main()

@dataclass
class Config:
    width: int = 2

def helper():
    return nn.Linear(1, 1)
'''


def kept_source(source: str) -> tuple[str, list[int]]:
    tree, skipped = definitions_only(ast.parse(source))
    return ast.unparse(tree), skipped


def test_definitions_run_and_script_parts_do_not() -> None:
    kept, skipped = kept_source(SOURCE)
    for present in (
        "import torch",
        "HIDDEN = 4 * 128",
        "NAMES = dict(a=1)",
        "class Config",
        "def helper",
        "import apex",
        "apex = None",
        "import numpy",
        "CFG = Config(width=3)",
    ):
        assert present in kept, present
    for absent in (
        "log.txt",
        "model = nn.Linear",
        "training",
        "for epoch",
        "while True",
        "with open",
        "no apex",
        "main()",
    ):
        assert absent not in kept, absent
    assert skipped == [7, 8, 10, 11, 13, 15, 21, 24]


def test_an_emptied_block_still_compiles() -> None:
    kept, _ = kept_source("try:\n    print(1)\nexcept Exception:\n    pass\n")
    compile(kept, "<test>", "exec")
    assert "print" not in kept
