"""`vitc export` / `vitc quantize --backend X`: checkpoint -> artifact -> load back -> validate
on real val images against the PyTorch model -> manifest JSON beside the artifact."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from vitc import checkpoint as ckpt
from vitc.config import ExportConfig
from vitc.data import eval_pixels, eval_tensors, load_source
from vitc.errors import AccuracyGateError, ConfigError, VitcError
from vitc.feature_tokens import FeatureTokens, compare_features
from vitc.handoff import VAL_SPLIT, Checkpoint, Preprocess
from vitc.isa import here
from vitc.manifest import Manifest
from vitc.models import gflops
from vitc.stages import Inputs, Result
from vitc.validate import compare, reference_logits, run_artifact

from . import by_suffix, get
from .head_tokens import rewrite
from .ingraph import SUFFIX, InGraphPreprocess

# (atol on logits, minimum top-1 agreement with fp32 PyTorch) per precision
TOLERANCE = {"fp32": (1e-3, 0.999), "fp16": (5e-2, 0.99), "int8": (1.5, 0.97)}
CALIB_SEED = 0
SKIPPED_FILE = (
    "skipped.json"  # beside a stage's artifacts: the (target, precision) pairs that could not run here, and why
)


def calibration_images(
    data: str | Checkpoint, pre: dict | None, n: int, calib: str | None = None, pixels: bool = False
) -> torch.Tensor:
    """n real images from the *train* split (never val, never random tensors), eval transform. `data` is a
    dataset name with `pre` the model's pre-processing, or a Checkpoint (its own data unless `calib` names other).
    pixels: as uint8 (N, H, W, 3), for a model with its pre-processing in the graph."""
    if isinstance(data, Checkpoint):
        src, pre = data.source(calib), data.pre.to_json()
    else:
        src = load_source(data, Preprocess.from_json(pre).size)
    g = np.random.default_rng(CALIB_SEED)
    idx = g.permutation(len(src.train.targets))[:n]
    sub = type(src.train)([src.train.items[i] for i in idx], [src.train.targets[i] for i in idx])
    return (eval_pixels if pixels else eval_tensors)(sub, pre)[0]


def artifact_path(out_dir: Path, stem: str, target, precision: str, variant: str = "") -> Path:
    return out_dir / f"{stem}-{target.NAME}-{precision}{variant}{target.SUFFIX}"


PREPROCESS = ("python", "in-graph")
IN_GRAPH_TARGETS = ("onnx", "openvino", "executorch", "torchscript-lite")


def input_spec(in_graph: bool, pre: Preprocess) -> dict:
    """What the artifact takes (the manifest's `input`, read by the bench, predict and bundles)."""
    h, w = pre.input_size[1:]
    if in_graph:
        return {"preprocess": "in-graph", "dtype": "uint8", "layout": "NHWC", "shape": [-1, h, w, 3]}
    return {"preprocess": "python", "dtype": "float32", "layout": "NCHW", "shape": [-1, 3, h, w]}


def _write_manifest(out: Path, manifest: dict) -> dict:
    """Write the artifact's manifest through the typed vitc.manifest.Manifest (a key it does not know is a bug
    here, not something to drop). -> the manifest as written."""
    unknown = set(manifest) - {f.name for f in dataclasses.fields(Manifest)}
    if unknown:
        raise TypeError(f"manifest keys not in vitc.manifest.Manifest: {sorted(unknown)}")
    m = Manifest.from_json(manifest).to_json()
    ckpt.write_json(Manifest.path_of(out), m)
    return m


def export_checkpoint(
    source: Path | str | Checkpoint,
    target_name: str,
    precision: str,
    out_dir: Path,
    *,
    data: str | None = None,
    calib: str | None = None,
    calib_size: int = 128,
    threads: int | None = None,
    max_drop: float | None = None,
    stem: str | None = None,
    opts: dict | None = None,
    features: bool = False,
    preprocess: str = "python",
    int8_isa: str = "portable",
) -> dict:
    """Export one (target, precision) of a checkpoint and validate it on the val split of its data (or
    `data`). Pass a `Checkpoint` to export several artifacts from one load: its model, val tensors and
    fp32 reference are computed once. The artifact is named `<stem>-<target>-<precision><suffix>`, the
    stem defaulting to the checkpoint's folder name (runs/student -> student-onnx-fp32.onnx).
    features: export the pre-logits token features (`vitc features`) instead of the logits, validated
    against PyTorch's features (max diff, cosine).
    preprocess: "in-graph" makes an artifact that takes uint8 RGB pixels (N, H, W, 3) and casts, normalizes and
    transposes inside (export/ingraph.py), validated on the val images' pixels against the fp32 PyTorch model.
    int8_isa: which CPUs an int8 artifact is for (vitc/isa.py): portable (every CPU) | vnni | auto.
    Beside the manifest goes `<artifact>.selftest.npz`: a few val images with the PyTorch logits and this artifact's
    own, for `run.py --selftest` / `vitc predict --selftest` on the device."""
    if max_drop is not None and max_drop < 0:
        raise ConfigError(f"--max-drop {max_drop} is negative", "give the allowed top-1 loss in points, e.g. 1.0")
    if preprocess not in PREPROCESS:
        raise ConfigError(f"--preprocess {preprocess!r} is not one of {', '.join(PREPROCESS)}")
    in_graph = preprocess == "in-graph"
    if in_graph and target_name not in IN_GRAPH_TARGETS:
        raise ConfigError(
            f"--preprocess in-graph is not available for {target_name}",
            f"use it with {', '.join(IN_GRAPH_TARGETS)}, or export with --preprocess python",
        )
    if in_graph and features:
        raise ConfigError("--features artifacts take the float tensor", "drop --preprocess in-graph")
    target = get(target_name)
    why = target.check()
    if why:
        raise VitcError(f"{target.NAME} target unavailable here: {why}")
    c = source if isinstance(source, Checkpoint) else Checkpoint.open(source)
    if c.quantization:
        if target.NAME != "torchscript-lite":
            raise ConfigError(
                f"{c.path} holds a PyTorch dynamic-int8 recipe, which {target.NAME} cannot load",
                f"export the fp32 checkpoint with --target {target.NAME} --precision int8",
            )
        precision = "int8"  # the target applies the same dynamic-int8 recipe: name the artifact for what it is
    pre = c.pre.to_json()
    data = c.data_name(data)
    X, Y = c.val(data)
    kw = dict(opts or {})
    kw["precision"] = precision
    if "int8_isa" in target.Options.__dataclass_fields__:
        kw.setdefault("int8_isa", int8_isa)
    # OpenVINO adds its PrePostProcessor after NNCF, which calibrates the float model; the torch-based targets
    # quantize the wrapped model, whose input is pixels
    wrap = in_graph and target.NAME != "openvino"
    if precision == "int8" and "calibration" in target.Options.__dataclass_fields__:
        kw["calibration"] = calibration_images(c, None, calib_size, calib or data, pixels=wrap)
    if in_graph and not wrap:
        kw["in_graph"] = {"mean": list(c.pre.mean), "std": list(c.pre.std)}
    if "metadata" in target.Options.__dataclass_fields__:
        kw["metadata"] = {
            "vitc.classes": c.classes,
            "vitc.preprocess": pre,
            "vitc.source_sha256": c.sha256,
            "vitc.model": c.name,
            "vitc.data": data,
        }
    o = target.Options(**kw)
    variant = SUFFIX if in_graph else ""
    out = artifact_path(
        Path(out_dir), (stem or c.path.name) + ("-features" if features else ""), target, precision, variant
    )
    model = copy.deepcopy(c.model)  # the exporters may trace or transform it; the loaded checkpoint stays as it is
    if features:
        model = FeatureTokens(model)
        ref = reference_logits(model, X)
    else:
        ref = c.reference(data)  # fp32 PyTorch, computed once per checkpoint and dataset
    t0 = time.perf_counter()
    graph_model, graph = rewrite(model)  # same logits, less work; validated below against `ref`
    X_in = c.pixels(data)[0] if in_graph else X  # what the artifact takes; `ref` stays fp32 PyTorch on X
    exported = InGraphPreprocess(graph_model, c.pre.mean, c.pre.std) if wrap else graph_model
    example = X_in[:2] if wrap else X[:2]  # batch 2: torch.export specialises a batch of 1 to a constant
    target.export(exported, example, out, o)
    export_s = time.perf_counter() - t0
    atol, agree = TOLERANCE[precision]
    fn = target.load(out, threads)
    got = run_artifact(fn, X_in, 32)
    isa = {"validated_on": here(), "int8_isa": getattr(o, "int8_isa", None) if precision == "int8" else None}
    if target.NAME == "tensorrt":  # validated on the GPU: the CPU's int8 path says nothing of it
        isa["validated_on"] = {"path": "cuda", "saturates": False, "machine": isa["validated_on"]["machine"]}
    common = {
        "artifact": out.name,
        "target": target.NAME,
        "precision": precision,
        "size_bytes": _size(out),
        "source": {"checkpoint": str(c.path), "weights_sha256": c.sha256, "quantization": c.quantization},
        "data": {"name": data, "split": VAL_SPLIT, "images": int(len(Y))},
        "input": input_spec(in_graph, c.pre),
        "options": {k: v_ for k, v_ in vars(o).items() if k != "calibration"},
        "export_s": export_s,
        "classes": c.classes,
        "preprocess": pre,
        "notes": dict(getattr(target, "notes", {})),
        "versions": target_versions(target.NAME),
        "isa": isa,  # the int8 path this artifact was validated on, and (int8) the CPUs it was built for
    }
    if features:
        v = compare_features(ref, got, precision)
        manifest = {
            **common,
            "output": "features",
            "tokens": model.token_names,
            "status": "ok" if v["passed"] else "failed: validation",
            "validation": v,
        }
        return _write_manifest(out, manifest)
    v = compare(ref, got, Y.numpy(), atol, agree)
    drop = v.top1_reference - v.top1_artifact
    gate_failed = max_drop is not None and drop > max_drop
    manifest = {
        **common,
        "status": "ok"
        if v.passed and not gate_failed
        else ("failed: accuracy gate" if gate_failed else "failed: validation"),
        "calibration": (
            {"data": calib or data, "split": "train", "images": calib_size}
            if getattr(o, "calibration", None) is not None
            else None
        ),  # None: the target used none
        "graph": {**graph, **graph_flops(model, graph_model, pre)},  # export/head_tokens.py: what ran on the model
        "validation": v.to_json(),
        "top1_drop": drop,
        "max_drop": max_drop,
        "selftest": write_selftest(out, fn, c, data, in_graph, ref, precision, isa["validated_on"]),
    }
    manifest = _write_manifest(out, manifest)
    if gate_failed:
        raise AccuracyGateError(
            f"{out.name}: top-1 {v.top1_artifact:.2f}% vs fp32 {v.top1_reference:.2f}% "
            f"(drop {drop:.2f} > --max-drop {max_drop})",
            "artifact kept and marked failed in its manifest",
        )
    return manifest


SELFTEST_SUFFIX = ".selftest.npz"
SELFTEST_BYTES = 4_000_000  # of pixels: 64 images at 28 px, 26 at 224 px
# how far a device's logits may drift from the exporting machine's for the same artifact (float kernels sum in
# another order on another ISA; int8 ones may round a requantization differently). int8: portable artifacts drifted
# <= 0.03 between AMX and emulated AVX2, VNNI-only ones 0.24-2.3 (results/int8-isa); fp32/fp16: the validation
# tolerances, not measured across ISAs
DRIFT_ATOL = {"fp32": 1e-3, "fp16": 5e-2, "int8": 0.1}


def write_selftest(
    out: Path, fn, c: Checkpoint, data: str, in_graph: bool, ref: np.ndarray, precision: str, isa: dict
) -> dict:
    """`<artifact>.selftest.npz` (numpy only, no pickles): the first val images as uint8 pixels, the PyTorch fp32
    logits, and the artifact's logits here, from the device's own runner (export/edge_run.py, for .onnx/.xml/.pte)
    on exactly what it feeds (the pixels, or its numpy normalization of them); the returned spec (the manifest's
    `selftest`) holds the gate they are judged by there."""
    from vitc.data import eval_pixels

    from .edge_run import device_fn, normalize, run_batches

    pre = c.pre.to_json()
    h, w = c.pre.input_size[1:]
    n = min(max(8, min(64, SELFTEST_BYTES // (h * w * 3))), len(ref))
    val = c.source(data).val  # only the first n decoded (the whole split is, already, for in-graph artifacts)
    px = eval_pixels(type(val)(val.items[:n], val.targets[:n]), pre)[0].numpy().astype(np.uint8)
    x = px if in_graph else normalize(px, pre)
    got = run_batches(device_fn(out, lambda *_: fn), x)  # .ptl/.engine: the loaded fn; else the runner
    path = out.with_name(out.name + SELFTEST_SUFFIX)
    with ckpt.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, pixels=px, reference=ref[:n].astype(np.float32), validated=got)
    atol, agree = TOLERANCE[precision]
    return {
        "file": path.name,
        "images": n,
        "atol": atol,
        "min_agreement": agree,
        "drift_atol": DRIFT_ATOL[precision],
        "isa": isa,
    }


def _size(out: Path) -> int:
    """Bytes on disk of an artifact: the file and its external-data siblings (an IR: .xml + .bin), no manifest."""
    size = sum(
        p.stat().st_size
        for p in out.parent.glob(out.name + "*")
        if p.suffix != ".json" and not p.name.endswith(SELFTEST_SUFFIX)
    )
    return size + (out.with_suffix(".bin").stat().st_size if out.suffix == ".xml" else 0)


def graph_flops(model: torch.nn.Module, graph_model: torch.nn.Module, pre: dict) -> dict:
    full = gflops(model, pre["input_size"])
    return {
        "gflops_model": full,
        "gflops_exported": full if graph_model is model else gflops(graph_model, pre["input_size"]),
    }


def target_versions(target: str) -> dict:
    from vitc.runtime import package_versions

    return {
        "torch": torch.__version__,
        **package_versions(
            {
                "onnx": ["onnx", "onnxruntime"],
                "openvino": ["openvino", "nncf"],
                "executorch": ["executorch"],
                "tensorrt": ["tensorrt"],
            }.get(target, [])
        ),
    }


def clear_artifacts(out: Path) -> None:
    """--force: what an earlier run left in `out` (its artifacts whatever their stem, their manifests and external
    data, skipped.json), so that the bench does not time a stale artifact beside the new ones."""
    suffixes = by_suffix()
    for m in list(out.glob("*.json")):
        art = m.with_suffix("")
        if art.suffix in suffixes:
            for p in list(out.glob(art.name + "*")):
                p.unlink(missing_ok=True)
            if art.suffix == ".xml":
                art.with_suffix(".bin").unlink(missing_ok=True)
    (out / SKIPPED_FILE).unlink(missing_ok=True)


def run(cfg: ExportConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry: every (target, precision) of the config that the target supports, from one
    loaded checkpoint (model, val tensors and fp32 reference computed once). A target that cannot run here
    is listed in skipped.json with its reason; a failed gate is kept, marked failed."""
    c = Checkpoint.open(inputs.checkpoint)
    c.data_name(cfg.data)  # no data to validate on: one sentence before anything is written
    res = Result("")
    todo = [
        (name, p, mode)
        for mode in cfg.preprocess
        for name in cfg.targets
        for p in cfg.precisions
        if p in get(name).PRECISIONS
    ]
    for name, p, mode in todo:
        if mode == "in-graph" and name not in IN_GRAPH_TARGETS:
            if "python" not in cfg.preprocess:  # asked for in-graph only: say why this target wrote nothing
                res.skipped.append(
                    {
                        "target": name,
                        "precision": p,
                        "preprocess": mode,
                        "reason": f"{name} takes the float tensor only",
                    }
                )
            continue
        t = get(name)
        why = t.check()
        if why:
            if not any(s["target"] == t.NAME and s["precision"] == p for s in res.skipped):
                res.skipped.append({"target": t.NAME, "precision": p, "reason": why})
            continue
        with res.guard(inputs, f"{name} {p}", {"target": t.NAME, "precision": p, "preprocess": mode}):
            res.artifacts.append(
                export_checkpoint(
                    c,
                    name,
                    p,
                    out,
                    data=cfg.data,
                    calib=cfg.calib,
                    calib_size=cfg.calib_size,
                    threads=cfg.threads,
                    max_drop=cfg.max_drop,
                    features=cfg.features,
                    preprocess=mode,
                    int8_isa=cfg.int8_isa,
                )
            )
    if res.skipped:
        ckpt.write_json(out / SKIPPED_FILE, res.skipped)
    ok = sum(m["status"] == "ok" for m in res.artifacts)
    res.summary = f"{len(res.artifacts) + len(res.failed)} artifacts ({ok} ok), {len(res.skipped)} skipped"
    return res
