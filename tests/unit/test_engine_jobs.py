"""The engine's jobs: one build for a job asked for several times at once, and a job
cancelled only once nobody waits for it (a stand-in worker: no torch, no subprocess)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from paramlens.config import Settings
from paramlens.engine.engine import Engine
from paramlens.engine.worker_client import State
from paramlens.worker.protocol import BuildJob, JobResult

from tests.conftest import FIXTURES

SEED = FIXTURES / "recipe" / "models.py"


class StandInWorker:
    """Holds every job until released; counts what it was asked and what was cancelled."""

    def __init__(self) -> None:
        self.jobs: list[BuildJob] = []
        self.cancelled = 0
        self.release = asyncio.Event()

    async def build(self, job: BuildJob, on_staged: object = None) -> JobResult:
        self.jobs.append(job)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return JobResult(models=(), notes=(f"built {job.file}",))


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a job's key is computed in a thread: how long that takes
    depends on the machine), or fail after 30 s."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"after 30 s, still not: {what}")


@pytest.fixture
def engine_and_worker() -> tuple[Engine, StandInWorker]:
    engine = Engine(lambda _: Settings(python="stand-in"))
    worker = StandInWorker()
    engine.workers["stand-in"] = worker  # type: ignore[assignment]
    return engine, worker


async def test_a_job_asked_for_twice_at_once_is_built_once(
    engine_and_worker: tuple[Engine, StandInWorker],
) -> None:
    engine, worker = engine_and_worker
    workspace = engine.scan(SEED.parent)
    both = asyncio.gather(*(engine.build(str(SEED), workspace, {}) for _ in range(2)))
    await until(lambda: len(worker.jobs) == 1, "the job reached the worker")
    worker.release.set()
    first, second = await both
    assert len(worker.jobs) == 1 and engine.jobs_run == 1
    assert first is second and first is not None and first.notes == (f"built {SEED}",)
    # done: the next request is the cache's, not a new job
    assert await engine.build(str(SEED), workspace, {}) is first and len(worker.jobs) == 1


async def test_a_shared_job_is_cancelled_only_when_nobody_waits_for_it(
    engine_and_worker: tuple[Engine, StandInWorker],
) -> None:
    engine, worker = engine_and_worker
    workspace = engine.scan(SEED.parent)
    left, right = (asyncio.ensure_future(engine.build(str(SEED), workspace, {})) for _ in range(2))
    await until(lambda: len(worker.jobs) == 1, "the job reached the worker")
    # each request computes the job's key in a thread: both must have joined the job
    await until(lambda: engine.requests_waiting() == 2, "both requests wait for the job")
    left.cancel()  # an editor request superseded by a newer one
    with pytest.raises(asyncio.CancelledError):
        await left
    assert worker.cancelled == 0 and not right.done()
    right.cancel()
    with pytest.raises(asyncio.CancelledError):
        await right
    await until(lambda: worker.cancelled == 1, "the job was cancelled in the worker")
    assert len(worker.jobs) == 1
    # asked again later: a new job, not the cancelled one
    again = asyncio.ensure_future(engine.build(str(SEED), workspace, {}))
    await until(lambda: len(worker.jobs) == 2, "a new job reached the worker")
    worker.release.set()
    assert (await again) is not None and len(worker.jobs) == 2


def test_an_open_buffer_equal_to_its_file_is_no_override(tmp_path: Path) -> None:
    # the worker's zygote imported the file from disk: it can build a job with no override
    # (an open, unchanged timm file otherwise imported all of timm again)
    path = tmp_path / "models.py"
    path.write_text(SEED.read_text())
    engine = Engine(lambda _: Settings())
    saved = {str(path): SEED.read_text()}
    job = engine.job_for(str(path), engine.scan(tmp_path, saved), Settings(), saved)
    assert job is not None and job.overrides == ()
    edited = {str(path): SEED.read_text().replace("512", "256")}
    job = engine.job_for(str(path), engine.scan(tmp_path, edited), Settings(), edited)
    assert job is not None and job.overrides == ((str(path), edited[str(path)]),)


class PreparedWorker(StandInWorker):
    """A running stand-in that keeps the edits' texts it is sent ahead of their jobs."""

    state = State.RUNNING

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.prepared: list[BuildJob] = []

    def prepare_edit(self, job: BuildJob) -> None:
        self.prepared.append(job)


async def test_an_edit_is_read_and_sent_to_the_worker_during_its_debounce(
    tmp_path: Path,
) -> None:
    """On the edit itself (before the debounce ends): the worker gets its texts exactly as
    the edit's job will carry them, and the workspace is read with the new text, the
    file's call sites found, so that the analysis after the debounce finds them ready."""
    shutil.copytree(FIXTURES / "livepkg", tmp_path / "ws")
    root = tmp_path / "ws"
    path = str(root / "zoo" / "vit.py")
    engine = Engine(lambda _: Settings(python="stand-in"))
    worker = PreparedWorker()
    engine.workers["stand-in"] = worker  # type: ignore[assignment]
    await engine.analyze(path, root, {})
    text = Path(path).read_text().replace("dim: int = 64", "dim: int = 40")
    engine.edited(path, root, {path: text})
    [prepared] = worker.prepared
    assert prepared.module == "zoo.vit" and prepared.overrides == ((path, text),)
    await until(lambda: engine._scan_cache[path][1] == text, "the new text read ahead")
    await until(lambda: engine._scan_cache[path][2].found_call_sites is not None, "call sites")
    await engine.analyze(path, root, {path: text})
    assert worker.jobs[-1].overrides == prepared.overrides
    assert worker.jobs[-1].sys_path == prepared.sys_path
    assert worker.jobs[-1].workspace == prepared.workspace


async def test_an_edit_of_a_file_without_models_is_prepared_for_its_open_importer(
    tmp_path: Path,
) -> None:
    """``configuration_llama.py`` has no model of its own; ``modeling_llama.py``, open and
    built, imports it. An edit of the first is sent to the worker at once too, as the
    importer's jobs will carry it: the zygote imports the importer's module, looks at what
    the edited module made, and runs both again during the debounce, not when the
    importer's job comes."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (pkg / "__init__.py").write_text("")
    widths, models = pkg / "widths.py", pkg / "models.py"
    widths.write_text("WIDTH = 8\n")
    models.write_text(
        "from torch import nn\n\nfrom .widths import WIDTH\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(WIDTH, WIDTH)\n"
    )
    engine = Engine(lambda _: Settings(python="stand-in"))
    worker = PreparedWorker()
    engine.workers["stand-in"] = worker  # type: ignore[assignment]
    opened = {str(widths): "WIDTH = 8\n", str(models): models.read_text()}
    await engine.analyze(str(widths), tmp_path, opened)
    engine.edited(str(widths), tmp_path, {**opened, str(widths): "WIDTH = 16\n"})
    assert worker.prepared == []  # its importer was not built yet: nothing to prepare
    await engine.analyze(str(models), tmp_path, opened)
    engine.edited(str(widths), tmp_path, {**opened, str(widths): "WIDTH = 16\n"})
    [prepared] = worker.prepared  # as the importer's jobs will come: its module imported
    assert prepared.module == "pkg.models" and prepared.file == str(models)
    assert prepared.overrides == ((str(widths), "WIDTH = 16\n"),)
