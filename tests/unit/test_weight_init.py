"""Weight initialisation is skipped while building: nobody reads those values."""

from __future__ import annotations

import torch
from paramlens.worker.build.placement import SkipWeightInit
from torch import nn

from tests.conftest import python_prints


def test_init_functions_and_in_place_methods_leave_parameters_alone() -> None:
    # nn.init.* hand a mode the tensor as a keyword (tensor=w), methods as args[0]: both
    # are skipped. On meta, nn.init.normal_ runs a Python decomposition that imports sympy
    weight = nn.Parameter(torch.zeros(4, 4))
    with SkipWeightInit():
        nn.init.normal_(weight)
        nn.init.kaiming_uniform_(weight, a=5**0.5)
        nn.init.trunc_normal_(weight, std=0.02)
        nn.init.constant_(weight, 3.0)
        weight.uniform_()
    assert torch.count_nonzero(weight) == 0


def test_small_tensors_that_are_not_parameters_still_compute() -> None:
    # a schedule or a mask is read (``.item()``): its values must be real
    table = torch.zeros(3)
    with SkipWeightInit():
        nn.init.constant_(table, 2.0)
        table.add_(1.0)
    assert table.tolist() == [3.0, 3.0, 3.0]


def test_a_meta_build_with_init_functions_needs_no_symbolic_machinery() -> None:
    # an nn.Embedding's constructor (nn.init.normal_) and a user's own init: skipped on
    # meta too, so no decomposition ran
    script = (
        "import sys, torch\n"
        "from torch import nn\n"
        "from paramlens.worker.build.placement import SkipWeightInit\n"
        "with SkipWeightInit(), torch.device('meta'):\n"
        "    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 8))\n"
        "    nn.init.trunc_normal_(model[1].weight, std=0.02)\n"
        "print('sympy' in sys.modules)\n"
    )
    assert python_prints(script) == ["False"]
