"""The worker's loader: a workspace module runs as Python would, minus its script part."""

import ast
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from paramlens.worker.loader import (
    ModuleRunner,
    UnavailableNameError,
    code_objects,
    definitions_only,
    split_top_level,
)

SOURCE = '''
"""doc"""
import torch
from torch import nn
HIDDEN = 4 * 128
to_2tuple = _ntuple(2)
parser.add_argument("--lr", type=float)
args = parser.parse_args()
model = nn.Linear(2, 2)
print("training")
main()
register_model(Net)
__all__.append("Net")
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
if use_accel:
    device = "cuda"
    train()
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


def test_what_makes_a_file_a_script_is_skipped_and_nothing_else() -> None:
    kept, skipped = kept_source(SOURCE)
    for present in (
        "import torch",
        "HIDDEN = 4 * 128",
        "to_2tuple = _ntuple(2)",  # timm: a computed module-level name
        "parser.add_argument('--lr', type=float)",
        "args = parser.parse_args()",
        "model = nn.Linear(2, 2)",  # runs on the meta device in the worker
        "register_model(Net)",
        "__all__.append('Net')",
        "import apex",
        "apex = None",
        "if use_accel:",
        "device = 'cuda'",
        "class Config",
        "def helper",
    ):
        assert present in kept, present
    for absent in ("training", "main()", "for epoch", "while True", "with open", "no apex"):
        assert absent not in kept, absent
    assert "train()" not in kept
    assert skipped == [10, 11, 14, 16, 18, 24, 27, 28]


def test_definitions_under_catch_warnings_are_kept_and_a_job_inside_is_not() -> None:
    # monai's dints.py defines its TorchScript interfaces inside this block
    kept, skipped = kept_source(
        "import warnings\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    class CellInterface(nn.Module):\n"
        "        pass\n"
        "    train()\n"
        "with torch.no_grad():\n"
        "    evaluate(model)\n"
    )
    assert "class CellInterface" in kept
    assert "warnings.simplefilter('ignore')" in kept  # a bare call, but a declaring one
    assert "train()" not in kept
    assert "evaluate(model)" not in kept
    assert skipped == [6, 8]


def test_a_loop_that_fills_module_tables_runs_and_a_training_loop_does_not() -> None:
    kept, skipped = kept_source(
        "for k in ('a', 'b'):\n"  # timm's byobnet: derived configs
        "    CFGS[k + '_gap'] = replace(CFGS[k], head='gap')\n"
        "for a in ACTS:\n"
        "    a.setdefault('hardswish', a.get('hard_swish'))\n"
        "for epoch in range(10):\n"
        "    loss = train_one_epoch(model)\n"
        "    losses.append(loss)\n"
        "for batch in loader:\n"
        "    optimizer.zero_grad()\n"
        "for i in range(3):\n"
        "    print(i)\n"
    )
    assert "CFGS[k + '_gap']" in kept and "a.setdefault" in kept
    assert skipped == [5, 8, 10]


def test_an_emptied_block_still_compiles() -> None:
    kept, _ = kept_source("try:\n    print(1)\nexcept Exception:\n    pass\n")
    compile(kept, "<test>", "exec")
    assert "print" not in kept


def run(source: str, runner: ModuleRunner | None = None) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "user_module"}
    (runner or ModuleRunner()).run(source, "/ws/user_module.py", namespace)
    return namespace


def test_a_failing_statement_does_not_sink_the_file_and_its_names_say_why() -> None:
    runner = ModuleRunner()
    namespace = run(
        "import math\n"
        "from not_installed_anywhere import transforms\n"
        "SIZE = transforms.Resize(3)\n"
        "def later():\n"
        "    return SIZE\n"
        "WIDTH = math.floor(4.5)\n",
        runner,
    )
    assert namespace["WIDTH"] == 4  # statements after the failures still ran
    later = namespace["later"]
    assert callable(later)
    with pytest.raises(UnavailableNameError) as info:
        getattr(later(), "anything")  # noqa: B009 (the attribute access is the test)
    message = str(info.value)
    assert "SIZE is unavailable" in message and "user_module.py:3" in message
    assert "transforms is unavailable" in message  # the root cause, line 2, is named too
    assert [(f.line, f.message.split(":")[0]) for f in runner.failures] == [
        (2, "ModuleNotFoundError"),
        (3, "UnavailableNameError"),
    ]


def test_a_placeholder_cannot_be_subclassed_or_tested_silently() -> None:
    namespace = run("import not_installed_anywhere as lib\nclass A(lib.Base):\n    pass\n")
    with pytest.raises(UnavailableNameError, match=r"A is unavailable: .*user_module.py:2"):
        bool(namespace["A"])


def test_exit_at_import_time_is_a_failed_statement_not_a_dead_worker() -> None:
    namespace = run("import sys\nargs = sys.exit(2)\nOK = 1\n")
    assert namespace["OK"] == 1
    assert "SystemExit" in repr(namespace["args"])


def test_future_annotations_apply_to_every_statement() -> None:
    namespace = run(
        "from __future__ import annotations\n"
        "def f(x: DefinedLater) -> DefinedLater:\n"
        "    return x\n"
        "class DefinedLater:\n"
        "    pass\n"
    )
    assert not isinstance(namespace["f"], type(None))
    assert getattr(namespace["f"], "__annotations__", {})["x"] == "DefinedLater"


LATE_FUTURE = (  # a notebook's module: the import in a later cell
    "class Before:\n"
    "    def copy(self) -> Undefined1: ...\n"
    "from __future__ import annotations\n"
    "class After:\n"
    "    def copy(self) -> Undefined2: ...\n"
)


@pytest.mark.parametrize("split", [True, False], ids=["split", "whole"])
def test_a_future_import_after_other_code_applies_from_there_on(
    split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as a kernel runs a notebook, statement by statement: an annotation above the import
    # is evaluated (NameError), one below is kept as text
    if not split:
        monkeypatch.setattr("paramlens.worker.loader.split_top_level", lambda source, path: None)
    runner = ModuleRunner()
    namespace = run(LATE_FUTURE, runner)
    assert namespace["After"].copy.__annotations__ == {"return": "Undefined2"}
    assert [(f.line, f.message) for f in runner.failures] == [
        (1, "NameError: name 'Undefined1' is not defined")
    ]


def test_the_code_of_a_module_with_a_late_future_import_is_found(tmp_path: Path) -> None:
    # Python does not compile it whole; a notebook's statements compile one at a time
    path = tmp_path / "nb.ipynb"
    path.write_text(LATE_FUTURE)
    names = {code.co_name for code, _ in code_objects(str(path))}
    assert {"Before", "After", "copy"} <= names


@pytest.fixture
def alarm_raises_timeout() -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError("alarm")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_slow_statement_is_cut_short_and_the_rest_of_the_file_runs(
    alarm_raises_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("paramlens.worker.loader.STATEMENT_BUDGET_S", 0.2)
    namespace = run("import time\nLOSSES = time.sleep(30)\nDONE = True\n")
    assert namespace["DONE"] is True
    assert "ran longer than 0.2 s" in repr(namespace["LOSSES"])


def test_the_whole_import_running_out_of_time_still_stops_it(
    alarm_raises_timeout: None,
) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.2)  # the job's own deadline, shorter than a statement
    with pytest.raises(TimeoutError):
        run("import time\nX = time.sleep(30)\nY = 1\n")
    # nothing is left armed: a second alarm would strike wherever the first one's handler is
    # (it struck in pytest's own code, or in the importing file's line, on slower machines)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_timeout_the_code_raises_itself_is_a_failed_statement(
    alarm_raises_timeout: None,
) -> None:
    namespace = run(
        "def connect():\n    raise TimeoutError('no server')\nCLIENT = connect()\nY = 1\n"
    )
    assert namespace["Y"] == 1
    assert "TimeoutError: no server" in repr(namespace["CLIENT"])


def test_an_import_cut_short_by_the_deadline_leaves_no_placeholders(
    alarm_raises_timeout: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the imported module is slow as a whole, each of its statements within budget: the
    # importing statement must not bind placeholders for a module the deadline cut short
    (tmp_path / "slowmod.py").write_text("import time\ntime.sleep(30)\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(TimeoutError):
        run("from slowmod import X\nY = 1\n")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


TRICKY = '''"""A module docstring whose lines start in column 0:
main()
for epoch in range(10):
"""
from __future__ import annotations
import os; main()
RAN = []
def main():
    RAN.append("main")
TEMPLATE = """
def not_a_function():
class NotAClass:
"""
WIDTHS = [
64,
128]
TOTAL = 1 + \\
2
@staticmethod
def decorated(x: Later) -> Later:
    return x
if os.sep == "/":
    SEP = "slash"
else:
    SEP = "other"
try:
    import not_installed_anywhere
except ImportError:
    not_installed_anywhere = None
x = 1; main()
BROKEN = missing_name + 1
class Later:
    pass
'''


def test_a_module_split_at_its_statements_runs_as_the_whole_parsed_module_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chunks = split_top_level(TRICKY, "/ws/user_module.py")
    assert chunks is not None  # the quick path is taken, not the fallback
    assert any(c.code is not None and "def main" in c.text for c in chunks)
    split_runner = ModuleRunner()
    split = run(TRICKY, split_runner)
    monkeypatch.setattr("paramlens.worker.loader.split_top_level", lambda source, path: None)
    whole_runner = ModuleRunner()
    whole = run(TRICKY, whole_runner)

    def plain(namespace: dict[str, object]) -> dict[str, str]:
        return {k: repr(v) for k, v in namespace.items() if k != "__builtins__"}

    assert plain(split).keys() == plain(whole).keys()
    for name in ("RAN", "TEMPLATE", "WIDTHS", "TOTAL", "SEP", "x", "not_installed_anywhere"):
        assert plain(split)[name] == plain(whole)[name], name
    assert split["RAN"] == [] and split["WIDTHS"] == [64, 128] and split["TOTAL"] == 3
    assert getattr(split["decorated"], "__annotations__", {})["x"] == "Later"
    # the same failure, on the same line
    assert split_runner.failures == whole_runner.failures
    assert [f.line for f in split_runner.failures] == [31]  # BROKEN = missing_name + 1


@pytest.mark.parametrize(
    "source",
    [
        "X = 1\ndef f(:\n    pass\nY = 2\n",
        "X = (1,\nY = 2\n",
        "  X = 1\nY = 2\n",  # indented first line
        'X = """never closed\nY = 2\n',
    ],
)
def test_invalid_source_fails_as_python_says(source: str) -> None:
    with pytest.raises(SyntaxError) as python:
        ast.parse(source, "/ws/user_module.py")
    with pytest.raises(SyntaxError) as ours:
        run(source)
    assert (type(ours.value), ours.value.lineno) == (type(python.value), python.value.lineno)
