"""Words and shapes the worker's forward() pass reports."""

from pathlib import Path
from typing import Any

import torch
from paramlens.cli import input_expression
from paramlens.worker.forward.counters import shape_text
from paramlens.worker.forward.explain import cpu_wording


def test_meta_wording_becomes_the_cpu_wording_users_search_for() -> None:
    meta = "RuntimeError: a and b must have same reduction dim, but got [1, 400] X [256, 120]."
    assert cpu_wording(meta) == (
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x400 and 256x120)."
    )
    with torch.device("cpu"):  # the wording it copies
        try:
            torch.nn.Linear(256, 120)(torch.randn(1, 400))
        except RuntimeError as exc:
            assert "mat1 and mat2 shapes cannot be multiplied (1x400 and 256x120)" in str(exc)


def test_shapes_of_tensors_tuples_and_dicts() -> None:
    x = torch.empty(1, 3, device="meta")
    assert shape_text(x) == "[1, 3]"
    assert shape_text((x, [x, x])) == "([1, 3], ([1, 3], [1, 3]))"
    assert shape_text({"logits": x}) == "{logits: [1, 3]}"
    assert shape_text(3) == "int"


def test_input_flags_as_torchinfo_takes_input_size() -> None:
    assert input_expression(["1,3,224,224"], "float32") == "torch.randn(1, 3, 224, 224)"
    assert input_expression(["8"], "long") == "torch.randint(0, 2, (8,), dtype=torch.long)"
    assert input_expression(["1,16", "1,16"], "bfloat16") == (
        "(torch.randn(1, 16, dtype=torch.bfloat16), torch.randn(1, 16, dtype=torch.bfloat16))"
    )
    assert input_expression(["torch.zeros(2, 2)"], "float32") == "torch.zeros(2, 2)"


def _imported(source: Path) -> Any:
    """The module of the file ``source``, imported under its own name (not kept in
    ``sys.modules``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(source.stem, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_line_tracing_sees_the_users_frames_and_not_torchs_kernels(tmp_path) -> None:
    # a tracer is called on every Python call, and on meta torch's kernels are Python:
    # tracing stays off inside each op, and the user's lines still get their shapes
    import sys

    from paramlens.worker.forward.line_shapes import LineShapes

    source = tmp_path / "user_model.py"
    source.write_text(
        "import torch.nn.functional as F\n\n"
        "def forward(x, w):\n"
        "    y = F.layer_norm(x, (8,))\n"
        "    return F.linear(y, w)\n"
    )
    module = _imported(source)
    x, w = torch.empty(2, 8, device="meta"), torch.empty(4, 8, device="meta")

    def frames_seen(shapes: LineShapes, untraced_ops: bool) -> set[str]:
        """The frames of torch's meta kernels that the tracer was called for."""
        seen: set[str] = set()
        trace = shapes.trace

        def spy(frame, event, arg):  # type: ignore[no-untyped-def]
            seen.add(frame.f_code.co_filename)
            return trace(frame, event, arg)

        shapes.trace = spy  # type: ignore[method-assign]
        if untraced_ops:
            with shapes.tracing():
                module.forward(x, w)
        else:
            sys.settrace(spy)
            try:
                module.forward(x, w)
            finally:
                sys.settrace(None)
        in_torch = {f.split("/torch/")[-1] for f in seen if "/torch/" in f}
        return {f for f in in_torch if f.startswith(("_refs/", "_prims", "_meta_reg", "_decomp/"))}

    everywhere = LineShapes(lambda f: f == str(source))
    assert frames_seen(everywhere, untraced_ops=False)  # torch's kernels ran, traced
    shapes = LineShapes(lambda f: f == str(source))
    assert frames_seen(shapes, untraced_ops=True) == set()
    assert [(s.line, s.name, s.shapes) for s in shapes.result()] == [
        (4, "y", ("[2, 8]",)),
        (5, "return", ("[2, 4]",)),
    ]


def test_a_traced_function_is_parsed_alone_not_its_whole_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """forward() passes through a few functions of big files (transformers'
    modeling_utils.py: thousands of lines); each job's child parsed each whole file, a
    quarter of LLaMA-7B's forward() on meta. A function's own lines are parsed, and its
    figures stand at the file's lines and columns (a decorated method, indented)."""
    import ast

    from paramlens.worker.forward import line_shapes
    from paramlens.worker.forward.line_shapes import LineShapes

    filler = "".join(f"def unused_{i}(a):\n    b = a + {i}\n    return b\n\n\n" for i in range(300))
    source = tmp_path / "big_model.py"
    source.write_text(
        "import functools\n\nimport torch\n\n\n" + filler + "class Net:\n"
        "    @functools.lru_cache(None)\n"
        "    def scale(self):\n"
        "        return 2\n\n"
        "    @staticmethod\n"
        "    def forward(x):\n"
        "        y, z = x * 2, x.sum(0)\n"
        "        w: torch.Tensor = y.t()\n"
        "        return w * sum(1 for _ in range(1))\n"
    )
    module = _imported(source)
    parsed: list[int] = []
    parse = ast.parse

    def counted(text, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(len(str(text).splitlines()))
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    for name in ("_targets", "_file_targets"):  # parsed before by another test: again
        cached = getattr(line_shapes, name, None)
        if cached is not None:
            cached.cache_clear()
    shapes = LineShapes(lambda f: f == str(source))
    with shapes.tracing():
        module.Net.forward(torch.empty(3, 4, device="meta"))
    lines = source.read_text().splitlines()
    at = next(i for i, line in enumerate(lines, 1) if "y, z = x * 2" in line)
    assert [(s.line - at, s.column, s.name, s.shapes) for s in shapes.result()] == [
        (0, lines[at - 1].index("y,") + 1, "y", ("[3, 4]",)),
        (0, lines[at - 1].index("z =") + 1, "z", ("[4]",)),
        (1, lines[at].index("w:") + 1, "w", ("[4, 3]",)),
        (2, len("        return"), "return", ("[4, 3]",)),
    ]
    assert parsed and max(parsed) < 10  # forward()'s lines, not the file's 1,500 (nor for
    # the generator expression's frame: it runs no statement)
