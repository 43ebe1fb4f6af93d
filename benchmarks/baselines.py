"""The baselines of issue 6, built by hand the way a skilled user would, from the same fp32
checkpoint and calibration images as vitc's own artifacts, so that `vitc bench --baselines` times
them in the same run (the ratios hold on a noisy machine). The fourth baseline, eager PyTorch
fp32, is the checkpoint's own row.

Each recipe uses the library's defaults on purpose: that is the point of a baseline. Every
artifact gets a manifest like vitc's (so the bench can load and validate it) with a "baseline"
entry that says exactly how it was made.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from vitc import checkpoint as ckpt
from vitc.manifest import Manifest

CONTROL = "baseline-openvino-nncf-default-int8-vitc-graph.xml"
RECIPES = {
    "baseline-openvino-nncf-default-int8.xml": (
        "openvino",
        "int8",
        "ov.convert_model(model, example_input=x) -> nncf.quantize(ov_model, nncf.Dataset(calib)) "
        "with NNCF's default settings -> ov.save_model; run with the CPU plugin's default precision",
    ),
    # The control for "same recipe, same number": the by-hand NNCF recipe above, run on the graph
    # vitc exports (export/head_tokens.py: the last block computes only the head's tokens). vitc's
    # own int8 IR, when --nncf auto picks NNCF's defaults, is this recipe on this graph, so the two
    # rows must time alike; the plain by-hand row beside them shows what the graph rewrite gains.
    CONTROL: (
        "openvino",
        "int8",
        "the by-hand NNCF-defaults recipe above, run on vitc's exported graph (export/head_tokens.py: "
        "the last block computes only the tokens the head reads) instead of the plain timm model: the same recipe on the "
        "same graph as vitc's int8 IR",
    ),
    "baseline-onnx-dynamic-int8.onnx": (
        "onnx",
        "int8",
        "torch.onnx.export(dynamo=True) -> quant_pre_process (ORT's advice; quantize_dynamic fails on the raw "
        "export's shape info) -> onnxruntime.quantization.quantize_dynamic (defaults); "
        "ONNX Runtime's default session options",
    ),
    "baseline-onnx-fp32.onnx": (
        "onnx",
        "fp32",
        "torch.onnx.export(dynamo=True); ONNX Runtime's default session options",
    ),
}


def _onnx_fp32(model, example, path: Path) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        verbose=False,
    )


def build(ckpt_dir: Path, out_dir: Path, calib_size: int = 128, data: str | None = None) -> list[Path]:
    """-> the baseline artifacts in out_dir (rebuilt every time: a few tens of seconds)."""
    import nncf
    import openvino as ov

    from vitc.compress.quantize import ort_dynamic_int8
    from vitc.export._files import staged
    from vitc.export.head_tokens import rewrite
    from vitc.export.openvino import mark_inference_precision
    from vitc.export.stage import calibration_images, graph_flops, target_versions
    from vitc.handoff import Checkpoint

    c = Checkpoint.open(ckpt_dir)
    model, pre, data = c.model, c.pre.to_json(), c.data_name(data)
    example = c.val(data)[0][:2]
    out_dir = Path(out_dir)
    ckpt.writable_dir(out_dir, "the baselines dir")
    graph_model, graph = rewrite(model)
    calib = calibration_images(c, None, calib_size, data)  # one set for both NNCF recipes
    dataset = nncf.Dataset([calib[i : i + 1].numpy() for i in range(len(calib))])
    paths = []
    for name, (target, precision, recipe) in RECIPES.items():
        path = out_dir / name
        if name == CONTROL and not graph["head_tokens_only"]:
            continue  # vitc exports the plain graph for this model: the by-hand row is already the control
        with staged(path) as tmp:
            if target == "openvino":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ov_model = ov.convert_model(graph_model if name == CONTROL else model, example_input=example)
                q = nncf.quantize(ov_model, dataset, subset_size=len(calib))
                mark_inference_precision(
                    q, "default"
                )  # vitc's loader then leaves the plugin's default, as benchmark_app does
                ov.save_model(q, str(tmp / name))
            elif precision == "fp32":
                _onnx_fp32(model, example, tmp / name)
            else:
                _onnx_fp32(model, example, tmp / "fp32.onnx")
                ort_dynamic_int8(tmp / "fp32.onnx", tmp / name)  # the same two library calls a user makes
                for p in tmp.iterdir():  # the fp32 export and its external data
                    if not p.name.startswith(name):
                        p.unlink()
        # torch.onnx.export keeps the weights in NAME.onnx.data; OpenVINO in NAME.bin
        size = sum(p.stat().st_size for p in out_dir.glob(path.stem + ".*") if p.suffix != ".json")
        manifest = Manifest.from_json(
            {
                "artifact": name,
                "target": target,
                "precision": precision,
                "size_bytes": size,
                "status": "not validated here: vitc bench compares it with fp32 PyTorch",
                "baseline": recipe,
                "source": {"checkpoint": str(ckpt_dir), "weights_sha256": c.sha256, "quantization": None},
                "data": {"name": data, "split": "val", "images": int(len(c.val(data)[1]))},
                "calibration": {"data": data, "split": "train", "images": calib_size} if "nncf" in name else None,
                **(
                    {"control": "same-graph", "graph": {**graph, **graph_flops(model, graph_model, pre)}}
                    if name == CONTROL
                    else {}
                ),
                "classes": c.classes,
                "preprocess": pre,
                "versions": target_versions(target),
            }
        )
        ckpt.write_json(Manifest.path_of(path), manifest.to_json())  # the bench reads it typed
        paths.append(path)
    return paths
