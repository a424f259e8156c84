"""Where a :class:`~paramlens.worker.protocol.ShapeFix` applies in source text.

Pure (stdlib ``ast`` only, no LSP types), so a unit test can call it directly: given
a file's text and the declaration line of the layer forward() choked on, find the one
argument to rewrite (``in_features`` of ``nn.Linear(256, 120)``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Span:
    """A stretch of source: 1-based lines, 0-based columns in characters (not bytes)."""

    line: int
    column: int
    end_line: int
    end_column: int


def char_column(line_text: str, byte_offset: int) -> int:
    """``ast`` columns count UTF-8 bytes; editors count characters."""
    return len(line_text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _value(node: ast.expr) -> int | None:
    """An argument's value if it is plain integer arithmetic (``64 * 12 * 12``)."""
    if isinstance(node, ast.Constant):
        return node.value if type(node.value) is int else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        return left - right if isinstance(node.op, ast.Sub) else left * right
    return None


def _argument(call: ast.Call, param: str) -> ast.expr | None:
    """The keyword argument ``param``, else the first positional one."""
    for keyword in call.keywords:
        if keyword.arg == param:
            return keyword.value
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return None


def argument_span(source: str, line: int, layer: str, param: str, old: int) -> Span | None:
    """The argument ``param`` of the call of ``layer`` (``nn.Linear``, ``Linear``) that
    spans 1-based ``line``; None if the text does not parse or has no such call.

    Several candidates (``nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))`` on one line):
    the one whose argument reads ``old``, else the innermost, else the first."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    candidates: list[tuple[tuple[bool, int, int, int], ast.expr]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _call_name(node) != layer:
            continue
        end = node.end_lineno or node.lineno
        if not node.lineno <= line <= end:
            continue
        argument = _argument(node, param)
        if argument is not None:
            rank = (_value(argument) != old, end - node.lineno, node.lineno, node.col_offset)
            candidates.append((rank, argument))
    if not candidates:
        return None
    argument = min(candidates, key=lambda c: c[0])[1]
    lines = _LINE_BREAK.split(source)  # as the parser counts lines (not str.splitlines)
    end_line = argument.end_lineno or argument.lineno
    end_col = argument.end_col_offset or 0
    return Span(
        argument.lineno,
        char_column(lines[argument.lineno - 1], argument.col_offset),
        end_line,
        char_column(lines[end_line - 1], end_col),
    )
