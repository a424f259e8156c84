"""The worker driven directly: jobs, unsaved buffers, cancellation, a dead worker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from paramlens.engine.worker_client import (
    State,
    WorkerClient,
    WorkerDied,
    WorkerError,
    WorkerStartError,
)
from paramlens.worker.protocol import BuildJob, ClassSpec

from tests.conftest import FIXTURES, python_prints

SEED = FIXTURES / "recipe/models.py"


def job(file: Path, *classes: tuple[str, int], **extra: object) -> BuildJob:
    specs = tuple(ClassSpec(name, line, f"{name}()") for name, line in classes)
    return BuildJob(
        file=str(file),
        module=file.stem,
        sys_path=(str(file.parent),),
        workspace=str(file.parent),
        classes=specs,
        **extra,  # type: ignore[arg-type]
    )


def slow_module(folder: Path, *names: str) -> tuple[Path, list[tuple[str, int]]]:
    """A module whose classes announce themselves on stderr, then sleep 30 s in __init__."""
    source = "import os, sys, time\nfrom torch import nn\n"
    classes = []
    for name in names:
        classes.append((name, len(source.splitlines()) + 2))
        source += (
            f"\n\nclass {name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            # the pid as /proc names it: the build's own PID namespace calls it 1
            f"        pid = os.readlink('/proc/self')\n"
            f"        print(f'BUILDING {name} pid={{pid}}', file=sys.stderr, flush=True)\n"
            "        time.sleep(30)\n"
        )
    path = folder / "slow.py"
    path.write_text(source)
    return path, classes


def stand_in_worker(folder: Path, body: str) -> Path:
    """An interpreter for :class:`WorkerClient` that runs ``body``, Python with ``json``,
    ``sys`` and ``say_ready(torch_version)`` (the worker's first line) at hand."""
    fake = folder / "python"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "def say_ready(torch_version):\n"
        "    info = dict(python='fake', python_version='3', torch_version=torch_version,\n"
        "                pid=os.getpid(), fork=False)\n"
        "    print(json.dumps({'type': 'ready', 'info': info}), flush=True)\n" + body
    )
    fake.chmod(0o755)
    return fake


@pytest.fixture
async def worker():  # type: ignore[no-untyped-def]
    client = WorkerClient(sys.executable)
    yield client
    await client.stop()


async def test_unsaved_text_wins_over_the_disk(worker: WorkerClient) -> None:
    text = SEED.read_text().replace("nn.Linear(512, 10)", "nn.Linear(512, 20)")
    result = await worker.build(job(SEED, ("NeuralNetwork", 6), overrides=((str(SEED), text),)))
    [mlp] = result.models
    assert mlp.total_params == 669_706 + 512 * 10 + 10
    assert worker.info is not None and worker.info.fork


async def test_a_cancelled_job_is_dropped_and_the_worker_keeps_serving(
    worker: WorkerClient, tmp_path: Path
) -> None:
    slow, classes = slow_module(tmp_path, "Slow")
    await worker.start()
    task = asyncio.create_task(worker.build(job(slow, *classes, timeout_s=60)))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = asyncio.get_running_loop().time()
    result = await worker.build(job(SEED, ("CNN", 24)))
    assert result.models[0].total_params == 1_199_882
    assert asyncio.get_running_loop().time() - started < 20  # not stuck behind the slow job


async def test_forwards_lines_are_traced_only_when_their_shapes_are_wanted(
    worker: WorkerClient,
) -> None:
    # the summary table shows no line shapes, and tracing doubles forward()'s time
    traced = await worker.build(job(SEED, ("CNN", 24)))
    untraced = await worker.build(job(SEED, ("CNN", 24), line_shapes=False))
    [cnn], [quick] = traced.models, untraced.models
    assert cnn.forward is not None and quick.forward is not None
    assert cnn.forward.output_shape == "[1, 10]" and len(cnn.forward.lines) == 3
    assert cnn.forward.step is not None
    assert quick.forward == dataclasses.replace(cnn.forward, lines=())


async def test_jobs_run_side_by_side(worker: WorkerClient) -> None:
    results = await asyncio.gather(
        *(worker.build(job(SEED, ("CNN", 24), ("NeuralNetwork", 6))) for _ in range(4))
    )
    assert {tuple(m.total_params for m in r.models) for r in results} == {(1_199_882, 669_706)}


async def test_a_dead_worker_fails_pending_jobs_then_restarts(tmp_path: Path) -> None:
    logged: list[str] = []
    worker = WorkerClient(sys.executable, logged.append)
    slow, classes = slow_module(tmp_path, "Slow")
    await worker.start()
    pending = asyncio.create_task(worker.build(job(slow, *classes, timeout_s=60)))
    builder = int(await _eventually_logged(logged, "pid="))
    assert worker._process is not None
    worker._process.kill()
    with pytest.raises(
        WorkerDied, match=r"died while building Slow in slow.py \(killed by signal 9\)"
    ):
        await asyncio.wait_for(pending, 10)
    assert worker.state is State.EXITED
    for _ in range(100):  # the build child dies with its worker, not 30 s later
        if not Path(f"/proc/{builder}").exists():
            break
        await asyncio.sleep(0.05)
    assert not Path(f"/proc/{builder}").exists()
    result = await worker.build(job(SEED, ("CNN", 24)))
    assert result.models[0].total_params == 1_199_882
    assert worker.state is State.RUNNING
    await worker.stop()


async def test_a_silent_worker_is_killed_and_its_jobs_fail_saying_so(tmp_path: Path) -> None:
    # a worker blocked for good (here: stopped) must not leave a summary waiting forever:
    # past the longest pending class timeout and the import margin, it is killed, its
    # jobs fail saying why, and the next job gets a fresh worker
    logged: list[str] = []
    worker = WorkerClient(sys.executable, logged.append, silence_margin_s=1.0)
    await worker.start()
    assert worker._process is not None
    os.kill(worker._process.pid, signal.SIGSTOP)
    with pytest.raises(WorkerDied, match=r"silent for \d+ s with jobs pending"):
        await asyncio.wait_for(worker.build(job(SEED, ("CNN", 24), timeout_s=1)), 60)
    assert any("sent nothing" in line and "models.py" in line for line in logged)
    result = await worker.build(job(SEED, ("CNN", 24)))
    assert result.models[0].total_params == 1_199_882
    await worker.stop()


def package_job(folder: Path, init: str, timeout_s: float = 10.0) -> BuildJob:
    """A job for ``Tiny`` in ``pkg/models.py``, sized by ``N`` from ``pkg/__init__.py``
    (``init``): a package, so its jobs go to a zygote that imports ``pkg`` first."""
    package = folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    models = package / "models.py"
    models.write_text(
        "from torch import nn\n\nfrom pkg import N\n\n\nclass Tiny(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(N, N)\n"
    )
    return BuildJob(
        file=str(models),
        module="pkg.models",
        sys_path=(str(folder),),
        workspace=str(folder),
        classes=(ClassSpec("Tiny", 6, "Tiny()"),),
        timeout_s=timeout_s,
    )


async def test_a_zygote_stuck_importing_its_package_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a package whose import blocks the zygote's alarm and sleeps: the zygote would never
    # answer, and the summary waited forever. Past its deadline it is stopped, and the job
    # is built without it: the child's deadline stops the import and says where.
    monkeypatch.setenv("PARAMLENS_IMPORT_BUDGET_S", "1")
    init = (
        "import signal, time\n\n\ndef _size():\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        "    time.sleep(1e6)\n    return 4\n\n\nN = _size()\n"
    )
    stuck = package_job(tmp_path, init, timeout_s=1)
    logged: list[str] = []
    worker = WorkerClient(sys.executable, logged.append)
    try:
        result = await asyncio.wait_for(worker.build(stuck), 60)
    finally:
        await worker.stop()
    error = result.models[0].error
    assert error is not None and "took longer than 1 s" in error.message
    assert (error.file, error.line) == (str(tmp_path / "pkg/__init__.py"), 6)
    assert any("the zygote of pkg said nothing" in line for line in logged)


async def test_a_package_that_reads_stdin_on_import_reads_nothing(tmp_path: Path) -> None:
    # the zygote's stdin carries its jobs: an input() in the package's __init__ took the
    # job, and the zygote waited for it (132 s, until the worker stopped it). Now it reads
    # an empty file, as a build child does, and the failed statement is said at once.
    job = package_job(tmp_path, "N = len(input('size? ')) or 4\n")
    worker = WorkerClient(sys.executable)
    try:
        result = await asyncio.wait_for(worker.build(job), 60)
    finally:
        await worker.stop()
    error = result.models[0].error
    assert error is not None
    assert error.message.startswith(
        "UnavailableNameError: N is unavailable: the statement at __init__.py:1"
    ), error.message
    assert "EOFError" in error.message


async def test_an_unreadable_answer_fails_its_own_job_only(tmp_path: Path) -> None:
    # a stand-in worker that answers its first job with a malformed result, then answers
    # properly: the first job fails saying so, the client keeps reading, the next succeeds
    fake = stand_in_worker(
        tmp_path,
        "say_ready('0')\n"
        "for n, line in enumerate(sys.stdin):\n"
        "    job_id = json.loads(line)['id']\n"
        "    result = {'models': [{'name': 'X'}]} if n == 0 else {'models': []}\n"
        "    print(json.dumps({'type': 'result', 'id': job_id, 'result': result}), flush=True)\n",
    )
    client = WorkerClient(str(fake))
    try:
        with pytest.raises(WorkerError, match=r"answer for models.py could not be read"):
            await asyncio.wait_for(client.build(job(SEED, ("CNN", 24))), 20)
        result = await asyncio.wait_for(client.build(job(SEED, ("CNN", 24))), 20)
        assert result.models == ()
        assert client.in_worker == {}
    finally:
        await client.stop()


async def _eventually_logged(logged: list[str], marker: str) -> str:
    for _ in range(200):
        for line in logged:
            if marker in line:
                return line.rpartition(marker)[2].strip()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{marker} never logged: {logged}")


async def test_an_interpreter_that_does_not_exist(tmp_path: Path) -> None:
    client = WorkerClient(str(tmp_path / "no-python"))
    with pytest.raises(WorkerStartError, match="cannot start"):
        await client.start()
    assert client.state is State.ERRORED


async def test_a_cancelled_job_is_not_rebuilt_class_by_class(tmp_path: Path) -> None:
    logged: list[str] = []
    worker = WorkerClient(sys.executable, logged.append)
    slow, classes = slow_module(tmp_path, "First", "Second")
    try:
        task = asyncio.create_task(worker.build(job(slow, *classes, timeout_s=60)))
        await _eventually_logged(logged, "BUILDING First")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(2)  # a rebuild of the classes after First would have started by now
        assert not any("BUILDING Second" in line for line in logged), logged
    finally:
        await worker.stop()


async def test_a_job_cancelled_while_queued_is_answered_cancelled(tmp_path: Path) -> None:
    """Every job ends with a result or 'cancelled', even one that never left the worker's
    queue: the client waits for that before it sends the same file's next job."""
    logged: list[str] = []
    worker = WorkerClient(sys.executable, logged.append)
    slots = max(1, min(4, os.cpu_count() or 1))  # the worker's build children at once
    slow, classes = slow_module(tmp_path, *(f"S{i}" for i in range(slots + 1)))
    try:
        building = [
            asyncio.create_task(worker.build(job(slow, spec, timeout_s=60)))
            for spec in classes[:slots]
        ]
        for name, _ in classes[:slots]:
            await _eventually_logged(logged, f"BUILDING {name} ")
        queued = asyncio.create_task(worker.build(job(slow, classes[-1], timeout_s=60)))
        await _eventually_logged(logged, f"job {slots + 1} sent")
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await _eventually_logged(logged, f"job {slots + 1} cancelled")
        assert list(worker.in_worker) == list(range(1, slots + 1))
        assert not any(f"BUILDING {classes[-1][0]}" in line for line in logged)
        for task in building:
            task.cancel()
    finally:
        await worker.stop()


def test_torch_dynamo_is_imported_only_when_code_uses_it() -> None:
    """Meta decompositions wrap themselves in torch._disable_dynamo, which imports
    torch._dynamo (over a second) on first use: the worker defers it; code that does use
    torch._dynamo still gets the real module."""
    script = (
        "import sys, torch\n"
        "from paramlens.worker.processes.startup import defer_dynamo\n"
        "defer_dynamo()\n"
        "x = torch.empty(2, 3, device='meta') + 1  # a decomposed meta op\n"
        "deferred = type(sys.modules['torch._dynamo']).__name__\n"
        "import torch._dynamo.config\n"
        "real = type(sys.modules['torch._dynamo']).__name__\n"
        "print(deferred, real, torch._dynamo.is_compiling())\n"
    )
    assert python_prints(script) == ["_DeferredDynamo", "module", "False"]


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_prepare_starts_importing_a_package_before_any_job(worker: WorkerClient) -> None:
    # the server sends `prepare` while it still reads the workspace: the worker forks the
    # package's zygote, which imports it, before the first job of that package arrives
    workspace = FIXTURES / "pkgws"
    models = workspace / "mypkg/models.py"
    await worker.prepare(
        BuildJob(str(models), "mypkg.models", (str(workspace),), str(workspace), ())
    )
    assert worker._process is not None
    for _ in range(200):  # up to 10 s
        if children(worker._process.pid):
            break
        await asyncio.sleep(0.05)
    assert children(worker._process.pid), "no zygote was started for mypkg"


async def test_builds_run_with_torchs_objects_frozen_out_of_the_collector(
    worker: WorkerClient, tmp_path: Path
) -> None:
    # a collection walked all of torch's objects in every child: reading GPT-2 XL's result
    # took 120 ms instead of 30. The worker imports torch with the collector off: it must be
    # on again for user code. The model below measures what its build process sees
    source = (
        "import gc\nfrom torch import nn\n\n\n"
        "class Frozen(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        frozen, collecting = gc.get_freeze_count() > 10_000, gc.isenabled()\n"
        "        self.fc = nn.Linear(1, 1 + frozen + 2 * collecting)\n"
    )
    path = tmp_path / "frozen.py"
    path.write_text(source)
    [frozen] = (await worker.build(job(path, ("Frozen", 5)))).models
    assert frozen.error is None and frozen.total_params == 4 * 2  # Linear(1, 4)


def test_a_job_is_answered_when_its_last_model_arrives_not_when_its_child_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a build child's exit tears down its PID and network namespaces (130 ms here); its
    # result must not wait for that: the worker answers on the child's last message
    import time

    from paramlens.worker import protocol
    from paramlens.worker.processes.scheduler import Running, Worker
    from paramlens.worker.protocol import ErrorInfo, ModelResult

    worker = Worker(use_fork=False, max_children=1, scratch_root=str(tmp_path))
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(worker, "send", sent.append)
    the_job = job(SEED, ("NeuralNetwork", 6), ("CNN", 24))
    first, last = the_job.classes
    running = Running(7, the_job, [first, last], 0, -1, str(tmp_path), time.monotonic(), 1e9)
    for spec in (first, last):
        result = ModelResult.failed(spec, str(SEED), ErrorInfo("ValueError: stand-in"))
        worker._child_message(running, {"type": "model", "result": protocol.to_json(result)})
        if spec is first:
            assert sent == []  # one class is still to come
    [answer] = sent
    assert answer["type"] == "result" and answer["id"] == 7
    answered = protocol.job_result(json.loads(protocol.dumps(answer["result"])))
    assert [m.name for m in answered.models] == ["NeuralNetwork", "CNN"]


async def test_the_prepare_message_reaches_a_worker_before_it_is_ready(tmp_path: Path) -> None:
    # the server may be busy when the worker's ready line arrives (a big package's first
    # job): the package's import must not wait for it. This stand-in worker reads its
    # first message before it says it is ready; a client that waited would hang here.
    fake = stand_in_worker(
        tmp_path, "say_ready(json.loads(sys.stdin.readline())['type'])\nsys.stdin.read()\n"
    )
    client = WorkerClient(str(fake))
    try:
        await asyncio.wait_for(client.prepare(job(SEED)), 20)
        assert client.info is not None and client.info.torch_version == "prepare"
    finally:
        await client.stop()


def test_a_crash_caught_entering_a_function_is_reported_at_its_call(tmp_path: Path) -> None:
    # a C stack overflow may strike as a frame starts, on its def line; faulthandler then
    # names the header, which had not run: the user's line is the call below it
    import time

    from paramlens.worker.processes.child import HANG_FILE
    from paramlens.worker.processes.scheduler import Running, hung_line

    model = tmp_path / "model.py"
    model.write_text(
        "class Loop:\n    def __repr__(self):\n        return repr(self)\n\n\nrepr(Loop())\n"
    )
    dump = "Stack (most recent call first):\n" + "".join(
        f'  File "{model}", line {line} in {name}\n'
        for line, name in ((2, "__repr__"), (3, "__repr__"), (3, "__repr__"), (6, "<module>"))
    )
    (tmp_path / HANG_FILE).write_text(dump)
    the_job = job(model, ("Loop", 1))
    running = Running(1, the_job, list(the_job.classes), 0, -1, str(tmp_path), time.monotonic(), 1)
    assert hung_line(running) == (str(model), 3)


async def test_a_killed_workers_scratch_folder_is_swept_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 (the OOM killer) leaves the worker's folder; the next worker removes it."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    worker = WorkerClient(sys.executable)

    def folders() -> list[str]:
        return sorted(p.name for p in tmp_path.glob("paramlens-worker-*"))

    assert (await worker.build(job(SEED, ("CNN", 24)))).models[0].total_params == 1_199_882
    [killed] = folders()
    assert worker._process is not None
    worker._process.kill()
    await worker._process.wait()
    for _ in range(200):  # the client sees its pipes close
        if worker.state is State.EXITED:
            break
        await asyncio.sleep(0.05)
    assert folders() == [killed]
    await worker.build(job(SEED, ("CNN", 24)))  # a new worker
    [running] = folders()
    assert running != killed
    other = WorkerClient(sys.executable)  # another editor's worker: it keeps the live one
    await other.start()
    assert len(folders()) == 2 and running in folders()
    await other.stop()
    await worker.stop()
    assert folders() == []
