"""`vitc info` and `vitc predict`: describe a checkpoint or artifact; classify images with any of them."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..errors import VitcError


def gflops(model: torch.nn.Module, input_size: list[int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval()(torch.zeros(1, *input_size))
    return fc.get_total_flops() / 1e9


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
    from ..compress.quantize import apply_recipe
    from ..models import count_params, load_checkpoint_model

    if ckpt.is_checkpoint_dir(path):
        model, meta = load_checkpoint_model(path)
        flops = gflops(model, meta["preprocess"]["input_size"])
        model = apply_recipe(model, meta.get("quantization"))
        leaves = Counter(_layer_type(m) for m in model.modules() if _is_layer(m))
        pruned = {}
        if meta["model"].get("structure"):
            from ..structure import summary

            pruned = {"structure": meta["model"]["structure"], "widths": summary(meta["model"]["structure"]),
                      "pruning": meta.get("pruning")}
        return {"kind": "checkpoint", "path": str(path), "stage": meta.get("stage"), "model": meta["model"],
                "params": count_params(model), "gflops_per_image": flops, **pruned, "layers": dict(leaves.most_common()),
                "input": meta["preprocess"], "classes": meta["classes"], "quantization": meta.get("quantization"),
                "metrics": {k: v for k, v in meta.get("metrics", {}).items() if k.startswith(("top1", "teacher", "status"))}}
    from ..export.stage import read_manifest

    m = read_manifest(path)
    return {"kind": "artifact", "path": str(path), **{k: m[k] for k in ("target", "precision", "size_bytes", "status",
                                                                          "validation", "notes", "source", "preprocess", "classes")}}


def runner(path: Path, threads: int | None = None):
    """-> (fn(np.ndarray) -> logits, preprocess, classes) for a checkpoint dir or any artifact."""
    from .. import export

    if not path.exists():
        raise VitcError(f"{path} does not exist", "pass a checkpoint dir or an artifact written by `vitc export`")
    if ckpt.is_checkpoint_dir(path):
        from ..compress.quantize import apply_recipe
        from ..models import load_checkpoint_model

        model, meta = load_checkpoint_model(path)
        model = apply_recipe(model, meta.get("quantization"))

        def fn(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        return fn, meta["preprocess"], meta["classes"]
    from ..export.stage import read_manifest

    by_suffix = export.by_suffix()
    target = by_suffix.get(path.suffix)
    if target is None:
        raise VitcError(f"{path.name}: unknown artifact type {path.suffix!r}", f"known: {', '.join(by_suffix)} or a checkpoint dir")
    why = target.check()
    if why:
        raise VitcError(f"cannot run {path.name}: {why}")
    m = read_manifest(path)
    try:
        fn = target.load(path, threads)
    except VitcError:
        raise
    except Exception as e:
        raise VitcError(f"{path.name} is not a loadable {target.NAME} artifact ({type(e).__name__}: {str(e)[:120]})",
                        "re-export it with `vitc export`") from e
    return fn, m["preprocess"], m["classes"]


def predict(path: Path, images: list[Path], topk: int = 5, threads: int | None = None) -> list[dict]:
    from ..data import build_transform, load_image

    fn, pre, classes = runner(path, threads)
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
