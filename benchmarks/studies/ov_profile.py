"""Where an OpenVINO IR's batch-1 time goes: the CPU plugin's own per-node counters (PERF_COUNT, the
numbers `benchmark_app -report_type detailed_counters` prints), medians over many calls, summed by
node type and kernel; FullyConnected and Convolution nodes also get GFLOP/s against the measured
matmul peak. Issue 6 asks for this before and after each latency change.

    python -m benchmarks.studies.ov_profile runs/deit_tiny-224/export/student-openvino-fp32.xml \
        --out results/latency-ab/6-profile-openvino-fp32
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def _flops(op) -> float | None:
    """2 x MACs of a FullyConnected / Convolution node of the compiled (runtime) graph."""
    kind = op.get_rt_info()["layerType"].astype(str)
    out = op.get_output_partial_shape(0)
    if kind not in ("FullyConnected", "Convolution") or out.is_dynamic:
        return None
    k = (
        op.get_input_partial_shape(0)[-1].get_length()
        if kind == "FullyConnected"
        else int(np.prod([d.get_length() for d in list(op.get_input_partial_shape(1))[1:]]))
    )
    return 2.0 * int(np.prod([d.get_length() for d in out])) * k


def profile(xml: Path, threads: int, calls: int, precision: str | None) -> dict:
    import openvino as ov

    from vitc.export.openvino import compile_config, runtime_precision

    core = ov.Core()
    model = core.read_model(str(xml))
    shape = [1, *[d.get_length() for d in list(model.input(0).get_partial_shape())[1:]]]
    model.reshape({model.input(0).get_any_name(): ov.PartialShape(shape)})
    precision = precision or runtime_precision(model)
    # the settings vitc's loader runs the IR with, plus the plugin's per-node counters
    compiled = core.compile_model(model, "CPU", {**compile_config("LATENCY", threads, precision), "PERF_COUNT": True})
    flops = {op.get_friendly_name(): _flops(op) for op in compiled.get_runtime_model().get_ordered_ops()}
    req = compiled.create_infer_request()
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(20):
        req.infer({0: x})
    per_node, walls = defaultdict(list), []
    info = {}
    for _ in range(calls):
        t0 = time.perf_counter()
        req.infer({0: x})
        walls.append(1e3 * (time.perf_counter() - t0))
        for p in req.profiling_info:
            if p.status == p.Status.EXECUTED:
                per_node[p.node_name].append(p.real_time.total_seconds() * 1e3)
                info[p.node_name] = (p.node_type, p.exec_type)
    groups: dict = defaultdict(lambda: {"nodes": 0, "ms": 0.0, "gflop": 0.0})
    for name, ts in per_node.items():
        g = groups[info[name]]
        g["nodes"] += 1
        g["ms"] += float(np.median(ts))
        g["gflop"] += (flops.get(name) or 0.0) / 1e9
    total = sum(g["ms"] for g in groups.values())
    rows = [{"node_type": t, "kernel": k, **g, "share": g["ms"] / total} for (t, k), g in groups.items()]
    return {
        "ir": str(xml),
        "shape": shape,
        "precision": precision,
        "threads": threads,
        "calls": calls,
        "wall_p50_ms": float(np.median(walls)),
        "nodes_ms": total,
        "rows": sorted(rows, key=lambda r: -r["ms"]),
    }


def markdown(res: dict, peak: float | None, command: str, stamp: str) -> str:
    lines = [
        f"# OpenVINO per-node profile: {Path(res['ir']).name}",
        "",
        f"`{command}`  ",
        stamp,
        "",
        f"Batch {res['shape'][0]}, {res['threads']} threads, inference precision {res['precision']}; medians over "
        f"{res['calls']} calls per node. Wall p50 {res['wall_p50_ms']:.3f} ms; sum of node medians {res['nodes_ms']:.3f} ms.",
        "",
        "| node type | kernel | nodes | ms | share | GFLOP | GFLOP/s | % of peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        rate = r["gflop"] / (r["ms"] / 1e3) if r["gflop"] else None
        lines.append(
            f"| {r['node_type']} | {r['kernel']} | {r['nodes']} | {r['ms']:.3f} | {r['share']:.1%} | "
            + (f"{r['gflop']:.3f} | {rate:.0f} | " + (f"{rate / peak:.0%}" if peak else "-") if rate else "- | - | -")
            + " |"
        )
    graph = res.get("graph") or {}
    if peak and graph.get("gflops_model") and res["precision"] == "f32":  # issue 6's fp32 target: <= 1.1x the floor
        lines += ["", *ceiling(res, peak, graph["gflops_model"], graph["gflops_exported"])]
    return "\n".join(lines) + "\n"


def ceiling(res: dict, peak: float, gflop_model: float, gflop_graph: float) -> list[str]:
    """What a p50 within 1.1x of the floor would take, from this profile: the matmul/conv nodes'
    measured time, the rest of the graph's FLOPs (attention, inside Subgraph/MatMul nodes) at the
    peak, everything else free."""
    floor = 1e3 * gflop_model / peak
    mm = [r for r in res["rows"] if r["gflop"]]
    mm_ms, mm_gflop = sum(r["ms"] for r in mm), sum(r["gflop"] for r in mm)
    rest_at_peak = 1e3 * max(gflop_graph - mm_gflop, 0.0) / peak
    need = (
        1.1 * floor - rest_at_peak
    )  # ms left for the FC/conv nodes if attention ran at the peak and the rest were free
    return [
        f"Floor: the model's {gflop_model:.3f} GFLOP at {peak:.0f} GFLOP/s = {floor:.3f} ms; 1.1x = {1.1 * floor:.3f} ms. "
        f"This graph executes {gflop_graph:.3f} GFLOP: {mm_gflop:.3f} in FullyConnected/Convolution nodes "
        f"({mm_ms:.3f} ms here, {mm_gflop / (mm_ms / 1e3) / peak:.0%} of the peak), {gflop_graph - mm_gflop:.3f} elsewhere "
        f"(attention matmuls; {rest_at_peak:.3f} ms even at the peak).",
        f"With attention at the peak and LayerNorm, softmax, transposes and adds free, 1.1x the floor leaves "
        f"{need:.3f} ms for the FullyConnected/Convolution nodes: {mm_gflop / (need / 1e3) / peak:.0%} of the peak "
        f"(measured here: {mm_gflop / (mm_ms / 1e3) / peak:.0%}), against every other node's measured "
        f"{res['nodes_ms'] - mm_ms:.3f} ms.",
    ]


def main() -> None:
    from vitc.benchmarks import peak as peak_mod
    from vitc.runtime import machine_info, package_versions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--precision", default=None, help="f32 | bf16 | default (the IR's own setting when omitted)")
    a = ap.parse_args()
    res = profile(a.ir, a.threads, a.calls, a.precision)
    manifest = Path(str(a.ir) + ".json")  # `vitc export`'s: the artifact's precision, the model's and graph's FLOPs
    man = json.loads(manifest.read_text()) if manifest.is_file() else {}
    res["graph"] = man.get("graph")
    # the peak the bench would rate this artifact against (same table); an IR without a manifest: fp32 if run in f32
    kind = peak_mod.PEAK_FOR.get(man.get("precision", "fp32" if res["precision"] == "f32" else ""))
    peak = peak_mod.peaks(a.threads)["gflops"].get(kind) if kind else None
    m = machine_info()
    stamp = (
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {m.get('cpu')}, {m.get('cores')} cores; "
        + ", ".join(f"{k} {v}" for k, v in package_versions(("openvino",)).items())
        + (f"; {kind} peak {peak:.0f} GFLOP/s" if peak else "")
    )
    res.update(peak_gflops=peak, date=stamp)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "profile.json").write_text(json.dumps(res, indent=2))
    md = markdown(
        res,
        peak,
        "python -m benchmarks.studies.ov_profile "
        + " ".join(
            [str(a.ir), "--out", str(a.out), "--calls", str(a.calls)]
            + (["--precision", a.precision] if a.precision else [])
        ),
        stamp,
    )
    (a.out / "profile.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
