"""The simulated training step (``worker/forward/step.py``) against the same step run for
real on CPU tensors (``bench/step_reference.py``), option by option, on small models.

Tolerances, and why:
- exact bytes, less Adam's step counters: torch.optim keeps each parameter's ``step`` as a
  4-byte float32 tensor on the host unless the optimizer is fused or capturable, so on a GPU
  (and in the meta simulation) they are not device memory, while on the CPU they are.
  ``ref.peak - est.peak`` is then exactly 4 B per trainable parameter tensor (0 for SGD and
  for the autocast steps, which run on fake CPU tensors and count them too).
- 1% where the kernel differs: with attention "flash" the simulation runs CUDA's flash
  operator on meta, the reference the CPU's fused kernel; they save the same output and
  logsumexp, and CUDA's also its RNG state (24 B a call: the whole difference here).
- exact, documented differences where the meta kernels keep normalisation statistics in
  another dtype than the CPU's (half precision only: a few bytes per channel or row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from paramlens.worker.forward import step
from paramlens.worker.forward.step import (
    CUDA_CONTEXT,
    make_optimizer,
    multi_tensor_works,
    simulate_step,
)
from paramlens.worker.protocol import StepMemory, Training
from torch import nn

from bench import step_reference
from bench.step_reference import Measured, has_memtracker, measure_step, memtracker_step

Inputs = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]
ADAM_LIKE = ("adam", "adamw")


# -- small models ---------------------------------------------------------------------------


def tiny_mlp(width: int = 256) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


class Block(nn.Module):
    """A pre-norm transformer block with F.scaled_dot_product_attention."""

    def __init__(self, dim: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, layers: int = 4, dim: int = 32) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(Block(dim) for _ in range(layers)))
        self.head = nn.Linear(dim, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))  # type: ignore[no-any-return]


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class FrozenBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        self.backbone.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # type: ignore[no-any-return]


def randn(*shape: int) -> Inputs:
    return lambda: ((torch.randn(*shape),), {})


# -- the comparison ---------------------------------------------------------------------------


def on_meta_and_cpu(
    build: Callable[[], nn.Module],
    make_input: Inputs,
    training: Training,
    cpu_input: Inputs | None = None,
) -> tuple[StepMemory, Measured, int]:
    """The simulated step (model on meta), the real CPU step, and the bytes the CPU holds
    that the simulation rightly leaves out (Adam's host-side step counters)."""
    with torch.device("meta"):
        meta = build()
    estimate = simulate_step(meta, make_input, training)
    torch.manual_seed(0)
    cpu = build()
    trainable = sum(1 for p in cpu.parameters() if p.requires_grad)
    measured = measure_step(cpu, cpu_input or make_input, training)
    autocast = training.precision in ("bf16", "fp16")  # runs on fake CPU tensors
    host = 4 * trainable if training.optimizer in ADAM_LIKE and not autocast else 0
    return estimate, measured, host


def assert_exact(estimate: StepMemory, measured: Measured, host: int) -> None:
    assert estimate.peak + host == measured.peak, (estimate, measured)
    assert estimate.phase == measured.phase


def assert_close(estimate: StepMemory, measured: Measured, host: int, calls: int) -> None:
    """Within 1% (the contract where the kernels differ); on this torch the whole difference
    is CUDA's flash kernel's RNG state, which the CPU's fused kernel does not make: a philox
    seed (2 x uint64) and offset (uint64) per call, 24 B, saved for backward."""
    difference = estimate.peak + host - measured.peak
    assert abs(difference) <= 0.01 * measured.peak, (estimate, measured)
    assert difference == 24 * calls, (estimate, measured)
    assert estimate.phase == measured.phase


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd-momentum", "sgd"])
def test_each_optimizer_matches_the_cpu_to_the_byte(optimizer: str) -> None:
    estimate, measured, host = on_meta_and_cpu(tiny_mlp, randn(4, 64), Training(optimizer))
    assert_exact(estimate, measured, host)
    params = sum(p.numel() * 4 for p in tiny_mlp().parameters())
    states = {"adamw": 2, "adam": 2, "sgd-momentum": 1, "sgd": 0}[optimizer]
    assert estimate.optimizer_state == states * params


def test_a_torch_without_foreach_on_meta_simulates_the_for_loop_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch 2.1 has no meta kernel for ``_foreach_div_`` of a list of scalars (AdamW's
    foreach step fails on meta there): the simulation runs the for-loop step instead, says
    so, and matches that step on the CPU to the byte."""
    real = torch._foreach_div_

    def no_meta_kernel(tensors: list[torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        if any(t.device.type == "meta" for t in tensors):
            raise NotImplementedError("Could not run 'aten::_foreach_div_.ScalarList' on Meta")
        return real(tensors, *args, **kwargs)

    def for_loop(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer | None:
        return make_optimizer(name, list(params), foreach=False)

    monkeypatch.setattr(torch, "_foreach_div_", no_meta_kernel)
    monkeypatch.setattr(step_reference, "optimizer_for", for_loop)
    multi_tensor_works.cache_clear()
    try:
        estimate, measured, host = on_meta_and_cpu(tiny_mlp, randn(4, 64), Training("adamw"))
    finally:
        multi_tensor_works.cache_clear()
    assert not estimate.foreach
    assert_exact(estimate, measured, host)


def test_a_torch_whose_storages_have_no_lasting_object_says_the_step_needs_torch_2_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch 2.1 makes a new Python object at each ``untyped_storage()``: the storages
    cannot be followed (weak references to them crash its garbage collector), so the step
    is not simulated, and the reason names the version that can."""
    monkeypatch.setattr(step, "storages_are_tracked", lambda: False)
    with torch.device("meta"):
        model = tiny_mlp()
    with pytest.raises(step.StepError, match=r"needs torch 2\.2 or later \(this is 2\."):
        simulate_step(model, randn(4, 64), Training("adamw"))


def test_optimizer_none_is_forward_and_backward_only() -> None:
    estimate, measured, host = on_meta_and_cpu(tiny_mlp, randn(4, 64), Training(optimizer="none"))
    assert_exact(estimate, measured, host)
    assert estimate.optimizer_state == 0


@pytest.mark.parametrize("precision", ["bf16", "bf16-pure"])
def test_precision_matches_the_cpu(precision: str) -> None:
    training = Training(precision=precision)
    estimate, measured, host = on_meta_and_cpu(tiny_mlp, randn(8, 64), training)
    assert_exact(estimate, measured, host)


@pytest.mark.parametrize(("precision", "difference"), [("bf16-pure", 64), ("bf16", -64)])
def test_batch_norm_statistics_in_half_precision(precision: str, difference: int) -> None:
    # BatchNorm's saved mean and invstd (16 channels each): the meta kernel keeps them in
    # float32 (as CUDA does), the CPU's in the input's dtype when the weights share it
    # (bf16-pure: 2 B less each) and in float32 when they do not (autocast); the autocast
    # step runs on fake CPU tensors, whose kernel keeps them in bfloat16 (2 B less each)
    training = Training(precision=precision)
    estimate, measured, host = on_meta_and_cpu(conv_net, randn(8, 3, 16, 16), training)
    assert estimate.peak + host - measured.peak == difference  # 2 stats x 16 x 2 B


def test_autocast_with_math_attention_matches_the_cpu() -> None:
    # fails before the fix of attention.py: on fake CPU tensors "math" ran the CPU's fused
    # kernel (torch's own choice for CPU tensors), saving no attention matrix
    training = Training(precision="bf16", attention="math")
    estimate, measured, host = on_meta_and_cpu(TinyTransformer, randn(2, 64, 32), training)
    assert_exact(estimate, measured, host)


def test_bf16_pure_layer_norm_keeps_float32_statistics_as_cuda_does() -> None:
    # LayerNorm on bfloat16: the meta kernel (and CUDA's) keeps mean and rstd in float32,
    # the CPU's kernel in bfloat16; 2 x 2 B more per normalised row for each LayerNorm
    # whose statistics are alive at the peak (7 of 8 here: the peak is in the last block)
    training = Training(precision="bf16-pure", attention="math")
    estimate, measured, host = on_meta_and_cpu(TinyTransformer, randn(2, 64, 32), training)
    rows = 2 * 64
    assert estimate.peak + host - measured.peak == 7 * rows * 2 * 2


def test_autocast_with_flash_attention_matches_the_cpu_within_one_percent() -> None:
    training = Training(precision="bf16")  # "auto": bf16, head 16, no mask: flash
    estimate, measured, host = on_meta_and_cpu(TinyTransformer, randn(2, 64, 32), training)
    assert estimate.attention == "flash"
    assert_close(estimate, measured, host, calls=4)


def test_bf16_pure_halves_the_model_state() -> None:
    fp32, _, _ = on_meta_and_cpu(tiny_mlp, randn(2, 64), Training())
    pure, _, _ = on_meta_and_cpu(tiny_mlp, randn(2, 64), Training(precision="bf16-pure"))
    assert pure.parameters * 2 == fp32.parameters
    assert pure.optimizer_state * 2 == fp32.optimizer_state


def test_checkpointing_lowers_the_peak_and_matches_the_cpu() -> None:
    make = randn(2, 128, 32)
    plain, plain_cpu, host = on_meta_and_cpu(TinyTransformer, make, Training(attention="math"))
    training = Training(attention="math", checkpoint=("Block",))
    ckpt, ckpt_cpu, _ = on_meta_and_cpu(TinyTransformer, make, training)
    assert ckpt.checkpointed == 4
    assert_exact(plain, plain_cpu, host)
    assert_exact(ckpt, ckpt_cpu, host)
    assert ckpt.peak < plain.peak
    assert ckpt.activations < plain.activations


def test_a_frozen_backbone_has_no_gradients_nor_optimizer_state() -> None:
    estimate, measured, host = on_meta_and_cpu(FrozenBackbone, randn(8, 3, 32, 32), Training())
    assert_exact(estimate, measured, host)
    head = sum(p.numel() * 4 for p in FrozenBackbone().head.parameters())
    assert estimate.optimizer_state == 2 * head
    assert estimate.gradients <= head


@pytest.mark.parametrize("attention", ["flash", "math"])
def test_attention_matches_the_cpu_within_one_percent(attention: str) -> None:
    estimate, measured, host = on_meta_and_cpu(
        lambda: TinyTransformer(layers=2), randn(2, 256, 32), Training(attention=attention)
    )
    if attention == "math":
        assert_exact(estimate, measured, host)
    else:
        assert_close(estimate, measured, host, calls=2)
    assert estimate.attention == attention


def test_flash_attention_saves_less_than_math_where_the_matrix_dominates() -> None:
    build, make = lambda: TinyTransformer(layers=2), randn(2, 256, 32)
    flash, flash_cpu, _ = on_meta_and_cpu(build, make, Training(attention="flash"))
    math, math_cpu, _ = on_meta_and_cpu(build, make, Training(attention="math"))
    # the N x N matrix (2 x 2 heads x 256 x 256 floats, 1 MiB per layer) dominates here
    assert flash.peak < math.peak / 2
    assert flash_cpu.peak < math_cpu.peak / 2


def test_batch_scales_the_input() -> None:
    estimate, measured, host = on_meta_and_cpu(
        conv_net, randn(2, 3, 16, 16), Training(batch=8), cpu_input=randn(8, 3, 16, 16)
    )
    assert estimate.batch == 8
    assert_exact(estimate, measured, host)
    assert estimate.inputs == 8 * 3 * 16 * 16 * 4


def test_big_weights_and_a_small_batch_peak_in_the_optimizer_step() -> None:
    estimate, measured, host = on_meta_and_cpu(lambda: tiny_mlp(1024), randn(2, 64), Training())
    assert_exact(estimate, measured, host)
    assert estimate.phase == "optimizer"


def test_a_conv_net_at_a_big_batch_peaks_in_forward_or_backward_in_a_named_module() -> None:
    estimate, measured, host = on_meta_and_cpu(conv_net, randn(64, 3, 32, 32), Training())
    assert_exact(estimate, measured, host)
    assert estimate.phase in ("forward", "backward")
    names = {name for name, _ in conv_net().named_modules() if name}
    assert estimate.module in names


@pytest.mark.skipif(not has_memtracker(), reason="this torch has no MemTracker")
@pytest.mark.parametrize(
    ("build", "make", "training"),
    [
        (tiny_mlp, randn(4, 64), Training()),
        (conv_net, randn(16, 3, 16, 16), Training(optimizer="sgd-momentum")),
        (FrozenBackbone, randn(4, 3, 16, 16), Training()),
        (TinyTransformer, randn(2, 64, 32), Training(attention="flash", precision="bf16")),
    ],
    ids=["mlp-adamw", "conv-sgd-momentum", "frozen", "transformer-flash-bf16"],
)
def test_the_cpu_step_agrees_with_torchs_memtracker(
    build: Callable[[], nn.Module], make: Inputs, training: Training
) -> None:
    torch.manual_seed(0)
    ours = measure_step(build(), make, training)
    torch.manual_seed(0)
    theirs = memtracker_step(build(), make, training)
    assert ours.peak == theirs.peak


def test_the_largest_batch_fits_and_one_more_does_not() -> None:
    with torch.device("meta"):
        model = conv_net()
    make = randn(4, 3, 64, 64)
    card = CUDA_CONTEXT + (48 << 20)
    training = Training(gpu="tiny", gpu_bytes=card, workspace_bytes=8519680)
    step = simulate_step(model, make, training)
    best = step.max_batch
    assert best > 4, step.search

    def reserved(batch: int) -> int:
        at = dataclasses.replace(training, batch=batch, gpu_bytes=0)
        return simulate_step(model, make, at).gpu_reserved

    assert reserved(best) <= card - CUDA_CONTEXT < reserved(best + 1)
