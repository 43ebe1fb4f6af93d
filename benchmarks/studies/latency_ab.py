"""Issue 6's before/after record: each candidate latency change measured against what it replaces,
on the same artifact and machine, in alternating rounds (this VM's speed drifts up to 2x within
seconds, so two separate runs would compare the drift, not the change).

OpenVINO candidates are timed by OpenVINO's own `benchmark_app` (one process per round, A and B
alternating); ONNX Runtime candidates by vitc's timing loop with one session alive at a time
(two idle-spinning ORT pools would fight for the 2 cores). Accuracy is measured on all val images.

    python -m benchmarks.studies.latency_ab runs/deit_tiny-224/distill \
        --int8-ir runs/deit_tiny-224/quantize/student-openvino-int8.xml --out results/latency-ab
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vitc.benchmarks.crosscheck import benchmark_app


class FoldedHeads(torch.nn.Module):
    """DeiT's deployed output (head(cls) + head_dist(dist)) / 2 as ONE linear over both tokens:
    [W1 W2] / 2 applied to [cls; dist] plus (b1 + b2) / 2. Same function, one matmul instead of two
    plus an add."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        w = torch.cat([model.head.weight, model.head_dist.weight], 1) / 2
        self.fc = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_((model.head.bias + model.head_dist.bias) / 2)

    def forward(self, x):
        return self.fc(self.model.forward_features(x)[:, :2].flatten(1))


def _ab_benchmark_app(
    a: Path, b: Path, shape, threads: int, rounds: int, seconds: float, pa: str | None, pb: str | None
) -> dict:
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(benchmark_app(a, shape, threads, seconds, pa))
        rb.append(benchmark_app(b, shape, threads, seconds, pb))
    bad = [r["error"] for r in ra + rb if "error" in r]
    if bad:
        raise RuntimeError(bad[0])
    return _ab(
        [r["p50_ms"] for r in ra],
        [r["p50_ms"] for r in rb],
        "p50_ms",
        command_a=ra[0]["command"],
        command_b=rb[0]["command"],
    )


def _ab(va: list, vb: list, metric: str, **extra) -> dict:
    return {
        "metric": metric,
        "a": va,
        "b": vb,
        "a_median": float(np.median(va)),
        "b_median": float(np.median(vb)),
        "b_over_a": float(np.median(vb) / np.median(va)),
        **extra,
    }


def _ab_ort(a: Path, b: Path, x: np.ndarray, threads: int, rounds: int, seconds: float) -> dict:
    from vitc.benchmarks.timing import time_calls
    from vitc.export import onnx as onnx_target

    ta, tb = [], []
    for _ in range(rounds):
        for path, acc in ((a, ta), (b, tb)):
            fn = onnx_target.load(path, threads)  # one session alive at a time
            acc.append(time_calls(fn, x, min_seconds=seconds).p50_ms)
            del fn
    return _ab(ta, tb, "p50_ms")


def _accuracy(fn, X, Y, ref) -> dict:
    from vitc.validate import compare, run_artifact

    v = compare(ref, run_artifact(fn, X, 32), Y.numpy(), 1.5, 0.97)
    return {
        "top1": v.top1_artifact,
        "top1_fp32": v.top1_reference,
        "agreement": 100 * v.top1_agreement,
        "max_abs_diff": v.max_abs_diff,
    }


def _head_tokens(
    model, ex, calib, tmp: Path, full_onnx: Path, shape1, x1, threads, rounds, seconds, val, cand: dict
) -> None:
    """The whole last block vs the last block for the head's tokens only (export/head_tokens.py),
    OpenVINO fp32 and int8 (NNCF defaults on both) and ONNX Runtime fp32."""
    import openvino as ov

    from vitc.compress.quantize import nncf_int8
    from vitc.export import onnx as onnx_target
    from vitc.export import openvino as ov_target
    from vitc.export.head_tokens import rewrite

    lean = rewrite(model)[0]
    for prec, hint in (("fp32", "f32"), ("int8", "default")):
        xmls = []
        for tag, m in (("full", model), ("lean", lean)):
            ovm = ov_target.convert(m, ex, True)
            if prec == "int8":
                ovm = nncf_int8(ovm, calib, "defaults")[0]
            xmls.append(tmp / f"{tag}-{prec}.xml")
            ov.save_model(ovm, str(xmls[-1]), compress_to_fp16=False)
        ab = _ab_benchmark_app(*xmls, shape1, threads, rounds, seconds, hint, hint)
        ab["accuracy_b"] = _accuracy(ov_target.load(xmls[1], threads, hint), *val)
        cand[f"openvino {prec}, b1: whole last block -> last block for the head's tokens only"] = ab
    lean_onnx = tmp / "lean.onnx"
    onnx_target.export(lean, ex, lean_onnx, onnx_target.Options())
    ab = _ab_ort(full_onnx, lean_onnx, x1, threads, rounds, seconds)
    ab["accuracy_b"] = _accuracy(onnx_target.load(lean_onnx, threads), *val)
    cand["onnxruntime fp32, b1: whole last block -> last block for the head's tokens only"] = ab


def run(
    ckpt_dir: Path,
    int8_ir: Path,
    out: Path,
    threads: int,
    rounds: int,
    seconds: float,
    only: tuple[str, ...] = (
        "precision",
        "throughput",
        "heads",
        "optimizer",
        "nncf",
        "ort-int8",
        "opset",
        "head-tokens",
    ),
    nncf_variants: tuple[str, ...] | None = None,
) -> dict:
    import openvino as ov

    from vitc.export import onnx as onnx_target
    from vitc.export import openvino as ov_target
    from vitc.export.stage import calibration_images
    from vitc.handoff import Checkpoint
    from vitc.runtime import machine_info, package_versions

    torch.set_num_threads(threads)
    c = Checkpoint.open(ckpt_dir)
    model = c.model
    X, Y = c.val()
    ref = c.reference()
    shape1 = [1, *X.shape[1:]]
    res: dict = {
        "checkpoint": str(ckpt_dir),
        "int8_ir": str(int8_ir),
        "threads": threads,
        "rounds": rounds,
        "seconds": seconds,
        "machine": machine_info(),
        "versions": package_versions(("torch", "timm", "onnxruntime", "openvino", "nncf")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "only": list(only),
        "nncf_variants": list(nncf_variants or []),
        "candidates": {},
    }
    cand = res["candidates"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ex, x1 = X[:2], np.ascontiguousarray(X[:1].numpy())
        calib = calibration_images(c, None, 128)
        if "precision" in only:
            # int8 IR: non-quantized ops (softmax, LayerNorm, GELU, adds) in f32 vs the CPU plugin's default (bf16 here)
            ab = _ab_benchmark_app(int8_ir, int8_ir, shape1, threads, rounds, seconds, "f32", None)
            ab["accuracy_a"] = _accuracy(ov_target.load(int8_ir, threads, "f32"), X, Y, ref)
            ab["accuracy_b"] = _accuracy(ov_target.load(int8_ir, threads, "default"), X, Y, ref)
            cand["openvino int8, b1: INFERENCE_PRECISION_HINT f32 -> plugin default (bf16 on this CPU)"] = ab
        if "throughput" in only:
            # int8 IR at batch 16: one request with the LATENCY hint vs the THROUGHPUT hint (streams + requests)
            shape16 = [16, *X.shape[1:]]
            ra, rb = [], []
            for _ in range(rounds):
                ra.append(benchmark_app(int8_ir, shape16, threads, seconds, None, hint="latency"))
                rb.append(benchmark_app(int8_ir, shape16, threads, seconds, None, hint="throughput"))
            va, vb = [r["fps"] for r in ra], [r["fps"] for r in rb]  # benchmark_app's FPS counts images
            cand["openvino int8, batch 16 images/s: LATENCY hint -> THROUGHPUT hint"] = _ab(va, vb, "images_per_s")
        if "heads" in only:
            # fp32 IR: the two heads as two matmuls + add vs one folded matmul
            a_xml, b_xml = tmp / "heads2.xml", tmp / "folded.xml"
            ov.save_model(ov_target.convert(model, ex, True), str(a_xml), compress_to_fp16=False)
            ov.save_model(ov_target.convert(FoldedHeads(model).eval(), ex, True), str(b_xml), compress_to_fp16=False)
            ab = _ab_benchmark_app(a_xml, b_xml, shape1, threads, rounds, seconds, "f32", "f32")
            ab["accuracy_b"] = _accuracy(ov_target.load(b_xml, threads, "f32"), X, Y, ref)
            cand["openvino fp32, b1: two heads + add -> one folded linear head"] = ab
        fp32 = tmp / "m.onnx"
        onnx_target.export(model, ex, fp32, onnx_target.Options())
        if "head-tokens" in only:
            _head_tokens(model, ex, calib, tmp, fp32, shape1, x1, threads, rounds, seconds, (X, Y, ref), cand)
        if "optimizer" in only:
            # ONNX Runtime fp32: as exported vs onnxruntime.transformers' ViT optimizer (fused LayerNorm/GELU)
            from onnxruntime.transformers.optimizer import optimize_model

            opt = tmp / "opt.onnx"
            optimize_model(
                str(fp32), model_type="vit", num_heads=model.blocks[0].attn.num_heads, hidden_size=model.embed_dim
            ).save_model_to_file(str(opt))
            ab = _ab_ort(fp32, opt, x1, threads, rounds, seconds)
            ab["accuracy_b"] = _accuracy(onnx_target.load(opt, threads), X, Y, ref)
            cand["onnxruntime fp32, b1: as exported -> transformers optimizer (model_type vit)"] = ab
        if "nncf" in only:
            # NNCF settings for the OpenVINO int8 IR (all with the plugin's default precision for float ops)
            import nncf
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters as AQP
            from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

            variants = {
                "TRANSFORMER": dict(model_type=nncf.ModelType.TRANSFORMER),
                "defaults": {},
                "TRANSFORMER, PERFORMANCE preset": dict(
                    model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.PERFORMANCE
                ),
                "TRANSFORMER, SmoothQuant off": dict(
                    model_type=nncf.ModelType.TRANSFORMER,
                    advanced_parameters=AQP(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)),
                ),
            }
            xmls = {}
            for name, kw in variants.items():
                if nncf_variants is not None and name not in nncf_variants + ("TRANSFORMER",):
                    continue
                xmls[name] = tmp / f"nncf-{len(xmls)}.xml"
                q = nncf.quantize(
                    ov_target.convert(model, ex, True),
                    nncf.Dataset([calib[i : i + 1].numpy() for i in range(len(calib))]),
                    subset_size=len(calib),
                    **kw,
                )
                ov.save_model(q, str(xmls[name]))
            for name in [n for n in variants if n != "TRANSFORMER" and (nncf_variants is None or n in nncf_variants)]:
                ab = _ab_benchmark_app(
                    xmls["TRANSFORMER"], xmls[name], shape1, threads, rounds, seconds, "default", "default"
                )
                ab["accuracy_a"] = _accuracy(ov_target.load(xmls["TRANSFORMER"], threads, "default"), X, Y, ref)
                ab["accuracy_b"] = _accuracy(ov_target.load(xmls[name], threads, "default"), X, Y, ref)
                cand[f"openvino int8, b1: nncf.quantize model_type TRANSFORMER -> {name}"] = ab
        if "opset" in only:
            # ONNX opset of the export: 18 (Erf-based GELU, scale as Div) vs 20 (one Gelu op) vs 23
            # (one Attention op per block; ORT's quantizer cannot process it, so fp32 only)
            from vitc.compress.quantize import ort_dynamic_int8

            paths = {}
            for op in (18, 20, 23):
                paths[op] = tmp / f"op{op}.onnx"
                onnx_target.export(model, ex, paths[op], onnx_target.Options(opset=op))
            for a, b in ((18, 20), (20, 23)):
                ab = _ab_ort(paths[a], paths[b], x1, threads, rounds, seconds)
                ab["accuracy_b"] = _accuracy(onnx_target.load(paths[b], threads), X, Y, ref)
                cand[f"onnxruntime fp32, b1: opset {a} -> opset {b}"] = ab
            for op in (18, 20):
                ort_dynamic_int8(paths[op], tmp / f"dyn{op}.onnx")
            ab = _ab_ort(tmp / "dyn18.onnx", tmp / "dyn20.onnx", x1, threads, rounds, seconds)
            ab["accuracy_a"] = _accuracy(onnx_target.load(tmp / "dyn18.onnx", threads), X, Y, ref)
            ab["accuracy_b"] = _accuracy(onnx_target.load(tmp / "dyn20.onnx", threads), X, Y, ref)
            cand["onnxruntime dynamic int8, b1: opset 18 -> opset 20"] = ab
        if "ort-int8" in only:
            # ONNX Runtime static QDQ int8: signed activations (S8S8) vs unsigned (U8S8, VNNI's native u8 x s8)
            from vitc.compress.quantize import ort_static_int8

            s8, u8 = tmp / "s8.onnx", tmp / "u8.onnx"
            ort_static_int8(fp32, s8, calib, activation="s8")
            ort_static_int8(fp32, u8, calib, activation="u8")
            ab = _ab_ort(s8, u8, x1, threads, rounds, seconds)
            ab["accuracy_a"] = _accuracy(onnx_target.load(s8, threads), X, Y, ref)
            ab["accuracy_b"] = _accuracy(onnx_target.load(u8, threads), X, Y, ref)
            cand["onnxruntime static int8 QDQ, b1: S8 activations -> U8 activations"] = ab
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab.json").write_text(json.dumps(res, indent=2))
    (out / "ab.md").write_text(markdown(res))
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Latency candidates, before -> after (issue 6)",
        "",
        f"`python -m benchmarks.studies.latency_ab {res['checkpoint']} --int8-ir {res['int8_ir']} --rounds "
        f"{res['rounds']} --seconds {res['seconds']:g} "
        f"--only {','.join(res.get('only', []))}"
        + (f" --nncf-variants '{';'.join(res['nncf_variants'])}'" if res.get("nncf_variants") else "")
        + "`  ",
        f"{res['date']}; {m.get('cpu')}, {m.get('cores')} cores, {res['threads']} threads; "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v),
        "",
        f"A and B alternate for {res['rounds']} rounds of {res['seconds']:g} s; medians of the rounds. Paired B/A: the median "
        "over rounds of B's value over A's in the same round (A and B run seconds apart, so the VM's drift cancels more).",
        "",
        "| candidate | metric | A (before) | B (after) | B/A | paired B/A | rounds A | rounds B | accuracy after "
        "(top-1, agreement) |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name, c in res["candidates"].items():
        acc = c.get("accuracy_b")
        a = f"{acc['top1']:.2f}%, {acc['agreement']:.2f}%" if acc else "-"
        paired = float(np.median(np.array(c["b"]) / np.array(c["a"])))
        lines.append(
            f"| {name} | {c['metric']} | {c['a_median']:.3f} | {c['b_median']:.3f} | {c['b_over_a']:.3f} | {paired:.3f} | "
            f"{', '.join(f'{v:.2f}' for v in c['a'])} | {', '.join(f'{v:.2f}' for v in c['b'])} | {a} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--int8-ir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("results/latency-ab"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument(
        "--only",
        default="precision,throughput,heads,optimizer,nncf,ort-int8,opset,head-tokens",
        help="comma-separated candidates",
    )
    ap.add_argument(
        "--nncf-variants",
        default=None,
        help="semicolon-separated NNCF variants to compare with TRANSFORMER (default: all)",
    )
    a = ap.parse_args()
    nv = tuple(a.nncf_variants.split(";")) if a.nncf_variants else None
    print(markdown(run(a.checkpoint, a.int8_ir, a.out, a.threads, a.rounds, a.seconds, tuple(a.only.split(",")), nv)))


if __name__ == "__main__":
    main()
