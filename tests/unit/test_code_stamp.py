"""Cached results are keyed by the worker's own code: a change anywhere in it is a new key."""

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
