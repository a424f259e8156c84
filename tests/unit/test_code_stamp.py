"""Cached results are keyed by the worker's own code, saved answers by all of paramlens's:
a change anywhere in it is a new key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paramlens.engine import engine
from paramlens.worker import protocol


def test_a_change_in_a_worker_subpackage_changes_the_code_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = tmp_path / "worker"
    (worker / "build").mkdir(parents=True)
    (worker / "protocol.py").write_text("X = 1\n")
    nested = worker / "build" / "measure.py"  # the worker's code is not only its top level
    nested.write_text("Y = 1\n")
    monkeypatch.setattr(protocol, "__file__", str(worker / "protocol.py"))
    stamp = engine._worker_code_stamp.__wrapped__  # uncached: each call reads the folder
    before = stamp()
    assert stamp() == before
    nested.write_text("Y = 22\n")
    os.utime(nested, ns=(1, 1))
    assert stamp() != before


def test_a_change_outside_the_worker_changes_the_saved_answers_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved answer is also the engine's and the renderer's work: a warm run after a
    change to ``engine/`` must not show the answer of the code before it."""
    package = tmp_path / "paramlens"
    (package / "worker").mkdir(parents=True)
    (package / "engine").mkdir()
    (package / "worker" / "protocol.py").write_text("X = 1\n")
    lines = package / "engine" / "lines.py"
    lines.write_text("Y = 1\n")
    monkeypatch.setattr(protocol, "__file__", str(package / "worker" / "protocol.py"))
    worker, answer = engine._worker_code_stamp.__wrapped__, engine._answer_code_stamp.__wrapped__
    before = worker(), answer()
    lines.write_text("Y = 22\n")
    os.utime(lines, ns=(1, 1))
    assert worker() == before[0]  # the worker's results stay valid
    assert answer() != before[1]
