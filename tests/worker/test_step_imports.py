"""The simulated step in the worker imports no torch._dynamo: the worker defers it (over a
second to import), and an optimizer's step calls torch._dynamo.graph_break()."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, torch
from torch import nn
from paramlens.worker.processes.startup import defer_dynamo
defer_dynamo()
from paramlens.worker.forward.step import simulate_step
from paramlens.worker.protocol import Training
with torch.device("meta"):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
simulate_step(model, lambda: ((torch.randn(4, 8),), {}), Training())
print(type(sys.modules["torch._dynamo"]).__name__)
"""


def test_a_step_leaves_torch_dynamo_deferred() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "_DeferredDynamo", done.stderr[-2000:]
