"""One rank's training step when training is spread over several GPUs (issue 18, item 5):
DDP's buckets, ZeRO-1's share of the optimizer state, FSDP2 really run over a fake process
group, and torch's own FSDPMemTracker as the reference where this torch has it."""

from __future__ import annotations

import pytest
import torch
from paramlens.worker.forward.sharding import rank_share
from paramlens.worker.forward.step import simulate_step
from paramlens.worker.protocol import StepMemory, Training
from torch import nn

WIDTH, HIDDEN, BLOCKS, RANKS, BATCH = 256, 1024, 4, 4, 32


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(WIDTH, HIDDEN)
        self.down = nn.Linear(HIDDEN, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(x)))


def model(device: str = "meta") -> nn.Sequential:
    with torch.device(device):
        return nn.Sequential(*[Block() for _ in range(BLOCKS)], nn.Linear(WIDTH, 10))


def step(strategy: str, **options: object) -> StepMemory:
    training = Training(gpus=RANKS, strategy=strategy, **options)  # type: ignore[arg-type]
    return simulate_step(model(), lambda: ((torch.randn(BATCH, WIDTH),), {}), training)


def nbytes(m: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in m.parameters())


def test_ddp_holds_one_more_copy_of_the_gradients_in_its_buckets() -> None:
    single = simulate_step(model(), lambda: ((torch.randn(BATCH, WIDTH),), {}), Training())
    ddp = step("ddp")
    assert ddp.gpus == RANKS and ddp.strategy == "ddp"
    assert ddp.peak == single.peak + nbytes(model())
    assert ddp.gradients == 2 * nbytes(model())  # the gradients and the buckets


def test_zero1_keeps_adam_state_only_for_its_share_of_the_parameters() -> None:
    params = list(model().parameters())
    share = rank_share(params, RANKS)
    assert 0 < len(share) < len(params)
    zero1 = step("zero1")
    assert zero1.optimizer_state == 2 * sum(p.numel() * p.element_size() for p in share)
    assert zero1.peak < step("ddp").peak


def test_fsdp_shards_parameters_gradients_and_state_over_the_ranks() -> None:
    zero3, zero2, ddp = step("zero3"), step("zero2"), step("ddp")
    assert zero3.units == BLOCKS  # the repeated blocks are the units
    assert zero3.peak < zero2.peak < ddp.peak  # zero2 keeps the parameters gathered
    # Adam's two moments of one rank's quarter of every parameter (FSDP pads each shard)
    assert nbytes(model()) // 2 <= zero3.optimizer_state < nbytes(model()) // 2 + 4096
    assert step("fsdp").peak == zero3.peak


def test_named_units_are_the_ones_sharded() -> None:
    assert step("zero3", wrap=("Linear",)).units == 2 * BLOCKS + 1


def test_zero3_equals_torchs_own_fsdp_memory_tracker() -> None:
    """The same step under FSDPMemTracker: second iteration, fake tensors, fake ranks."""
    fsdp2_mem_tracker = pytest.importorskip("torch.distributed._tools.fsdp2_mem_tracker")
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.testing._internal.distributed.fake_pg import FakeStore

    ours = step("zero3")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=RANKS)
    try:
        mesh = init_device_mesh("cpu", (RANKS,))
        with FakeTensorMode():
            m = model("cpu")
            for block in m[:BLOCKS]:
                fully_shard(block, mesh=mesh)
            fully_shard(m, mesh=mesh)
            optimizer = torch.optim.AdamW(m.parameters(), lr=1e-3, foreach=True)
            x = torch.randn(BATCH, WIDTH)
            for _ in range(2):
                tracker = fsdp2_mem_tracker.FSDPMemTracker(m, optimizer)
                tracker.track_inputs((x,))
                with tracker:
                    m(x).sum().backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            [peak] = tracker.get_tracker_snapshot("peak").values()
    finally:
        dist.destroy_process_group()
    assert ours.peak == peak["Total"]


def test_a_strategy_on_one_gpu_is_the_single_gpu_step() -> None:
    single = simulate_step(model(), lambda: ((torch.randn(BATCH, WIDTH),), {}), Training())
    one = simulate_step(
        model(),
        lambda: ((torch.randn(BATCH, WIDTH),), {}),
        Training(gpus=1, strategy="zero3"),
    )
    assert one == single


def test_fsdp_wrapped_modules_keep_their_class_names_in_the_module_table() -> None:
    zero3 = step("zero3")
    types = {m.type for m in zero3.modules}
    assert "Block" in types and not any(t.startswith("FSDP") for t in types), types
