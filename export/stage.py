"""`vitc export` / `vitc quantize --backend X`: checkpoint -> artifact -> load back -> validate
on real val images against the PyTorch model -> manifest JSON beside the artifact."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from vitc import checkpoint as ckpt
from vitc.data import eval_tensors, load_source
from vitc.errors import AccuracyGateError, ConfigError, VitcError
from vitc.models import load_checkpoint_model
from vitc.validate import compare, reference_logits, run_artifact

from . import get
from .head_tokens import rewrite

# (atol on logits, minimum top-1 agreement with fp32 PyTorch) per precision
TOLERANCE = {"fp32": (1e-3, 0.999), "fp16": (5e-2, 0.99), "int8": (1.5, 0.97)}
CALIB_SEED = 0


def calibration_images(data: str, pre: dict, n: int) -> torch.Tensor:
    """n real images from the *train* split (never val, never random tensors), eval transform."""
    src = load_source(data, pre["input_size"][-1])
    g = np.random.default_rng(CALIB_SEED)
    idx = g.permutation(len(src.train.targets))[:n]
    sub = type(src.train)([src.train.items[i] for i in idx], [src.train.targets[i] for i in idx])
    return eval_tensors(sub, pre)[0]


def artifact_path(out_dir: Path, stem: str, target, precision: str) -> Path:
    return out_dir / f"{stem}-{target.NAME}-{precision}{target.SUFFIX}"


def export_checkpoint(ckpt_dir: Path, target_name: str, precision: str, out_dir: Path, *, data: str | None = None,
                      calib: str | None = None, calib_size: int = 128, threads: int | None = None,
                      max_drop: float | None = None, stem: str | None = None, opts: dict | None = None,
                      features: bool = False) -> dict:
    """features: export the pre-logits token features (`vitc features`) instead of the logits, validated
    against PyTorch's features (max diff, cosine)."""
    if max_drop is not None and max_drop < 0:
        raise ConfigError(f"--max-drop {max_drop} is negative", "give the allowed top-1 loss in points, e.g. 1.0")
    target = get(target_name)
    why = target.check()
    if why:
        raise VitcError(f"{target.NAME} target unavailable here: {why}")
    model, meta = load_checkpoint_model(ckpt_dir)
    if meta.get("quantization"):
        if target.NAME != "torchscript-lite":
            raise ConfigError(f"{ckpt_dir} holds a PyTorch dynamic-int8 recipe, which {target.NAME} cannot load",
                              f"export the fp32 checkpoint with --target {target.NAME} --precision int8")
        precision = "int8"  # the target applies the same dynamic-int8 recipe: name the artifact for what it is
    pre = meta["preprocess"]
    data = data or meta.get("config", {}).get("data", "digits")
    src = load_source(data, pre["input_size"][-1])
    if src.classes != meta["classes"]:
        raise ConfigError(f"--data {data} has classes {src.classes[:5]}... but the checkpoint has {meta['classes'][:5]}...")
    X, Y = eval_tensors(src.val, pre)
    kw = dict(opts or {})
    kw["precision"] = precision
    if precision == "int8" and "calibration" in target.Options.__dataclass_fields__:
        kw["calibration"] = calibration_images(calib or data, pre, calib_size)
    if "metadata" in target.Options.__dataclass_fields__:
        kw["metadata"] = {"vitc.classes": meta["classes"], "vitc.preprocess": pre,
                          "vitc.source_sha256": meta["weights_sha256"], "vitc.model": meta["model"]["name"]}
    o = target.Options(**kw)
    out = artifact_path(Path(out_dir), (stem or Path(ckpt_dir).name) + ("-features" if features else ""), target, precision)
    if features:
        from vitc.inspect.features import FeatureTokens

        model = FeatureTokens(model)
    ref = reference_logits(model, X)  # fp32 PyTorch, taken before any exporter touches the model
    t0 = time.perf_counter()
    graph_model, graph = rewrite(model)  # same logits, less work; validated below against `ref`
    target.export(graph_model, X[:2], out, o)  # batch 2: torch.export specialises a batch of 1 to a constant
    export_s = time.perf_counter() - t0
    atol, agree = TOLERANCE[precision]
    got = run_artifact(target.load(out, threads), X, 32)
    if features:
        from vitc.inspect.features import compare_features

        return _features_manifest(out, target, precision, o, ckpt_dir, meta, compare_features(ref, got, precision),
                                  export_s, pre, model)
    v = compare(ref, got, Y.numpy(), atol, agree)
    drop = v.top1_reference - v.top1_artifact
    gate_failed = max_drop is not None and drop > max_drop
    size = _size(out)
    manifest = {"artifact": out.name, "target": target.NAME, "precision": precision, "size_bytes": size,
                "status": "ok" if v.passed and not gate_failed else ("failed: accuracy gate" if gate_failed else "failed: validation"),
                "source": {"checkpoint": str(ckpt_dir), "weights_sha256": meta["weights_sha256"],
                           "quantization": meta.get("quantization")},
                "options": {k: v_ for k, v_ in vars(o).items() if k != "calibration"},
                "calibration": ({"data": calib or data, "split": "train", "images": calib_size}
                                if getattr(o, "calibration", None) is not None else None),  # None: the target used none
                "graph": {**graph, **_flops(model, graph_model, pre)},  # export/head_tokens.py: what ran on the model
                "notes": dict(getattr(target, "notes", {})), "validation": v.to_json(), "top1_drop": drop,
                "max_drop": max_drop, "export_s": export_s, "classes": meta["classes"], "preprocess": pre,
                "versions": _versions(target.NAME)}
    ckpt.write_json(Path(str(out) + ".json"), manifest)
    if gate_failed:
        raise AccuracyGateError(f"{out.name}: top-1 {v.top1_artifact:.2f}% vs fp32 {v.top1_reference:.2f}% "
                                f"(drop {drop:.2f} > --max-drop {max_drop})", "artifact kept and marked failed in its manifest")
    return manifest


def _size(out: Path) -> int:
    """Bytes on disk of an artifact: the file and its external-data siblings (an IR: .xml + .bin), no manifest."""
    size = sum(p.stat().st_size for p in out.parent.glob(out.name + "*") if p.suffix != ".json")
    return size + (out.with_suffix(".bin").stat().st_size if out.suffix == ".xml" else 0)


def _features_manifest(out: Path, target, precision: str, o, ckpt_dir: Path, meta: dict, v: dict, export_s: float,
                       pre: dict, model) -> dict:
    size = _size(out)
    manifest = {"artifact": out.name, "target": target.NAME, "precision": precision, "size_bytes": size,
                "output": "features", "tokens": model.token_names, "status": "ok" if v["passed"] else "failed: validation",
                "source": {"checkpoint": str(ckpt_dir), "weights_sha256": meta["weights_sha256"], "quantization": meta.get("quantization")},
                "options": {k: v_ for k, v_ in vars(o).items() if k != "calibration"}, "validation": v, "export_s": export_s,
                "classes": meta["classes"], "preprocess": pre, "notes": dict(getattr(target, "notes", {})),
                "versions": _versions(target.NAME)}
    ckpt.write_json(Path(str(out) + ".json"), manifest)
    return manifest


def _flops(model: torch.nn.Module, graph_model: torch.nn.Module, pre: dict) -> dict:
    from vitc.inspect import gflops

    full = gflops(model, pre["input_size"])
    return {"gflops_model": full, "gflops_exported": full if graph_model is model else gflops(graph_model, pre["input_size"])}


def _versions(target: str) -> dict:
    from vitc.runtime import package_versions

    return {"torch": torch.__version__, **package_versions({"onnx": ["onnx", "onnxruntime"], "openvino": ["openvino", "nncf"],
                                                            "executorch": ["executorch"], "tensorrt": ["tensorrt"]}.get(target, []))}


def read_manifest(artifact: Path) -> dict:
    p = Path(str(artifact) + ".json")
    if not p.is_file():
        raise VitcError(f"no manifest {p.name} beside {artifact}", "use an artifact written by `vitc export`")
    return json.loads(p.read_text())
