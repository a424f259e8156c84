"""An edited file is parsed once per text (issue 21: the server's work per keystroke in a
4,900-line file), and the source segments read from lines split once are the parser's own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paramlens.analysis import calls
from paramlens.analysis.arguments import script_instances
from paramlens.analysis.reading import source_lines, source_segment
from paramlens.analysis.workspace import scan

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
