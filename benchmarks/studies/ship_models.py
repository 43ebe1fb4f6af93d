"""Copy trained checkpoints into the repository (issue 34): the converged Fashion-MNIST teacher and student travel
with the code, so later studies and users start from them (`vitc quantize --checkpoint models/fashion-mnist/...`,
a pipeline's `from:`).

Each model is re-saved as a vitc checkpoint (safetensors + vitc.json) with its recorded metrics, a `shipped` record
(the source run, the stored dtype, top-1 of the stored weights on the 10k test images and on the 200-image slice
that ships beside them), and the slice itself (`test-slice-200.npz`: the first 200 test images as uint8 pixels and
their labels) so that a test can check each model without the Debian package. `--fp16 NAME` stores that model's
float tensors in float16 (the 50 MB budget: resnet18 is 45 MB in fp32); loading casts them back to fp32.

    python -m benchmarks.studies.ship_models --out models/fashion-mnist teacher=RUN/best student=RUN/best --fp16 teacher
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

SLICE = 200


def slice_top1(model, pre: dict, x: np.ndarray, y: np.ndarray) -> float:
    import torch
    from PIL import Image

    from vitc.data import build_transform

    tf = build_transform(pre, train=False)
    xs = torch.stack([tf(Image.fromarray(im).convert("RGB")) for im in x])
    with torch.no_grad():
        pred = torch.cat([model.eval()(c).argmax(1) for c in xs.split(500)]).numpy()
    return 100.0 * float((pred == y).mean())


def ship(name: str, src: Path, out: Path, fp16: bool, test: tuple, part: tuple, shipped: dict) -> dict:
    """Re-save one checkpoint under out/name. A teacher it records that ships too (`shipped`: source dir -> (dir,
    sha256)) is pointed at its shipped copy, so `vitc prune` on the shipped student finds its teacher."""
    import torch

    from vitc import checkpoint as ckpt
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(src)
    teacher = (meta.get("inputs") or {}).get("teacher") or {}
    if teacher.get("path") and str(Path(teacher["path"]).resolve()) in shipped:
        dst_t, sha = shipped[str(Path(teacher["path"]).resolve())]
        meta["inputs"]["teacher"] = {**teacher, "path": str(dst_t), "sha256": sha, "trained_with": teacher}
    if fp16:
        model = model.half()  # float tensors only: BatchNorm's counters stay integers
    dst = out / name
    stored = "float16" if fp16 else "float32"
    ckpt.save_checkpoint(dst, model, meta)
    back, _ = load_checkpoint_model(dst)  # what a user loads: fp32 parameters from the stored tensors
    assert next(back.parameters()).dtype == torch.float32
    full = slice_top1(back, meta["preprocess"], *test)
    sl = slice_top1(back, meta["preprocess"], *part)
    meta["shipped"] = {
        "from": str(src),
        "from_sha256": meta["weights_sha256"],
        "stored_dtype": stored,
        "test_top1_stored": full,  # the 10k test images, the weights as stored
        "slice_top1": sl,
        "slice": f"test-slice-200.npz: the first {SLICE} of the 10k test images",
    }
    meta.pop("weights_sha256")
    ckpt.save_checkpoint(dst, back.half() if fp16 else back, meta)
    shipped[str(src.resolve())] = (dst, ckpt.load_meta(dst)["weights_sha256"])
    return {
        "name": name,
        "from": str(src),
        "stored_dtype": stored,
        "recorded_top1": meta["metrics"]["top1"],
        "test_top1_stored": full,
        "slice_top1": sl,
        "mb": (dst / ckpt.WEIGHTS).stat().st_size / 1e6,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="NAME=CHECKPOINT_DIR")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fp16", action="append", default=[], help="store this model's floats in float16")
    a = p.parse_args()
    from vitc.tv_data import fashion_arrays

    arr = fashion_arrays()
    x, y = arr["val"]
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out / "test-slice-200.npz", images=x[:SLICE], labels=y[:SLICE])
    shipped: dict = {}
    rows = [  # in the order given: a teacher before the student that records it
        ship(n, Path(d), a.out, n in a.fp16, (x, y), (x[:SLICE], y[:SLICE]), shipped)
        for n, d in (s.split("=", 1) for s in a.models)
    ]
    digest = hashlib.sha256(np.ascontiguousarray(x[:SLICE]).tobytes() + y[:SLICE].tobytes()).hexdigest()
    (a.out / "shipped.json").write_text(json.dumps({"slice_sha256": digest, "models": rows}, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
