"""Outside check for `vitc bench`'s PyTorch rows, which have no runtime tool beside them:
torch.utils.benchmark.Timer (PyTorch's own benchmark tool) on the same model, 2 threads, batch 1,
random input of the model's shape, in this process only (run it once per model, fresh each time).

    python -m benchmarks.studies.torch_timer runs/student          # a checkpoint dir (its int8 recipe applied)
    python -m benchmarks.studies.torch_timer runs/int8/model-torchscript-lite-int8.ptl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.benchmark import Timer


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path, threads = Path(args[0]), int(args[1]) if len(args) > 1 else 2
    torch.set_num_threads(threads)
    if path.suffix == ".ptl":
        from torch.jit.mobile import _load_for_lite_interpreter

        model, pre = _load_for_lite_interpreter(str(path)), json.loads(Path(f"{path}.json").read_text())["preprocess"]
    else:
        from vitc.int8_recipe import apply_recipe
        from vitc.models import load_checkpoint_model

        model, meta = load_checkpoint_model(path)
        model, pre = apply_recipe(model, meta.get("quantization")).eval(), meta["preprocess"]
    x = torch.randn(1, *pre["input_size"])
    with torch.no_grad():
        for _ in range(20):
            model(x)
        t = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads).blocked_autorange(min_run_time=3)
    print(
        json.dumps(
            {
                "model": str(path),
                "threads": threads,
                "median_ms": round(t.median * 1e3, 3),
                "calls": len(t.times) * t.number_per_run,
                "statistic": "median of blocked_autorange's per-block means",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
