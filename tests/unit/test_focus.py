"""After an edit, the edited class first (issue 21, item 1): which classes are focused, the
order of the jobs, and the document showing the first ones final, the others stale."""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from paramlens.config import Settings
from paramlens.engine import engine as engine_module
from paramlens.engine.engine import (
    Engine,
    FileReport,
    class_shares,
    factory_shares,
    focus_classes,
)
from paramlens.engine.worker_client import State
from paramlens.lsp.documents import DocumentState
from paramlens.render import STEP_PENDING, render_model_lens
from paramlens.worker.protocol import BuildJob, ForwardInfo, JobResult, ModelResult, StepMemory

SOURCE = """from torch import nn


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)


class Net(nn.Module):
    def __init__(self, dim: int = 8):
        super().__init__()
        self.blocks = nn.Sequential(Block(dim), Block(dim))


class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


def net_small():
    return Net(4)
"""


STEP = StepMemory(peak=123_456_789, phase="backward", module="fc", batch=1)


class EchoWorker:
    """Answers each job at once with a model per class it names; keeps the jobs."""

    def __init__(self) -> None:
        self.jobs: list[BuildJob] = []

    async def build(
        self, job: BuildJob, on_staged: Callable[[ModelResult], None] | None = None
    ) -> JobResult:
        """A staged job's classes go to ``on_staged`` first as the worker's do: before their
        step (parameters and shapes), then final."""
        self.jobs.append(job)
        models = tuple(
            ModelResult(
                c.name,
                job.file,
                c.line,
                total_params=len(self.jobs),
                kind=c.kind,
                forward=ForwardInfo("torch.randn(1, 8)", "", macs=64, step=STEP),
            )
            for c in job.classes
        )
        for model in models if job.staged and on_staged is not None else ():
            assert model.forward is not None
            on_staged(replace(model, forward=replace(model.forward, step=None, step_pending=True)))
            await asyncio.sleep(0)
            on_staged(model)
        return JobResult(models=models)


def project(tmp_path: Path) -> tuple[Engine, EchoWorker, Path]:
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "models.py"
    path.write_text(SOURCE)
    engine = Engine(lambda _: Settings(python="echo"))
    worker = EchoWorker()
    engine.workers["echo"] = worker  # type: ignore[assignment]
    return engine, worker, path


def line_of(text: str, source: str = SOURCE) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_the_class_at_an_edit_and_the_classes_that_use_it(tmp_path: Path) -> None:
    engine, _, path = project(tmp_path)
    workspace = engine.scan(tmp_path, {}, "echo")
    inside_block = line_of("self.fc = nn.Linear(dim, dim)")
    assert focus_classes(str(path), workspace, {}, [(inside_block, inside_block)]) == {
        "Block",
        "Net",  # it builds Block, which needs arguments: measured there
    }
    at_net = line_of("def __init__(self, dim: int = 8)")
    assert focus_classes(str(path), workspace, {}, [(at_net, at_net)]) == {"Net"}
    shown = (line_of("class Other"), len(SOURCE.splitlines()))
    assert focus_classes(str(path), workspace, {}, [shown]) == {"Other"}
    assert focus_classes(str(path), workspace, {}, []) == set()


def test_an_edit_rebuilds_its_class_first_then_the_others_then_the_factories(
    tmp_path: Path,
) -> None:
    engine, worker, path = project(tmp_path)
    shown: list[list[str]] = []

    async def run() -> None:
        await engine.analyze(str(path), tmp_path, {}, lambda r: None)
        worker.jobs.clear()
        text = SOURCE.replace("dim: int = 8", "dim: int = 16")
        edited = line_of("dim: int = 16", text)
        report = await engine.analyze(
            str(path),
            tmp_path,
            {str(path): text},
            lambda r: shown.append([m.name for m in r.models]),
            focus=[(edited, edited)],
        )
        assert sorted(m.name for m in report.models) == ["Block", "Net", "Other", "net_small"]

    asyncio.run(run())
    assert [[c.name for c in job.classes] for job in worker.jobs][:3] == [
        ["Net"],
        ["Block", "Other"],
        ["net_small"],
    ]
    assert shown[0] == ["Net"], [(j.shapes, [c.name for c in j.classes]) for j in worker.jobs]
    assert len(worker.jobs) == 3, [(j.shapes, [c.name for c in j.classes]) for j in worker.jobs]


def test_the_first_models_are_final_and_the_others_stale_until_the_rest(tmp_path: Path) -> None:
    path = str(tmp_path / "models.py")
    state = DocumentState("file:///models.py", path, SOURCE)
    net, other = line_of("class Net"), line_of("class Other")
    old = FileReport(
        path, (ModelResult("Net", path, net, 10), ModelResult("Other", path, other, 6)), {}
    )
    state.accept(old, state.generation)
    text = "# a comment\n" + SOURCE.replace("dim: int = 8", "dim: int = 16")
    state.edit(text, 2)
    assert state.edited == (1, line_of("dim: int = 16", text))
    first = FileReport(path, (ModelResult("Net", path, net + 1, 20),), {})
    state.accept_partial(first, state.generation)
    lines = {m.name: (line, m.total_params, state.model_stale(m)) for m, line in state.models()}
    assert lines == {"Net": (net + 1, 20, False), "Other": (other + 1, 6, True)}
    rest = FileReport(
        path, (ModelResult("Net", path, net + 1, 20), ModelResult("Other", path, other + 1, 7)), {}
    )
    state.accept(rest, state.generation)
    assert not any(state.model_stale(m) for m, _ in state.models())
    older = state.generation
    state.edit(text + "\n# more\n", 3)
    state.accept_partial(first, older)  # for the text before: not taken
    assert state.stale


def test_the_edited_class_is_shown_before_its_step_and_then_with_it(tmp_path: Path) -> None:
    """The focused job is staged: its class is shown as soon as its parameters and shapes
    are known, the lens saying its peak is on the way (never the old sum in its place),
    the other classes stale; then again with its peak. The other jobs are not staged."""
    engine, worker, path = project(tmp_path)
    shown: list[dict[str, tuple[str, bool]]] = []
    state = DocumentState(path.as_uri(), str(path), SOURCE)

    def partial(report: FileReport) -> None:
        state.accept_partial(report, state.generation)
        shown.append(
            {m.name: (render_model_lens(m), state.model_stale(m)) for m, _ in state.models()}
        )

    async def run() -> None:
        state.accept(await engine.analyze(str(path), tmp_path, {}), state.generation)
        worker.jobs.clear()
        text = SOURCE.replace("dim: int = 8", "dim: int = 16")
        state.edit(text, 2)
        edited = line_of("dim: int = 16", text)
        await engine.analyze(str(path), tmp_path, {str(path): text}, partial, focus=[(edited,) * 2])

    asyncio.run(run())
    assert [j.staged for j in worker.jobs] == [True, False, False]
    first, second = shown[0], shown[1]
    assert first["Net"][0].endswith(STEP_PENDING) and not first["Net"][1]
    assert "train ≈" not in first["Net"][0]
    assert first["Other"][1] and first["Block"][1]  # stale until their job
    assert "peak 117.7 MB" in second["Net"][0] and not second["Net"][1]
    assert STEP_PENDING not in second["Net"][0]


def test_many_factories_are_built_in_two_shares_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of 41 factories on two cores with memory to spare: two jobs at once, each a
    consecutive half, merged in the file's order; one job on one core or without memory."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(engine_module, "_available_mb", lambda: 16_000)
    names = [f"net_{i}" for i in range(40)]
    assert factory_shares(names, 2048) == [set(names[:20]), set(names[20:])]
    assert factory_shares(names[:20], 2048) == [set(names[:20])]  # not worth a second import
    assert factory_shares(names, 10_000) == [set(names)]  # one build's cap is all there is
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert factory_shares(names, 2048) == [set(names)]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    source = SOURCE + "".join(
        f"\n\ndef {n}():\n    return Net({i + 1})\n" for i, n in enumerate(names)
    )
    engine, worker, path = project(tmp_path)
    path.write_text(source)
    at_once = []

    class Overlapping(EchoWorker):
        running = 0

        async def build(self, job: BuildJob, on_staged: object = None) -> JobResult:
            self.running += 1
            at_once.append(self.running)
            await asyncio.sleep(0.05)
            self.running -= 1
            return await super().build(job)

    worker = Overlapping()
    engine.workers["echo"] = worker  # type: ignore[assignment]

    async def run() -> FileReport:
        await engine.analyze(str(path), tmp_path, {}, lambda r: None)
        worker.jobs.clear()
        text = source.replace("dim: int = 8", "dim: int = 16")
        edited = line_of("dim: int = 16", text)
        return await engine.analyze(
            str(path), tmp_path, {str(path): text}, lambda r: None, focus=[(edited, edited)]
        )

    report = asyncio.run(run())
    factory_jobs = [
        [c.name for c in j.classes] for j in worker.jobs if j.classes[0].kind == "factory"
    ]
    everything = ["net_small", *names]  # the file's own factory first
    assert factory_jobs == [everything[:21], everything[21:]]
    assert max(at_once) == 2
    assert [m.name for m in report.models if m.kind == "factory"] == everything


class HeldWorker:
    """A running worker that stages each class of a staged job at once (before its step),
    then holds every job until released. Its figures say which text built them: the
    ``dim`` default of the job's text of the file."""

    state = State.RUNNING

    def __init__(self) -> None:
        self.jobs: list[BuildJob] = []
        self.cancelled: list[BuildJob] = []
        self.release = asyncio.Event()

    def prepare_edit(self, job: BuildJob) -> None:
        pass

    async def build(
        self, job: BuildJob, on_staged: Callable[[ModelResult], None] | None = None
    ) -> JobResult:
        self.jobs.append(job)
        models = tuple(
            ModelResult(c.name, job.file, c.line, total_params=width_of(job), kind=c.kind)
            for c in job.classes
        )
        for model in models if job.staged and on_staged is not None else ():
            forward = ForwardInfo("torch.randn(1, 8)", "", step_pending=True)
            on_staged(replace(model, forward=forward))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(job)
            raise
        return JobResult(models=models)


def width_of(job: BuildJob) -> int:
    text = dict(job.overrides).get(job.file, SOURCE)
    return int(re.findall(r"dim: int = (\d+)", text)[0])


async def until(condition: Callable[[], object], what: str) -> None:
    for _ in range(3000):  # a job's key is computed in a thread: up to 30 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"after 30 s, still not: {what}")


def held_project(tmp_path: Path) -> tuple[Engine, HeldWorker, Path]:
    engine, _, path = project(tmp_path)
    worker = HeldWorker()
    engine.workers["echo"] = worker  # type: ignore[assignment]
    return engine, worker, path


async def analysed_once(engine: Engine, worker: HeldWorker, path: Path) -> None:
    """The file analysed (built: its next edits come focused); the worker holding jobs."""
    worker.release.set()
    await engine.analyze(str(path), path.parent, {}, lambda r: None)
    worker.release.clear()
    worker.jobs.clear()


def analysis(
    engine: Engine, path: Path, text: str, focus: list[tuple[int, int]], shown: list[Any]
) -> asyncio.Future[FileReport]:
    """The analysis after the debounce, each model shown kept as (name -> width)."""
    return asyncio.ensure_future(
        engine.analyze(
            str(path),
            path.parent,
            {str(path): text},
            lambda r: shown.append({m.name: m.total_params for m in r.models}),
            focus=focus,
        )
    )


def test_the_edited_class_is_built_during_the_debounce_and_its_analysis_joins_it(
    tmp_path: Path,
) -> None:
    """On the edit itself, once its text is read, the class at the edit is built (the job
    the analysis asks for first). The analysis after the debounce joins that build: it
    shows what was staged before it came, and sends no second job for it."""
    engine, worker, path = held_project(tmp_path)
    shown: list[dict[str, int]] = []

    async def run() -> None:
        await analysed_once(engine, worker, path)
        text = SOURCE.replace("dim: int = 8", "dim: int = 16")
        focus = [(line_of("dim: int = 16", text),) * 2]
        engine.edited(str(path), tmp_path, {str(path): text}, focus=focus)
        await until(lambda: worker.jobs, "the edited class's job, during the debounce")
        [early] = worker.jobs
        assert [c.name for c in early.classes] == ["Net"] and early.staged
        running = analysis(engine, path, text, focus, shown)
        await until(lambda: shown, "the class staged before the analysis came, shown")
        assert shown == [{"Net": 16}] and len(worker.jobs) == 1
        worker.release.set()
        report = await running
        assert {m.name: m.total_params for m in report.models}["Net"] == 16

    asyncio.run(run())
    assert [[c.name for c in job.classes] for job in worker.jobs] == [
        ["Net"],
        ["Block", "Other"],
        ["net_small"],
    ]


def test_a_newer_edit_stops_the_older_texts_build_whose_figures_are_never_shown(
    tmp_path: Path,
) -> None:
    """Typed on before the build of the class at the edit is done: that build is
    cancelled, the newer text's is started, and only the newer text's figures are shown."""
    engine, worker, path = held_project(tmp_path)
    shown: list[dict[str, int]] = []

    async def run() -> None:
        await analysed_once(engine, worker, path)
        older = SOURCE.replace("dim: int = 8", "dim: int = 16")
        newer = SOURCE.replace("dim: int = 8", "dim: int = 24")
        focus = [(line_of("dim: int = 16", older),) * 2]
        engine.edited(str(path), tmp_path, {str(path): older}, focus=focus)
        await until(lambda: worker.jobs, "the older text's class being built")
        engine.edited(str(path), tmp_path, {str(path): newer}, focus=focus)
        await until(lambda: worker.cancelled, "the older text's build stopped")
        await until(lambda: len(worker.jobs) == 2, "the newer text's class being built")
        assert [width_of(j) for j in worker.cancelled] == [16]
        assert [width_of(j) for j in worker.jobs] == [16, 24]
        running = analysis(engine, path, newer, focus, shown)
        await until(lambda: shown, "the newer text's class shown")
        worker.release.set()
        await running

    asyncio.run(run())
    assert shown and all(set(figures.values()) == {24} for figures in shown), shown
    assert [width_of(j) for j in worker.jobs] == [16, 24, 24, 24]


def test_while_typing_on_no_keystrokes_text_is_built(tmp_path: Path) -> None:
    """The class at the edit is built only once the typing pauses (half the debounce, here
    3 s): an edit typed on before that costs its text's reading, never a build."""
    engine, worker, path = held_project(tmp_path)
    engine.settings_for = lambda _: Settings(python="echo", debounce_ms=6000)

    async def run() -> None:
        worker.release.set()
        await engine.analyze(str(path), tmp_path, {}, lambda r: None)
        worker.jobs.clear()
        focus = [(line_of("dim: int = 8"),) * 2]
        for width in (1, 16):
            text = SOURCE.replace("dim: int = 8", f"dim: int = {width}")
            engine.edited(str(path), tmp_path, {str(path): text}, focus=focus)
            read = functools.partial(lambda t: engine._scan_cache[str(path)][1] == t, text)
            await until(read, "the text read ahead")
        await until(lambda: worker.jobs, "the newest text's class built once the typing paused")

    asyncio.run(run())
    assert [width_of(j) for j in worker.jobs] == [16] and not worker.cancelled


IMPORTER = """from torch import nn

from widths import WIDTH


class Block(nn.Module):
    def __init__(self, dim: int = WIDTH):
        super().__init__()
        self.fc = nn.Linear(dim, dim)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
"""


def test_a_file_whose_import_was_edited_stages_all_its_classes(tmp_path: Path) -> None:
    """``LlamaConfig``'s default edited in ``configuration_llama.py``: the open
    ``modeling_llama.py`` is analysed again with no edit of its own to focus on. It was
    built before, its old figures stay (stale): one staged job of all its classes, each
    shown as it comes, not a parameters-only pass first and the shapes in a second job."""
    engine, worker, path = project(tmp_path)
    path.write_text(IMPORTER)
    widths = tmp_path / "widths.py"
    widths.write_text("WIDTH = 8\n")
    shown: list[list[str]] = []

    async def run() -> None:
        await engine.analyze(str(path), tmp_path, {}, lambda r: None)
        worker.jobs.clear()
        texts = {str(widths): "WIDTH = 16\n"}
        await engine.analyze(
            str(path), tmp_path, texts, lambda r: shown.append([m.name for m in r.models])
        )

    asyncio.run(run())
    [job] = worker.jobs
    assert [c.name for c in job.classes] == ["Block", "Net"]
    assert job.staged and job.shapes
    assert job.overrides == ((str(widths), "WIDTH = 16\n"),)
    assert shown[0] == ["Block"]  # Net's figures stay, stale, until it comes


def test_a_file_without_models_takes_its_line_figures_from_its_open_importer(
    tmp_path: Path,
) -> None:
    """``configuration_llama.py`` edited, ``modeling_llama.py`` open: the edited file has
    no model of its own, its line figures come from an importer's build. It takes the
    open importer's, once that one's own analysis has built it (found in the cache), not
    other importers' builds racing it on the cores."""
    engine, worker, path = held_project(tmp_path)
    path.write_text(IMPORTER)
    widths = tmp_path / "widths.py"
    widths.write_text("WIDTH = 8\n")
    other = tmp_path / "other.py"
    other.write_text(IMPORTER.replace("class Net", "class Wide"))

    async def run() -> None:
        await analysed_once(engine, worker, path)
        texts = {str(widths): "WIDTH = 16\n", str(path): IMPORTER}
        # the edited file's analysis first: it must not run ahead of the importer's
        edited = asyncio.ensure_future(engine.analyze(str(widths), tmp_path, texts, lambda r: None))
        importer = asyncio.ensure_future(engine.analyze(str(path), tmp_path, texts, lambda r: None))
        await until(lambda: worker.jobs, "the open importer's job")
        await asyncio.sleep(0.1)  # the edited file's analysis has had time to send a job
        assert [job.file for job in worker.jobs] == [str(path)]
        worker.release.set()
        await importer
        await edited

    asyncio.run(run())
    assert [job.file for job in worker.jobs] == [str(path)]  # the second request: cached


def test_slow_classes_of_a_file_whose_import_was_edited_are_built_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On two cores, classes whose last build took more than a second in all (LLaMA-7B's
    forward() on meta, about 1 s a model) come in two staged jobs at once, dealt in turn
    in the file's order, the result merged in that order; quick ones in one job."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(engine_module, "_available_mb", lambda: 16_000)
    names = ["Norm", "Mlp", "Model", "ForCausalLM", "ForClassification"]
    slow = {n: 900.0 for n in names}
    assert class_shares(names, slow, 2048) == [
        {"Norm", "Model", "ForClassification"},
        {"Mlp", "ForCausalLM"},
    ]
    assert class_shares(names, {n: 100.0 for n in names}, 2048) == [set(names)]
    assert class_shares(names, slow, 10_000) == [set(names)]  # one build's cap is all there is
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert class_shares(names, slow, 2048) == [set(names)]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    class Slow(EchoWorker):
        async def build(
            self, job: BuildJob, on_staged: Callable[[ModelResult], None] | None = None
        ) -> JobResult:
            result = await super().build(job, on_staged)
            return JobResult(models=tuple(replace(m, build_ms=700.0) for m in result.models))

    engine, _, path = project(tmp_path)
    worker = Slow()
    engine.workers["echo"] = worker  # type: ignore[assignment]
    path.write_text(IMPORTER)
    (tmp_path / "widths.py").write_text("WIDTH = 8\n")

    async def run() -> FileReport:
        await engine.analyze(str(path), tmp_path, {}, lambda r: None)
        worker.jobs.clear()
        texts = {str(tmp_path / "widths.py"): "WIDTH = 16\n"}
        return await engine.analyze(str(path), tmp_path, texts, lambda r: None)

    report = asyncio.run(run())
    assert sorted([c.name for c in job.classes] for job in worker.jobs) == [["Block"], ["Net"]]
    assert all(job.staged for job in worker.jobs)
    assert [m.name for m in report.models] == ["Block", "Net"]


def test_an_open_importer_is_built_during_the_debounce_of_its_imports_edit(
    tmp_path: Path,
) -> None:
    """``LlamaConfig``'s default edited, ``modeling_llama.py`` open: on the edit itself,
    once its text is read, the importer's classes are built (the staged job its own
    analysis asks for first); that analysis, after the debounce, joins the build and
    sends no second job. A newer edit cancels the older text's build."""
    engine, worker, path = held_project(tmp_path)
    path.write_text(IMPORTER)
    widths = str(tmp_path / "widths.py")
    (tmp_path / "widths.py").write_text("WIDTH = 8\n")
    shown: list[list[str]] = []

    async def run() -> None:
        await analysed_once(engine, worker, path)
        texts = {widths: "WIDTH = 16\n", str(path): IMPORTER}
        engine.edited(widths, tmp_path, texts, others={str(path): []})
        await until(lambda: worker.jobs, "the importer's job, during the debounce")
        [early] = worker.jobs
        assert [c.name for c in early.classes] == ["Block", "Net"] and early.staged
        assert early.overrides == ((widths, "WIDTH = 16\n"),)
        newer = {**texts, widths: "WIDTH = 32\n"}
        engine.edited(widths, tmp_path, newer, others={str(path): []})
        await until(lambda: len(worker.jobs) == 2, "the newer text's job")
        await until(lambda: worker.cancelled, "the older text's job cancelled")
        assert worker.cancelled == [early]
        running = asyncio.ensure_future(
            engine.analyze(
                str(path), tmp_path, newer, lambda r: shown.append([m.name for m in r.models])
            )
        )
        await until(lambda: shown, "the classes staged before the analysis came, shown")
        assert len(worker.jobs) == 2
        worker.release.set()
        await running

    asyncio.run(run())
    assert len(worker.jobs) == 2
    assert worker.jobs[1].overrides == ((widths, "WIDTH = 32\n"),)
