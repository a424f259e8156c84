"""Discovery reads any file of the workspace in the server process: bounded and per file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from paramlens.analysis import reading
from paramlens.analysis.model import FileInfo
from paramlens.analysis.workspace import scan

MODEL = "from torch import nn\nD = 4 * 8\nclass Net(nn.Module):\n    pass\n"


def models(root: Path) -> set[str]:
    return {q.rpartition(".")[2] for q in scan(root).module_classes}


@pytest.mark.parametrize(
    "source",
    [
        "X = " + " + ".join(["1"] * 5000) + "\n",  # RecursionError in the parser
        "X = [0] * 2**40\nY = 'ab' * 2**40\nZ = (1,) * 2**40\n",  # MemoryError
        "A = 10**63\nB = A**63\nC = B**63\nD = C**63\nE = D**63\n",  # minutes of CPU
        "A = 10**63 * 10**63 * 10**63 * 10**63 * 10**63 * 10**63 * 10**63 * 10**63\n" * 50,
        "S = '%0999999999d' % 1\n",
        "L = [" + "[" * 200 + "]" * 200 + "]\n",
    ],
    ids=["long-sum", "huge-repeat", "power-tower", "many-products", "format", "deep"],
)
def test_hostile_constants_cost_little_and_leave_other_files_alone(
    tmp_path: Path, source: str
) -> None:
    (tmp_path / "hostile.py").write_text(source + MODEL.replace("Net", "Hostile"))
    (tmp_path / "model.py").write_text(MODEL)
    started = time.perf_counter()
    workspace = scan(tmp_path)
    assert time.perf_counter() - started < 2
    assert "model.Net" in workspace.module_classes
    assert workspace.files[str(tmp_path / "model.py")].constants["D"] == 32


def test_folding_still_computes_model_dimensions(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "N = 2**10\nH = N * 4 // 2\nK = (3, 3)\nL = [N] * 4\nF = 2**0.5\nB = -N + 1\n"
    )
    constants = scan(tmp_path).files[str(tmp_path / "m.py")].constants
    assert constants == {
        "N": 1024,
        "H": 2048,
        "K": (3, 3),
        "L": [1024] * 4,
        "F": 2**0.5,
        "B": -1023,
    }


def test_a_bug_reading_one_file_is_reported_on_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.py").write_text(MODEL.replace("Net", "Bad"))
    (tmp_path / "model.py").write_text(MODEL)
    real = reading.read_file

    def read_file(path: Path, text: str) -> FileInfo:
        if path.name == "bad.py":
            raise ValueError("boom")
        return real(path, text)

    monkeypatch.setattr("paramlens.analysis.workspace.read_file", read_file)
    workspace = scan(tmp_path)
    assert "model.Net" in workspace.module_classes
    error = workspace.files[str(tmp_path / "bad.py")].syntax_error
    assert error is not None and "ValueError: boom" in error[0]


def test_a_latin1_file_with_a_coding_line_is_analysed(tmp_path: Path) -> None:
    source = "# -*- coding: latin-1 -*-\n" + MODEL + "NAME = 'caf\u00e9'\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    workspace = scan(tmp_path)
    info = workspace.files[str(tmp_path / "latin.py")]
    assert info.syntax_error is None
    assert info.constants["NAME"] == "caf\u00e9"
    assert "latin.Net" in workspace.module_classes


def test_an_undeclared_non_utf8_file_is_a_clear_error_on_its_line(tmp_path: Path) -> None:
    source = MODEL + "NAME = 'caf\u00e9'\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    info = scan(tmp_path).files[str(tmp_path / "latin.py")]
    assert info.syntax_error is not None
    message, line = info.syntax_error
    assert line == 5
    assert "not valid utf-8" in message and "coding" in message


def test_a_nul_byte_is_reported_on_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "nul.py").write_text(MODEL + "x = 1\n\0\n")
    assert scan(tmp_path).files[str(tmp_path / "nul.py")].syntax_error == (
        "SyntaxError: source code string cannot contain null bytes",
        6,
    )


def test_an_oversized_file_is_a_per_file_error_not_a_parse(tmp_path: Path) -> None:
    line = "x = 1  # " + "." * 90 + "\n"
    (tmp_path / "big.py").write_text(MODEL + line * (11 * 2**20 // len(line)))
    started = time.perf_counter()
    info = scan(tmp_path).files[str(tmp_path / "big.py")]
    assert time.perf_counter() - started < 1
    assert info.syntax_error is not None
    assert "skips files over 1 MB (this one: 11.0 MB)" in info.syntax_error[0]
    assert info.words() == frozenset()


def test_parsed_trees_kept_are_bounded_by_their_source(tmp_path: Path) -> None:
    """Each keystroke in a big file makes a version; the trees kept for the versions asked
    about last take at most ~1 MB of source between them (an AST is ~37x its text), and
    the newest is kept: it is asked about next."""
    from paramlens.analysis import reading

    big = "x = [" + "1, " * 100_000 + "]\n"  # 300 KB of source
    infos = [reading.read_file(tmp_path / "big.py", f"{big}y = {n}\n") for n in range(10)]
    kept = [key for key in reading._TREES if key[0] == str(tmp_path / "big.py")]
    assert kept and kept[-1] == (infos[-1].path, infos[-1].digest)
    assert sum(size for _, size in reading._TREES.values()) <= reading._TREES_SOURCE
    assert reading.syntax_tree(infos[-1]) is reading._TREES[kept[-1]][0]  # not parsed again
