"""Issue 6's before/after record: each candidate latency change measured against what it replaces,
on the same artifact and machine, in alternating rounds (this VM's speed drifts up to 2x within
seconds, so two separate runs would compare the drift, not the change).

OpenVINO candidates are timed by OpenVINO's own `benchmark_app` (one process per round, A and B
alternating); ONNX Runtime candidates by vitc's timing loop with one session alive at a time
(two idle-spinning ORT pools would fight for the 2 cores). Accuracy is measured on all val images.

    python -m vitc.benchmarks.latency_ab runs/deit_tiny-224/distill \
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

from .crosscheck import benchmark_app


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


def _ab_benchmark_app(a: Path, b: Path, shape, threads: int, rounds: int, seconds: float,
                      pa: str | None, pb: str | None, hint_b: str = "latency") -> dict:
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(benchmark_app(a, shape, threads, seconds, pa))
        rb.append(benchmark_app(b, shape, threads, seconds, pb, hint=hint_b))
    bad = [r["error"] for r in ra + rb if "error" in r]
    if bad:
        raise RuntimeError(bad[0])
    key = "fps" if hint_b == "throughput" else "p50_ms"
    va, vb = [r[key] for r in ra], [r[key] for r in rb]
    return {"metric": key, "a": va, "b": vb, "a_median": float(np.median(va)), "b_median": float(np.median(vb)),
            "b_over_a": float(np.median(vb) / np.median(va)), "command_a": ra[0]["command"], "command_b": rb[0]["command"]}


def _accuracy(fn, X, Y, ref) -> dict:
    from vitc.validate import compare, run_artifact

    v = compare(ref, run_artifact(fn, X, 32), Y.numpy(), 1.5, 0.97)
    return {"top1": v.top1_artifact, "top1_fp32": v.top1_reference, "agreement": 100 * v.top1_agreement, "max_abs_diff": v.max_abs_diff}


def run(ckpt_dir: Path, int8_ir: Path, out: Path, threads: int, rounds: int, seconds: float) -> dict:
    import openvino as ov

    from vitc.data import eval_tensors, load_source
    from vitc.export import onnx as onnx_target
    from vitc.export import openvino as ov_target
    from vitc.models import load_checkpoint_model
    from vitc.runtime import machine_info, package_versions
    from vitc.validate import reference_logits

    from .timing import time_calls

    torch.set_num_threads(threads)
    model, meta = load_checkpoint_model(ckpt_dir)
    pre = meta["preprocess"]
    X, Y = eval_tensors(load_source(meta.get("config", {}).get("data", "digits"), pre["input_size"][-1]).val, pre)
    ref = reference_logits(model, X)
    shape1 = [1, *X.shape[1:]]
    res: dict = {"checkpoint": str(ckpt_dir), "int8_ir": str(int8_ir), "threads": threads, "rounds": rounds, "seconds": seconds,
                 "machine": machine_info(), "versions": package_versions(("torch", "timm", "onnxruntime", "openvino", "nncf")),
                 "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "candidates": {}}
    cand = res["candidates"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. int8 IR: non-quantized ops (softmax, LayerNorm, GELU, adds) in f32 vs the CPU plugin's default (bf16 here)
        ab = _ab_benchmark_app(int8_ir, int8_ir, shape1, threads, rounds, seconds, "f32", None)
        ab["accuracy_a"] = _accuracy(ov_target.load(int8_ir, threads, "f32"), X, Y, ref)
        ab["accuracy_b"] = _accuracy(ov_target.load(int8_ir, threads, "default"), X, Y, ref)
        cand["openvino int8, b1: INFERENCE_PRECISION_HINT f32 -> plugin default (bf16 on this CPU)"] = ab
        # 2. int8 IR at batch 16: one request with the LATENCY hint vs the THROUGHPUT hint (streams + requests)
        shape16 = [16, *X.shape[1:]]
        ra, rb = [], []
        for _ in range(rounds):
            ra.append(benchmark_app(int8_ir, shape16, threads, seconds, None, hint="latency"))
            rb.append(benchmark_app(int8_ir, shape16, threads, seconds, None, hint="throughput"))
        va, vb = [r["fps"] for r in ra], [r["fps"] for r in rb]  # benchmark_app's FPS counts images
        cand["openvino int8, batch 16 images/s: LATENCY hint -> THROUGHPUT hint"] = {
            "metric": "images_per_s", "a": va, "b": vb, "a_median": float(np.median(va)), "b_median": float(np.median(vb)),
            "b_over_a": float(np.median(vb) / np.median(va)), "command_a": ra[0]["command"], "command_b": rb[0]["command"]}
        # 3. fp32 IR: the two heads as two matmuls + add vs one folded matmul
        ex = X[:2]
        a_xml, b_xml = tmp / "heads2.xml", tmp / "folded.xml"
        ov.save_model(ov_target.convert(model, ex, True), str(a_xml), compress_to_fp16=False)
        folded = FoldedHeads(model).eval()
        ov.save_model(ov_target.convert(folded, ex, True), str(b_xml), compress_to_fp16=False)
        ab = _ab_benchmark_app(a_xml, b_xml, shape1, threads, rounds, seconds, "f32", "f32")
        ab["accuracy_b"] = _accuracy(ov_target.load(b_xml, threads, "f32"), X, Y, ref)
        cand["openvino fp32, b1: two heads + add -> one folded linear head"] = ab
        # 4. ONNX Runtime fp32: as exported vs onnxruntime.transformers' ViT optimizer (fused LayerNorm/GELU)
        fp32 = tmp / "m.onnx"
        onnx_target.export(model, ex, fp32, onnx_target.Options())
        from onnxruntime.transformers.optimizer import optimize_model

        opt = tmp / "opt.onnx"
        optimize_model(str(fp32), model_type="vit", num_heads=model.blocks[0].attn.num_heads,
                       hidden_size=model.embed_dim).save_model_to_file(str(opt))
        x1 = np.ascontiguousarray(X[:1].numpy())
        ta, tb = [], []
        for _ in range(rounds):
            for path, acc in ((fp32, ta), (opt, tb)):
                fn = onnx_target.load(path, threads)  # one session alive at a time
                acc.append(time_calls(fn, x1, min_seconds=seconds).p50_ms)
                del fn
        cand["onnxruntime fp32, b1: as exported -> transformers optimizer (model_type vit)"] = {
            "metric": "p50_ms", "a": ta, "b": tb, "a_median": float(np.median(ta)), "b_median": float(np.median(tb)),
            "b_over_a": float(np.median(tb) / np.median(ta)), "accuracy_b": _accuracy(onnx_target.load(opt, threads), X, Y, ref),
}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab.json").write_text(json.dumps(res, indent=2))
    (out / "ab.md").write_text(markdown(res))
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Latency candidates, before -> after (issue 6)", "",
             f"`python -m vitc.benchmarks.latency_ab {res['checkpoint']} --int8-ir {res['int8_ir']} --rounds {res['rounds']} --seconds {res['seconds']:g}`  ",
             f"{res['date']}; {m.get('cpu')}, {m.get('cores')} cores, {res['threads']} threads; "
             + ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v), "",
             f"A and B alternate for {res['rounds']} rounds of {res['seconds']:g} s; medians of the rounds.", "",
             "| candidate | metric | A (before) | B (after) | B/A | rounds A | rounds B | accuracy after (top-1, agreement) |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for name, c in res["candidates"].items():
        acc = c.get("accuracy_b")
        a = f"{acc['top1']:.2f}%, {acc['agreement']:.2f}%" if acc else "-"
        lines.append(f"| {name} | {c['metric']} | {c['a_median']:.3f} | {c['b_median']:.3f} | {c['b_over_a']:.3f} | "
                     f"{', '.join(f'{v:.2f}' for v in c['a'])} | {', '.join(f'{v:.2f}' for v in c['b'])} | {a} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--int8-ir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("results/latency-ab"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    print(markdown(run(a.checkpoint, a.int8_ir, a.out, a.threads, a.rounds, a.seconds)))


if __name__ == "__main__":
    main()
