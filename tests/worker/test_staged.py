"""A staged job (issue 21: the edited class first): each class's result comes before its
training step, with its step said to be pending and its figures those of the final result,
then again once final, all before the job's own result; from a zygote's child after an
unsaved edit and from a plain child alike."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from paramlens.engine.worker_client import WorkerClient
from paramlens.worker import protocol
from paramlens.worker.protocol import ModelResult

from tests.conftest import FIXTURES
from tests.worker.test_reload import VIT, edit, job


def without_step(model: ModelResult) -> dict[str, Any]:
    """The model as shown before its step: no step, no sum, no timings."""
    assert model.forward is not None
    forward = dataclasses.replace(
        model.forward, step=None, step_pending=False, step_error="", train_bytes=0
    )
    shown = protocol.to_json(dataclasses.replace(model, forward=forward))
    return {k: v for k, v in shown.items() if not k.endswith("_ms")}


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "plain child"])
async def test_each_class_comes_before_its_step_then_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zygote: bool
) -> None:
    shutil.copytree(FIXTURES / "livepkg", tmp_path / "ws")
    package = tmp_path / "ws"
    if not zygote:
        monkeypatch.setenv("PARAMLENS_NO_ZYGOTE", "1")
    client = WorkerClient(sys.executable, lambda _: None)
    try:
        await client.build(job(package, "zoo.vit", VIT, {}))  # a zygote imports zoo
        vit = package / "zoo" / "vit.py"
        texts = {vit: edit(vit, "dim: int = 64", "dim: int = 40")}
        classes = {"Block": VIT["Block"], "ViT": VIT["ViT"]}
        staged: list[ModelResult] = []
        built = dataclasses.replace(job(package, "zoo.vit", classes, texts), staged=True)
        result = await client.build(built, staged.append)
        unstaged: list[ModelResult] = []
        again = await client.build(job(package, "zoo.vit", classes, texts), unstaged.append)
    finally:
        await client.stop()

    assert [(m.name, m.forward.step_pending) for m in staged if m.forward] == [
        ("Block", True),
        ("Block", False),
        ("ViT", True),
        ("ViT", False),
    ]
    final = {m.name: m for m in result.models}
    for early, late in zip(staged[::2], staged[1::2], strict=True):
        assert early.forward is not None and early.forward.step is None
        assert early.forward.train_bytes == 0  # the old sum is never shown in its place
        assert without_step(early) == without_step(late)
        assert late == final[late.name]
        assert late.forward is not None and late.forward.step is not None
    assert final["ViT"].total_params > 0
    assert not unstaged  # a job not staged sends its result once, at its end
    assert [without_step(m) for m in again.models] == [without_step(m) for m in result.models]
