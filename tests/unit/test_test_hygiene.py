"""Checks on the test suite itself: mistakes that a green run on one machine would hide."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_borrows_torch_from_the_base_interpreter() -> None:
    # A venv with system site-packages passes only where the base Python has torch: a
    # developer's machine, never a fresh one (scripts/setup.sh installs torch into .venv).
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path != Path(__file__).resolve()
        and "system_site_packages=True" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
