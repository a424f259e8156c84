"""An edited module of a package run again in the package's zygote (worker/reload.py):
the figures equal those of a fresh import of the edited package, and the log says which
way each job went.

The package (fixtures/livepkg/zoo) is shaped like timm: a registry filled by ``@register``,
layers imported by name (an int among them), a model module whose class another module
subclasses at import time, a module that reaches its models through the registry and
through the module object, and re-exports from the package's ``__init__``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from paramlens.engine.worker_client import WorkerClient
from paramlens.worker import protocol
from paramlens.worker.protocol import BuildJob, ClassSpec, JobResult

from tests.conftest import FIXTURES

VIT = {
    "Block": "Block(32)",
    "ViT": "ViT()",
    "vit_tiny": "vit_tiny()",
    "vit_small": "vit_small()",
}
HYBRID = {"Hybrid": "Hybrid()", "hybrid_small": "hybrid_small()"}
DISTILLED = {"DistilledViT": "DistilledViT()", "vit_distilled": "vit_distilled()"}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "livepkg", tmp_path / "ws")
    return tmp_path / "ws"


def job(workspace: Path, module: str, ctors: dict[str, str], texts: dict[Path, str]) -> BuildJob:
    path = workspace / (module.replace(".", "/") + ".py")
    source = texts.get(path, path.read_text())
    specs = []
    for name, ctor in ctors.items():
        line = next(
            i
            for i, text in enumerate(source.splitlines(), 1)
            if text.startswith((f"class {name}(", f"def {name}("))
        )
        kind = "factory" if ctor.startswith(name[0].lower()) and name[0].islower() else "class"
        specs.append(ClassSpec(name, line, ctor, kind=kind))
    return BuildJob(
        file=str(path),
        module=module,
        sys_path=(str(workspace),),
        workspace=str(workspace),
        classes=tuple(specs),
        overrides=tuple((str(p), t) for p, t in texts.items()),
        timeout_s=60,
    )


def figures(result: JobResult) -> list[Any]:
    """The models as the server gets them, without their timings."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("_ms")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(protocol.to_json(m)) for m in result.models]


class Logged(WorkerClient):
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        super().__init__(sys.executable, self.lines.append)


@pytest.fixture
async def warm() -> AsyncIterator[Logged]:
    """A worker whose zygote of ``zoo`` imported it once."""
    client = Logged()
    yield client
    await client.stop()


async def cold_figures(monkeypatch: pytest.MonkeyPatch, jobs: list[BuildJob]) -> list[Any]:
    """Each job built by a fresh import of the package, as its texts are (no zygote)."""
    monkeypatch.setenv("PARAMLENS_NO_ZYGOTE", "1")
    client = Logged()
    try:
        return [figures(await client.build(j)) for j in jobs]
    finally:
        await client.stop()
        monkeypatch.delenv("PARAMLENS_NO_ZYGOTE")


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, old
    return text.replace(old, new)


def said(client: Logged, words: str) -> bool:
    return any(words in line for line in client.lines)


async def test_an_unsaved_edit_runs_only_its_module_again_with_the_figures_of_a_fresh_import(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo = package / "zoo"
    before = await warm.build(job(package, "zoo.vit", VIT, {}))  # the zygote imports zoo
    vit = edit(zoo / "vit.py", "dim: int = 64", "dim: int = 40")
    vit = vit.replace("ViT(dim=32, **kwargs)", "ViT(dim=24, **kwargs)")  # a registered factory
    vit = vit.replace(
        "self.norm2 = nn.LayerNorm(dim)", "self.norm2 = nn.LayerNorm(dim, bias=False)"
    )
    texts = {zoo / "vit.py": vit}
    jobs = [
        job(package, "zoo.vit", VIT, texts),
        job(package, "zoo.hybrid", HYBRID, texts),  # the registry's vit_tiny, vit.Block
        job(package, "zoo.distilled", DISTILLED, texts),  # a subclass of the edited ViT
    ]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    assert warm_figures[0] != figures(before)
    [vit_model] = [m for m in warm_figures[0] if m["name"] == "ViT"]
    assert vit_model["total_params"] > 0
    assert said(warm, "ran zoo.vit, zoo.distilled again"), "\n".join(warm.lines)
    assert said(warm, "zoo.distilled runs again too: its DistilledViT was made from zoo.vit.ViT")
    assert not said(warm, "declined"), warm.lines


async def test_an_edit_of_a_module_others_import_names_from(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo = package / "zoo"
    await warm.build(job(package, "zoo.vit", VIT, {}))
    layers = edit(zoo / "layers.py", "MLP_RATIO = 4", "MLP_RATIO = 2")  # `import ... as RATIO`
    layers = layers.replace(
        "self.proj = nn.Linear(dim, dim)", "self.proj = nn.Linear(dim, dim, bias=False)"
    )
    texts = {zoo / "layers.py": layers}
    jobs = [job(package, "zoo.vit", VIT, texts), job(package, "zoo.hybrid", HYBRID, texts)]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    assert said(warm, "ran zoo.layers again"), warm.lines
    assert not said(warm, "declined"), warm.lines


async def test_a_saved_edit_brings_the_zygote_up_to_date_once(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo = package / "zoo"
    await warm.build(job(package, "zoo.vit", VIT, {}))
    (zoo / "vit.py").write_text(edit(zoo / "vit.py", "dim: int = 64", "dim: int = 56"))
    stat = (zoo / "vit.py").stat()
    os.utime(zoo / "vit.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    jobs = [job(package, "zoo.vit", VIT, {}), job(package, "zoo.hybrid", HYBRID, {})]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    ran_again = [line for line in warm.lines if "ran zoo.vit, zoo.distilled again" in line]
    assert len(ran_again) == 1, warm.lines  # by the zygote, for the first job only
    assert "not the whole package" in ran_again[0]
    assert not said(warm, "declined"), warm.lines


async def test_what_cannot_be_made_exact_is_imported_afresh_and_said(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a table holding something made from vit's Block: running vit again would leave it
    # holding the old Block, and running this module again would empty it
    zoo = package / "zoo"
    (zoo / "blocks.py").write_text(
        "import functools\n\nfrom .vit import Block\n\n"
        "BLOCKS = {'wide': functools.partial(Block, 64)}\n"
    )
    init = zoo / "__init__.py"
    init.write_text(init.read_text() + "from . import blocks\n")
    await warm.build(job(package, "zoo.vit", VIT, {}))
    texts = {zoo / "vit.py": edit(zoo / "vit.py", "dim: int = 64", "dim: int = 40")}
    jobs = [job(package, "zoo.vit", VIT, texts)]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    assert said(warm, "declined a job of zoo.vit"), warm.lines
    assert said(warm, "zoo.blocks.BLOCKS holds something made from zoo.vit.Block"), warm.lines


async def test_a_lazy_package_runs_only_the_edited_config_again(
    tmp_path: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose ``__init__`` imports none of its modules (transformers): the zygote
    imports the edited job's module once, so that an unsaved edit of the config it imports
    runs that config again alone, not the model's whole import in every job's child."""
    shutil.copytree(FIXTURES / "lazypkg", tmp_path / "ws")
    package = tmp_path / "ws"
    config = package / "lazy" / "config.py"
    nets = {"Net": "Net()"}
    before = await warm.build(job(package, "lazy.model", nets, {}))  # the zygote: `lazy` only
    jobs = [
        job(
            package,
            "lazy.model",
            nets,
            {config: edit(config, "width: int = 32", f"width: int = {w}")},
        )
        for w in (48, 64)
    ]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    assert warm_figures[0] != figures(before) and warm_figures[0] != warm_figures[1]
    assert said(warm, "ran lazy.config again in"), "\n".join(warm.lines)
    assert not said(warm, "declined"), warm.lines


async def test_a_module_opened_is_imported_once_the_zygote_is_idle(
    tmp_path: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file opened, not edited: once its job is built, the idle zygote imports its module
    (the first edit of the config it imports then runs the config alone again), and the
    edit's figures stay those of a fresh import."""
    shutil.copytree(FIXTURES / "lazypkg", tmp_path / "ws")
    package = tmp_path / "ws"
    config = package / "lazy" / "config.py"
    nets = {"Net": "Net()"}
    await warm.build(job(package, "lazy.model", nets, {}))
    for _ in range(600):
        if said(warm, "paramlens zygote: imported lazy.model"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("\n".join(warm.lines))
    edited = job(
        package, "lazy.model", nets, {config: edit(config, "width: int = 32", "width: int = 48")}
    )
    assert figures(await warm.build(edited)) == (await cold_figures(monkeypatch, [edited]))[0]
    assert said(warm, "ran lazy.config again in"), "\n".join(warm.lines)
    assert not said(warm, "declined"), warm.lines


async def prepared(client: Logged, texts: dict[Path, str], package: Path) -> None:
    """Send an edit's texts ahead of its jobs, as the server does on didChange, and wait
    until the zygote's process prepared for them has run them."""
    before = sum("prepared for the edit" in line for line in client.lines)
    client.prepare_edit(dataclasses.replace(job(package, "zoo.vit", {}, texts), timeout_s=60))
    for _ in range(600):
        if sum("prepared for the edit" in line for line in client.lines) > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("\n".join(client.lines))


def forked_from_prepared(client: Logged) -> int:
    return sum("forks from the process prepared for its text" in line for line in client.lines)


async def test_an_edit_prepared_during_the_debounce_gives_the_figures_of_a_fresh_import(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit's modules run again in a process forked from the zygote as soon as its text
    is sent; its jobs' children fork from that process. A preparation of an older text is
    never used for a newer one's jobs."""
    zoo = package / "zoo"
    await warm.build(job(package, "zoo.vit", VIT, {}))  # the zygote imports zoo
    older = {zoo / "vit.py": edit(zoo / "vit.py", "dim: int = 64", "dim: int = 48")}
    vit = edit(zoo / "vit.py", "dim: int = 64", "dim: int = 40")
    newer = {zoo / "vit.py": vit.replace("ViT(dim=32, **kwargs)", "ViT(dim=24, **kwargs)")}
    jobs = [
        job(package, "zoo.vit", VIT, newer),
        job(package, "zoo.hybrid", HYBRID, newer),  # the registry's vit_tiny, vit.Block
        job(package, "zoo.distilled", DISTILLED, newer),  # a subclass of the edited ViT
    ]
    await prepared(warm, older, package)
    stale = figures(await warm.build(jobs[0]))  # the older text's process is not used
    assert forked_from_prepared(warm) == 0, warm.lines
    for width in (44, 52):  # typed on: each newer text replaces the one being prepared
        typed = {zoo / "vit.py": edit(zoo / "vit.py", "dim: int = 64", f"dim: int = {width}")}
        warm.prepare_edit(dataclasses.replace(job(package, "zoo.vit", {}, typed), timeout_s=60))
    await prepared(warm, newer, package)
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert forked_from_prepared(warm) == len(jobs), warm.lines
    assert warm_figures == await cold_figures(monkeypatch, jobs)
    assert stale == warm_figures[0]
    assert not said(warm, "declined"), warm.lines


async def test_an_edit_whose_preparation_fails_is_built_the_usual_way(
    package: Path, warm: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text that cannot run (typed halfway): the prepared process ends, and that text's
    job is built as without it, its error the same as a fresh import's."""
    zoo = package / "zoo"
    await warm.build(job(package, "zoo.vit", VIT, {}))
    broken = {zoo / "vit.py": edit(zoo / "vit.py", "dim: int = 64", "dim: int = (64")}
    before = sum("preparing for an edit failed" in line for line in warm.lines)
    warm.prepare_edit(dataclasses.replace(job(package, "zoo.vit", {}, broken), timeout_s=60))
    for _ in range(600):
        if sum("preparing for an edit failed" in line for line in warm.lines) > before:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("\n".join(warm.lines))
    jobs = [job(package, "zoo.vit", {"ViT": "ViT()"}, broken)]
    warm_figures = [figures(await warm.build(j)) for j in jobs]
    assert forked_from_prepared(warm) == 0, warm.lines
    [[cold]] = await cold_figures(monkeypatch, jobs)
    [[warm_vit]] = warm_figures
    # the traceback's frames differ (a module run again, not imported): the error does not
    assert warm_vit["error"].pop("traceback") and cold["error"].pop("traceback")
    assert warm_vit == cold and warm_vit["error"]["kind"] == "import"
