"""An edited file is parsed once per text (issue 21: the server's work per keystroke in a
4,900-line file), and the source segments read from lines split once are the parser's own."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest
from paramlens.analysis import calls, docs
from paramlens.analysis import workspace as workspace_module
from paramlens.analysis.arguments import script_instances
from paramlens.analysis.reading import source_lines, source_segment
from paramlens.analysis.workspace import Workspace, scan
from paramlens.config import Settings
from paramlens.engine.engine import Engine

SOURCE = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.fc = nn.Linear(width, width)


net = Net(
    width=16,
).to("cpu")
x = torch.randn(2, 16)
y = net(x)
"""


def test_an_edited_file_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.py"
    path.write_text(SOURCE)
    scan(tmp_path)  # the file as opened
    parsed: list[str] = []
    parse = ast.parse

    def counted(source: str | bytes, filename: str = "<unknown>", *args, **kwargs):  # type: ignore[no-untyped-def]
        if filename == str(path):
            parsed.append(filename)
        return parse(source, filename, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    edited = SOURCE.replace("width=16", "width=32")
    workspace = scan(tmp_path, {str(path): edited})
    info = workspace.files[str(path)]
    instances = script_instances(info)
    sites = calls.call_sites(info)
    inputs = calls.model_calls(info)
    assert [i.call for i in instances if i.variable == "net"] == ["Net(\n    width=32,\n)"]
    assert any(s.kwargs == (("width", 32),) for s in sites)
    assert [m.input for m in inputs] == ["torch.randn(2, 16)"]
    assert len(parsed) == 1  # by the scan; the others took its tree
    script_instances(info)
    assert len(parsed) == 1


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_segments_are_the_parsers(newline: str) -> None:
    text = (
        "a = f(1,\n      'é', [x for x in\n  range(3)])\n"
        "b = 'ünïcode' + g(\"\\u00e9\",\n  2)  # ẞ\n"
        "\x0cc = h(1, [\x0c2])\n"  # a form feed is no line end for the parser
        "e = (k\n)\n"
    ).replace("\n", newline)
    lines = source_lines(text)
    nodes = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.expr)]
    assert len(nodes) > 20
    for node in nodes:
        assert source_segment(lines, node) == ast.get_source_segment(text, node)


SCOPES = """import torch
from torch import nn
from torch import randn as noise


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)


def make():
    return Net()


def check():
    def inner():
        x = noise(2, 8)
        net = Net()
        return net(x)

    return Net()(torch.zeros(3, 8)), inner


if torch.cuda.is_available() or True:

    def guarded():
        m = Net()
        return m(torch.ones(1, 8))
"""


def test_model_calls_are_looked_for_only_in_scopes_that_make_a_tensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call of a model with literal tensors, in any scope (a nested function, one under
    an ``if``, a tensor function imported under another name); a scope that makes no
    tensor is not walked (timm's vision_transformer.py: 209 of its 216)."""
    (tmp_path / "model.py").write_text(SCOPES)
    info = scan(tmp_path).files[str(tmp_path / "model.py")]
    walked: list[int] = []
    walk = ast.walk

    def counted(node: ast.AST):  # type: ignore[no-untyped-def]
        walked.append(getattr(node, "lineno", 0))
        return walk(node)

    monkeypatch.setattr(ast, "walk", counted)
    found = calls.model_calls(info)
    assert [(m.line, m.input) for m in found] == [
        (29, "torch.ones(1, 8)"),  # the module's statements, the ``if`` included
        (22, "torch.zeros(3, 8)"),
        (20, "torch.randn(2, 8)"),
        (29, "torch.ones(1, 8)"),  # its own scope
    ]
    make = SCOPES.splitlines().index("def make():") + 1
    assert make + 1 not in walked  # its body makes no tensor


DOCUMENTED = '''import torch
from torch import nn


class Net(nn.Module):
    """A net.

    >>> from pkg.other import Block
    >>> Net(width=4)
    >>> Block(dim=3)
    """

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)
'''

OTHER = """from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int = 8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
"""


def test_doc_examples_are_read_again_only_when_what_they_name_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit elsewhere in a big package reads the workspace again; a file's docstring
    examples are not read again (transformers: 0.9 s of each job), unless the edit
    changes what they build (a class they name appears or goes)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text(DOCUMENTED)
    (pkg / "other.py").write_text(OTHER)
    read: list[str] = []
    real = docs._read_blocks

    def counted(file: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        read.append(Path(file).name)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(docs, "_read_blocks", counted)

    def targets(texts: dict[str, str]) -> list[str]:
        return [e.build.target for e in docs.doc_examples(scan(tmp_path, texts))]

    assert targets({}) == ["pkg.net.Net", "pkg.other.Block"]
    assert read == ["net.py"]
    other = str(pkg / "other.py")
    # a default edited: the examples stand as read
    assert targets({other: OTHER.replace("dim: int = 8", "dim: int = 16")}) == [
        "pkg.net.Net",
        "pkg.other.Block",
    ]
    assert read == ["net.py"]
    # Block renamed: the example naming it builds nothing now
    assert targets({other: OTHER.replace("class Block", "class Brick")}) == ["pkg.net.Net"]
    assert read == ["net.py", "net.py"]


def test_two_files_opened_together_read_the_workspace_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their analyses scan side by side: the files are read once, and both workspaces hold
    the same readings (call sites parsed for the one are there for the other: transformers'
    first edit after opening two files parsed them all again)."""
    for number in range(30):
        (tmp_path / f"layer{number}.py").write_text(SOURCE.replace("Net", f"Net{number}"))
    opened = {str(tmp_path / "layer0.py"): SOURCE, str(tmp_path / "layer1.py"): SOURCE}
    read: list[str] = []
    original = workspace_module.read_file

    def slow(path: Path, text: str) -> object:
        read.append(str(path))
        time.sleep(0.002)  # the two scans overlap
        return original(path, text)

    monkeypatch.setattr(workspace_module, "read_file", slow)
    engine = Engine(lambda _: Settings(python="stand-in"))

    async def both() -> list[Workspace]:
        return await asyncio.gather(*(engine.read_workspace(tmp_path, opened) for _ in "ab"))

    first, second = asyncio.run(both())
    assert sorted(read) == sorted(set(read)) and len(read) == 30
    assert all(second.files[p] is info for p, info in first.files.items())


def test_a_workspace_read_the_same_again_is_the_same_workspace(tmp_path: Path) -> None:
    """An edit's scans (at the edit, then each open file's analysis) give the workspace
    read before when every file reads the same, with what it worked out on demand; any
    file read anew (a buffer's text, a file changed on disk) gives a new one."""
    model = tmp_path / "model.py"
    model.write_text(SOURCE)
    (tmp_path / "other.py").write_text(SOURCE.replace("Net", "Other"))
    engine = Engine(lambda _: Settings(python="stand-in"))
    first = engine.scan(tmp_path, {str(model): SOURCE})
    assert engine.scan(tmp_path, {str(model): SOURCE}) is first
    edited = engine.scan(tmp_path, {str(model): SOURCE.replace("width=16", "width=32")})
    assert (
        edited is not first
        and edited.files[str(tmp_path / "other.py")] is first.files[str(tmp_path / "other.py")]
    )
    (tmp_path / "other.py").write_text(SOURCE.replace("Net", "Changed"))
    changed = engine.scan(tmp_path, {str(model): SOURCE.replace("width=16", "width=32")})
    assert changed is not edited and any(c.name == "Changed" for c in changed.classes.values())


def test_a_job_is_made_once_per_workspace_and_text(tmp_path: Path) -> None:
    """The jobs an edit's reading made are those its analyses ask for again (the same
    workspace, texts and arguments); another text of an open file makes another job, and
    so does a change of the files read beside the Python ones (a README's example)."""
    model = tmp_path / "model.py"
    model.write_text(SOURCE)
    engine = Engine(lambda _: Settings(python="stand-in"))
    settings = Settings(python="stand-in")

    def job_of(workspace: Workspace, texts: dict[str, str]) -> object:
        return engine.job_for(
            str(model), workspace, settings, texts, False, "classes", {"Net"}, True
        )

    edited = {str(model): SOURCE.replace("width=16", "width=32")}
    workspace = engine.scan(tmp_path, edited)
    job = engine.job_for(str(model), workspace, settings, edited, False, "classes", {"Net"}, True)
    assert job is not None and job.staged and [c.name for c in job.classes] == ["Net"]
    assert job_of(engine.scan(tmp_path, edited), edited) is job
    assert engine.job_for(str(model), workspace, settings, edited) is not job  # other arguments
    other = {str(model): SOURCE.replace("width=16", "width=48")}
    newer = engine.scan(tmp_path, other)
    made = job_of(newer, other)
    assert made != job
    (tmp_path / "README.md").write_text("```python\nNet(width=64)\n```\n")
    assert engine.scan(tmp_path, other) is newer  # its Python files read the same
    assert job_of(newer, other) is not made  # the README is read again: the job made again
