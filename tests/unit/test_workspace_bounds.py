"""Bounded workspaces (issue 22): a file outside any project, ``/`` or the home folder is
never read with its subfolders, every scan stops at a file and a time budget and says so,
a cancelled scan stops reading, and one workspace's work never waits on another's."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from paramlens import config
from paramlens.analysis import reading
from paramlens.analysis.model import FileInfo
from paramlens.analysis.workspace import ScanLimits, iter_python_files, scan
from paramlens.config import Root, Settings, find_root
from paramlens.engine.engine import Engine

MODEL = "from torch import nn\nclass Net(nn.Module):\n    pass\n"


def tree(folder: Path, packages: int, files: int = 1) -> None:
    """``folder`` with its own model.py and ``packages`` subfolders of ``files`` modules."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(MODEL)
    for p in range(packages):
        package = folder / f"pkg{p}"
        package.mkdir()
        for f in range(files):
            (package / f"mod{f}.py").write_text(f"X = {f}\n")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: folder))
    return folder


def test_a_file_outside_any_project_is_a_loose_root(tmp_path: Path, home: Path) -> None:
    tree(tmp_path / "loose", packages=3)
    assert find_root(tmp_path / "loose" / "model.py") == Root(tmp_path / "loose", loose=True)
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    assert find_root(tmp_path / "proj" / "src" / "m.py") == Root(tmp_path / "proj")
    # a folder named on the command line is read whole (within the budget)
    assert find_root(tmp_path / "loose") == Root(tmp_path / "loose")


def test_home_and_slash_are_never_project_roots(home: Path) -> None:
    (home / ".git").mkdir()  # a dotfiles repository does not make home a project
    (home / "notes").mkdir()
    assert find_root(home / "notes" / "model.py") == Root(home / "notes", loose=True)
    assert find_root(home / "model.py") == Root(home, loose=True)
    assert find_root(home) == Root(home, loose=True)
    assert find_root(Path("/")) == Root(Path("/"), loose=True)
    assert config.too_wide(Path("/")) and config.too_wide(home)
    assert not config.too_wide(home / "notes")


def test_a_loose_root_reads_its_own_files_only(tmp_path: Path, home: Path) -> None:
    tree(home, packages=20)
    root = find_root(home / "model.py")
    engine = Engine(lambda _: Settings())
    workspace = engine.scan(root.path, loose=root.loose)
    assert sorted(workspace.files) == [str(home / "model.py")]
    assert workspace.cut_short is None
    assert [p.name for p in iter_python_files(home, recursive=False)] == ["model.py"]


def test_a_scan_stops_at_max_files_and_says_how_to_widen_it(tmp_path: Path) -> None:
    tree(tmp_path, packages=30)
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens]\nmax-files = 10\n")
    engine = Engine(lambda path: config.from_pyproject(path)[0])
    asked = tmp_path / "pkg29" / "mod0.py"  # past the budget: read all the same
    workspace = engine.scan(tmp_path, include=[str(asked)])
    assert len(workspace.files) == 11 and str(asked) in workspace.files
    assert workspace.cut_short == (
        f"paramlens read the first 10 Python files under {tmp_path} and stopped; set "
        "max-files in [tool.paramlens] or add a pyproject.toml to mark the project"
    )
    # the whole folder once the budget allows it
    (tmp_path / "pyproject.toml").write_text("[tool.paramlens]\nmax-files = 31\n")
    workspace = engine.scan(tmp_path)
    assert len(workspace.files) == 31 and workspace.cut_short is None


def test_max_files_is_validated_like_the_other_settings() -> None:
    settings, problems = config.merge(Settings(), {"maxFiles": 0}, "editor")
    assert settings.max_files == 5_000
    assert problems == ["editor: maxFiles must be positive; using 5000"]
    assert config.merge(Settings(), {"max-files": 20_000}, "x")[0].max_files == 20_000


def test_a_scan_stops_at_its_time_budget(tmp_path: Path) -> None:
    tree(tmp_path, packages=40)
    ticks = iter(range(10_000))  # a clock that moves one second each time it is read
    limits = ScanLimits(seconds=10, clock=lambda: float(next(ticks)))
    asked = str(tmp_path / "model.py")  # the file asked about is read whatever the time
    workspace = scan(tmp_path, limits=limits, include=[asked])
    assert asked in workspace.files and len(workspace.files) < 12
    assert workspace.cut_short is not None
    assert workspace.cut_short.startswith(f"paramlens read Python files under {tmp_path} for 10 s")


def test_a_stopped_scan_reads_no_more_files(tmp_path: Path) -> None:
    tree(tmp_path, packages=40)
    read: list[str] = []
    real = reading.read_file

    def counting(path: Path, text: str) -> FileInfo:
        read.append(str(path))
        return real(path, text)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("paramlens.analysis.workspace.read_file", counting)
        scan(tmp_path, limits=ScanLimits(stop=lambda: len(read) >= 5))
    assert len(read) == 5


def test_a_cancelled_read_workspace_stops_its_thread(tmp_path: Path) -> None:
    """Closing a document cancels its analysis: the scan in the thread stops too."""
    tree(tmp_path, packages=100)
    read: list[str] = []
    first_read, go_on = threading.Event(), threading.Event()
    real = reading.read_file

    def slow(path: Path, text: str) -> FileInfo:
        read.append(str(path))
        first_read.set()
        go_on.wait(30)
        return real(path, text)

    async def main() -> None:
        engine = Engine(lambda _: Settings())
        task = asyncio.ensure_future(engine.read_workspace(tmp_path))
        await asyncio.to_thread(first_read.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go_on.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("paramlens.analysis.workspace.read_file", slow)
        asyncio.run(main())  # returns once the default executor's threads have ended
    assert len(read) == 1  # of 101


async def test_a_workspace_job_never_waits_for_another_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first job of a big workspace looks across it for call sites; another
    workspace's job goes ahead meanwhile."""
    for name in ("big", "small"):
        tree(tmp_path / name, packages=0)
    engine = Engine(lambda _: Settings(python="stand-in"))
    big, small = engine.scan(tmp_path / "big"), engine.scan(tmp_path / "small")
    in_big, release = threading.Event(), threading.Event()
    real = engine.job_for

    def job_for(path: str, workspace, *args, **kwargs):  # type: ignore[no-untyped-def]
        if workspace is big:
            in_big.set()
            release.wait(60)
        return real(path, workspace, *args, **kwargs)

    monkeypatch.setattr(engine, "job_for", job_for)
    big_job = asyncio.ensure_future(
        engine._keyed_job(str(tmp_path / "big" / "model.py"), big, {}, False, "all")
    )
    await asyncio.to_thread(in_big.wait, 30)
    try:  # a generous bound: it only tells a wait behind the big job from none
        key, job, _ = await asyncio.wait_for(
            engine._keyed_job(str(tmp_path / "small" / "model.py"), small, {}, False, "all"), 30
        )
    finally:
        release.set()
    assert job is not None and job.file == str(tmp_path / "small" / "model.py") and key
    await big_job
