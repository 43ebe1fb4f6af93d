"""`vitc info` and `vitc predict`: describe a checkpoint or artifact; classify images with any of them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..errors import VitcError
from ..handoff import Artifact, Checkpoint
from ..models import gflops  # noqa: F401  (re-exported: `vitc.inspect.gflops`)


def _layer_type(m: torch.nn.Module) -> str:
    # torch's quantized modules reuse plain names (quantized.dynamic.Linear): make them visible
    mod, name = type(m).__module__, type(m).__name__
    if ".quantized.dynamic" in mod:
        return f"DynamicQuantized{name}"
    return f"Quantized{name}" if ".quantized" in mod else name


def _is_layer(m: torch.nn.Module) -> bool:
    """Leaf modules, plus quantized layers (which hold a packed-params child of their own)."""
    if type(m).__name__ == "LinearPackedParams":
        return False
    return not list(m.children()) or ".quantized" in type(m).__module__


def describe(path: Path) -> dict:
    from ..models import count_params

    if Checkpoint.is_one(path):
        c = Checkpoint.open(path)
        flops = c.gflops
        leaves = Counter(_layer_type(m) for m in c.runnable.modules() if _is_layer(m))
        pruned = {}
        if c.spec.get("structure"):
            from ..structure import summary

            pruned = {
                "structure": c.spec["structure"],
                "widths": summary(c.spec["structure"]),
                "pruning": c.meta.get("pruning"),
            }
        return {
            "kind": "checkpoint",
            "path": str(path),
            "stage": c.stage,
            "model": c.spec,
            "params": count_params(c.runnable),
            "gflops_per_image": flops,
            **pruned,
            "layers": dict(leaves.most_common()),
            "input": c.pre.to_json(),
            "classes": c.classes,
            "data": c.recorded_data,
            "lineage": c.lineage,
            "quantization": c.quantization,
            "metrics": {k: v for k, v in c.metrics.items() if k.startswith(("top1", "teacher", "status"))},
        }
    m = Artifact.open(path).manifest.to_json()
    return {
        "kind": "artifact",
        "path": str(path),
        **{
            k: m.get(k)
            for k in (
                "target",
                "precision",
                "size_bytes",
                "status",
                "data",
                "validation",
                "notes",
                "source",
                "preprocess",
                "classes",
            )
        },
    }


def open_model(path: Path) -> Checkpoint | Artifact:
    """A checkpoint dir or an artifact with its manifest; one sentence when it is neither."""
    from .. import export

    path = Path(path)
    if not path.exists():
        raise VitcError(f"{path} does not exist", "pass a checkpoint dir or an artifact written by `vitc export`")
    if Checkpoint.is_one(path):
        return Checkpoint.open(path)
    by_suffix = export.by_suffix()
    if path.suffix not in by_suffix:
        raise VitcError(
            f"{path.name}: unknown artifact type {path.suffix!r}", f"known: {', '.join(by_suffix)} or a checkpoint dir"
        )
    return Artifact.open(path)


def load_artifact(a: Artifact, threads: int | None):
    """The artifact's runtime callable, or one sentence on why it cannot run here."""
    from .. import export

    target = export.get(a.target)
    why = target.check()
    if why:
        raise VitcError(f"cannot run {a.path.name}: {why}")
    try:
        return target.load(a.path, threads)
    except VitcError:
        raise
    except Exception as e:
        raise VitcError(
            f"{a.path.name} is not a loadable {target.NAME} artifact ({type(e).__name__}: {str(e)[:120]})",
            "re-export it with `vitc export`",
        ) from e


def runner(path: Path, threads: int | None = None):
    """-> (fn(np.ndarray) -> logits, preprocess, classes) for a checkpoint dir or any artifact."""
    h = open_model(path)
    if isinstance(h, Checkpoint):
        return h.runner(), h.pre.to_json(), h.classes
    return load_artifact(h, threads), h.pre.to_json(), h.classes


def predict(path: Path, images: list[Path], topk: int = 5, threads: int | None = None) -> list[dict]:
    """Checkpoints and .ptl/.pte/.engine artifacts (.onnx and .xml take the torch-free path: vitc.export.edge_run)."""
    from ..data import build_transform, load_image, pixel_transform

    fn, pre, classes = runner(path, threads)
    h = open_model(path)
    if isinstance(h, Artifact) and h.manifest.in_graph:
        tf = pixel_transform(pre)  # the artifact normalizes itself: uint8 pixels in
        x = np.stack([tf(load_image(p)) for p in images])
    else:
        tf = build_transform(pre, train=False)
        x = torch.stack([tf(load_image(p)) for p in images]).numpy()
    logits = fn(x)
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    k = min(topk, prob.shape[1])
    out = []
    for p, row in zip(images, prob):
        idx = np.argsort(-row)[:k]
        out.append({"image": str(p), "top": [{"label": classes[i], "prob": float(row[i])} for i in idx]})
    return out
