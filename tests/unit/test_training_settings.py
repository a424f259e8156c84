"""The training step's settings (issue 18): batch, attention, checkpoint, loss, gpu and
precision, read like every other setting (a bad value is a message and the default), and
turned into the job's Training, whose every field changes the results' cache key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from paramlens import config
from paramlens.config import Settings
from paramlens.engine.engine import Engine, training_for
from paramlens.worker import protocol

from tests.conftest import FIXTURES

SEED = FIXTURES / "recipe" / "models.py"
GIB = 2**30


def test_the_defaults_simulate_the_example_batch_with_no_card() -> None:
    settings = Settings()
    assert (settings.batch, settings.attention, settings.checkpoint, settings.loss) == (
        0,
        "auto",
        (),
        "",
    )
    assert (settings.gpu, settings.precision, settings.optimizer) == ("", "fp32", "adamw")
    assert training_for(settings) == protocol.Training()


def test_pyproject_sets_every_training_option(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.paramlens]\n"
        'batch = 32\nattention = "math"\ncheckpoint = ["Block", "Block", "timm.Mlp"]\n'
        'loss = " output.logsumexp(-1).mean() "\ngpu = "24 GB"\nprecision = "bf16-pure"\n'
        'optimizer = "sgd"\n'
    )
    settings, problems = config.from_pyproject(tmp_path / "m.py")
    assert problems == []
    assert settings.batch == 32
    assert settings.attention == "math"
    assert settings.checkpoint == ("Block", "timm.Mlp")  # once each, in order
    assert settings.loss == "output.logsumexp(-1).mean()"
    assert (settings.gpu, settings.precision, settings.optimizer) == ("24 GB", "bf16-pure", "sgd")
    assert training_for(settings) == protocol.Training(
        optimizer="sgd",
        precision="bf16-pure",
        batch=32,
        attention="math",
        checkpoint=("Block", "timm.Mlp"),
        loss="output.logsumexp(-1).mean()",
        gpu="24 GB",
        gpu_bytes=24 * GIB,
        workspace_bytes=8_519_680,
    )


def test_editor_settings_are_camel_case_and_a_single_class_name_is_a_list() -> None:
    settings, problems = config.merge(
        Settings(), {"batch": 8, "checkpoint": "Block", "gpu": "rtx-4090"}, "editor"
    )
    assert problems == []
    assert (settings.batch, settings.checkpoint, settings.gpu) == (8, ("Block",), "rtx-4090")
    # an unset (null) editor value leaves the pyproject's
    settings, problems = config.merge(settings, {"gpu": None, "batch": None}, "editor")
    assert (settings.batch, settings.gpu, problems) == (8, "rtx-4090", [])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("batch", -1, "batch must be a whole number"),
        ("batch", 2.5, "batch must be a whole number"),
        ("batch", True, "batch must be a whole number"),
        ("batch", "16", "batch must be a whole number"),
        ("attention", "fast", "attention must be one of auto, math, flash, efficient"),
        ("checkpoint", ["Block", 3], "checkpoint must be a list of module class names"),
        ("checkpoint", ["not a name"], "checkpoint must be a list of module class names"),
        ("checkpoint", {"Block": 1}, "checkpoint must be a list of module class names"),
        ("loss", "output.(", "loss is not a Python expression of `output`"),
        ("loss", 3, "loss must be a string"),
        ("gpu", "24 XB", 'gpu must be a size such as "24GB" or a known card'),
        ("gpu", "GTX 9090", 'gpu must be a size such as "24GB" or a known card'),
        ("gpu", "A100", "gpu names two cards: write A100-40GB or A100-80GB"),
        ("gpu", "v100", "gpu names two cards: write V100-16GB or V100-32GB"),
        ("gpu", "0GB", "gpu must be a positive size"),
        ("gpu", 24, "gpu must be a string"),
        ("precision", "bf32", "precision must be one of fp32, bf16, fp16, bf16-pure"),
        ("gpus", 0, "gpus must be positive"),
        ("gpus", "8", "gpus must be a number"),
        ("strategy", "horovod", "strategy must be one of ddp, zero1, zero2, zero3, fsdp"),
        ("wrap", ["Block", 3], "wrap must be a list of module class names"),
    ],
)
def test_a_bad_training_value_is_a_message_and_the_default(
    name: str, value: object, message: str
) -> None:
    settings, problems = config.merge(Settings(), {name: value}, "pyproject.toml")
    assert settings == Settings()
    assert len(problems) == 1
    assert problems[0].startswith(f"pyproject.toml: {message}")
    assert problems[0].endswith(f"; using {getattr(Settings(), name)!r}")


@pytest.mark.parametrize(
    ("text", "gib"),
    [
        ("24GB", 24),
        ("24 GB", 24),
        ("24gb", 24),
        ("80GiB", 80),
        ("80 gib", 80),
        ("48G", 48),
        ("1.5 TB", 1536),
        ("A100-80GB", 80),
        ("a100 80gb", 80),
        ("A100-40GB", 40),
        ("H100", 80),
        ("H100-80GB", 80),
        ("H100 NVL", 94),
        ("h100-94gb", 94),
        ("H200", 141),
        ("A10", 24),
        ("A10G", 24),
        ("L4", 24),
        ("L40S", 48),
        ("L40", 48),
        ("T4", 16),
        ("V100-16GB", 16),
        ("V100-32GB", 32),
        ("RTX 4090", 24),
        ("NVIDIA GeForce RTX 4090", 24),
        ("rtx_4080", 16),
        ("RTX 3090", 24),
        ("RTX 3080", 10),
        ("RTX A6000", 48),
        ("RTX 6000 Ada", 48),
        ("RTX 5090", 32),
        ("B200", 180),
    ],
)
def test_card_memory_in_gib_as_cards_are_sold(text: str, gib: int) -> None:
    card = config.gpu_card(text)
    assert card is not None and card.memory == gib * GIB


def test_the_cublas_workspace_is_32_mib_on_hopper_only() -> None:
    # aten/src/ATen/cuda/CublasHandlePool.cpp: ":4096:8" on sm90, else ":4096:2:16:8"
    for hopper in ("H100", "H100-80GB", "H100 NVL", "H200"):
        card = config.gpu_card(hopper)
        assert card is not None and card.workspace == 33_554_432
    for other in ("A100-80GB", "L4", "RTX 4090", "B200", "24GB"):
        card = config.gpu_card(other)
        assert card is not None and card.workspace == 4096 * 1024 * 2 + 16 * 1024 * 8 == 8_519_680
    assert config.gpu_card("") is None and config.gpu_card("  ") is None


def test_a_card_the_settings_rejected_is_no_card_in_the_job() -> None:
    # Settings built directly (not through merge) with a bad value must not crash the job
    assert training_for(Settings(gpu="A100")) == protocol.Training()
    h100 = training_for(Settings(gpu="H100"))
    assert (h100.gpu, h100.gpu_bytes, h100.workspace_bytes) == ("H100", 80 * GIB, 33_554_432)


def test_several_gpus_travel_to_the_job_and_one_gpu_has_no_strategy() -> None:
    settings, problems = config.merge(
        Settings(), {"gpus": 8, "strategy": "fsdp", "wrap": "Block"}, "pyproject.toml"
    )
    assert problems == []
    training = training_for(settings)
    assert (training.gpus, training.strategy, training.wrap) == (8, "fsdp", ("Block",))
    one = training_for(dataclasses.replace(settings, gpus=1))
    assert (one.gpus, one.strategy) == (1, "")


def test_every_training_setting_changes_the_cache_key(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(SEED.read_text())
    engine = Engine(lambda _: Settings())
    workspace = engine.scan(tmp_path)

    def key(settings: Settings) -> str:
        job = engine.job_for(str(source), workspace, settings, {})
        assert job is not None
        return engine.cache_key(job, workspace, "python3")

    base = key(Settings())
    changed = {
        "batch": 16,
        "attention": "math",
        "checkpoint": ("Block",),
        "loss": "output.mean()",
        "gpu": "24GB",
        "precision": "bf16-pure",
        "optimizer": "sgd",
        "gpus": 8,
        "wrap": ("Block",),
    }
    keys = {name: key(dataclasses.replace(Settings(), **{name: v})) for name, v in changed.items()}
    assert all(k != base for k in keys.values()), keys
    assert len(set(keys.values())) == len(keys)
    # the card travels as written (the output names it so): another name of the same size
    # is another key
    assert key(Settings(gpu="24GB")) != key(Settings(gpu="RTX 4090"))
