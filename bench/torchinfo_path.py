"""torchinfo's usual path, for comparison: instantiate on CPU, then torchinfo.summary.

Usage: python -m bench.torchinfo_path FILE EXPRESSION [--meta]
Prints the totals torchinfo reports and torch's own count, as JSON. With --meta, only torch's
own count of the model built on the meta device (for models too big to build for real).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main() -> None:
    path, expression = Path(sys.argv[1]), sys.argv[2]
    import torch
    import torchinfo

    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("bench_target", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "--meta" in sys.argv:
        with torch.device("meta"):
            model = eval(expression, vars(module))
        own = sum(p.numel() for p in model.parameters())
        print(json.dumps({"torchinfo_total": None, "torch_total": own}))
        return
    model = eval(expression, vars(module))
    stats = torchinfo.summary(model, verbose=0)
    own = sum(p.numel() for p in model.parameters())
    print(json.dumps({"torchinfo_total": stats.total_params, "torch_total": own}))


if __name__ == "__main__":
    main()
