"""Where a quick fix edits: the pure ``argument_span`` behind the code action (no server)."""

from __future__ import annotations

import pytest
from paramlens.lsp.fixes import argument_span


def replaced(source: str, line: int, layer: str, param: str, old: int, new: int) -> str | None:
    """``source`` with the argument ``argument_span`` finds replaced by ``new``."""
    span = argument_span(source, line, layer, param, old)
    if span is None:
        return None
    lines = source.split("\n")
    assert span.line == span.end_line
    text = lines[span.line - 1]
    lines[span.line - 1] = text[: span.column] + str(new) + text[span.end_column :]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("source", "layer", "param", "old", "expected"),
    [
        (
            "self.fc1 = nn.Linear(256, 120)",
            "Linear",
            "in_features",
            256,
            "self.fc1 = nn.Linear(400, 120)",
        ),
        (  # the keyword wins over the first positional argument
            "nn.Conv2d(kernel_size=3, in_channels=32, out_channels=64)",
            "Conv2d",
            "in_channels",
            32,
            "nn.Conv2d(kernel_size=3, in_channels=400, out_channels=64)",
        ),
        (  # an expression is replaced whole
            "self.fc = Linear(16 * 5 * 5, 120)",
            "Linear",
            "in_features",
            400,
            "self.fc = Linear(400, 120)",
        ),
        (  # two candidates on one line: the one that reads `old`
            "nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))",
            "Linear",
            "in_features",
            8,
            "nn.Sequential(nn.Linear(4, 8), nn.Linear(400, 2))",
        ),
        (  # columns are characters, not UTF-8 bytes
            "self.größe = nn.Linear(256, 120)  # ü",
            "Linear",
            "in_features",
            256,
            "self.größe = nn.Linear(400, 120)  # ü",
        ),
    ],
)
def test_the_argument_to_rewrite(
    source: str, layer: str, param: str, old: int, expected: str
) -> None:
    assert replaced(source, 1, layer, param, old, 400) == expected


def test_a_call_over_several_lines_is_found_from_any_of_them() -> None:
    source = "x = 1\nnorm = nn.LayerNorm(\n    normalized_shape=64,\n    eps=1e-5,\n)\n"
    for line in (2, 3, 4):
        assert replaced(source, line, "LayerNorm", "normalized_shape", 64, 128) == (
            source.replace("=64", "=128")
        )


@pytest.mark.parametrize(
    ("source", "layer"),
    [
        ("self.fc = nn.Linear(256, 120", "Linear"),  # does not parse
        ("self.fc = nn.Linear(256, 120)", "Conv2d"),  # no such layer on the line
        ("self.fc = nn.Linear(*sizes)", "Linear"),  # nothing to rewrite
        ("self.fc = nn.Linear()", "Linear"),
    ],
)
def test_no_span_when_there_is_nothing_safe_to_edit(source: str, layer: str) -> None:
    assert argument_span(source, 1, layer, "in_features", 256) is None


def test_only_the_declaration_line_counts() -> None:
    source = "a = nn.Linear(3, 4)\nb = nn.Linear(5, 6)\n"
    assert (
        replaced(source, 2, "Linear", "in_features", 9, 7)
        == "a = nn.Linear(3, 4)\nb = nn.Linear(7, 6)\n"
    )
