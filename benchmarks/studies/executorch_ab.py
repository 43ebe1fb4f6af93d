"""Issue 25: ExecuTorch fp32 against OpenVINO fp32, and the export choices that change ExecuTorch's delegation
(results/executorch-delegation): timm's fused attention or its explicit form, the batch dimension dynamic or fixed at 1.
Each variant is timed in its own worker process (the bench's isolated worker) at batch 1, variants alternating over
rounds, so a slow spell of this VM lands on all of them; the ratios of the round medians are the result.

    python -m benchmarks.studies.executorch_ab --img-size 224 --patch-size 16 --rounds 5 --out results/executorch-ab
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch


def export_pte(model: torch.nn.Module, x: torch.Tensor, out: Path, dynamic: bool) -> Path:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    ds = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic else None
    ep = torch.export.export(model, (x if dynamic else x[:1],), dynamic_shapes=ds)
    out.write_bytes(to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
    return out


def main(argv: list[str] | None = None) -> None:
    from vitc.benchmarks.launcher import run_worker, write_inputs
    from vitc.export import openvino as ov_target
    from vitc.models import create_model
    from vitc.runtime import machine_info, package_versions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model, _ = create_model("deit_tiny", 10, a.img_size, a.patch_size)
    model.eval()
    x = torch.randn(2, 3, a.img_size, a.img_size)
    timing = dict(warmup=10, warmup_seconds=0.5, min_runs=20, min_seconds=a.seconds)
    with tempfile.TemporaryDirectory(prefix="vitc-et-ab-") as tmp:
        d = Path(tmp)
        arts = {}
        ov_target.export(model, x, d / "ov.xml", ov_target.Options())
        arts["openvino fp32"] = ("vitc.export.openvino:load", d / "ov.xml")
        for fused in (True, False):
            for blk in model.blocks:
                blk.attn.fused_attn = fused
            for dynamic in (True, False):
                name = f"executorch fp32, {'fused' if fused else 'explicit'} attention, {'dynamic' if dynamic else 'fixed'} batch"
                arts[name] = ("vitc.export.executorch:load", export_pte(model, x, d / f"{len(arts)}.pte", dynamic))
        inputs = write_inputs(x[:1].numpy(), (1,), d, "x")
        p50s: dict[str, list[float]] = {k: [] for k in arts}
        for r in range(a.rounds):
            for name, (loader, path) in arts.items():
                res = run_worker(loader, str(path), a.threads, inputs, timing)
                p50s[name].append(res["batches"][0]["p50_ms"])
                print(f"round {r + 1}: {name}: {p50s[name][-1]:.3f} ms", flush=True)
    med = {k: statistics.median(v) for k, v in p50s.items()}
    ov = med["openvino fp32"]
    rows = [
        {"variant": k, "p50_ms": med[k], "vs_openvino": med[k] / ov, "rounds_ms": p50s[k], "spread": max(v) / min(v)}
        for k, v in p50s.items()
    ]
    res = {
        "command": "python -m benchmarks.studies.executorch_ab " + " ".join(argv or sys.argv[1:]),
        "model": f"deit_tiny img {a.img_size} patch {a.patch_size} (random weights), batch 1, {a.threads} threads",
        "machine": machine_info(),
        "versions": package_versions(["executorch", "openvino", "torch"]),
        "rows": rows,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ab.json").write_text(json.dumps(res, indent=1) + "\n")
    cid = res["machine"]["cpu_id"]
    lines = [
        f"# ExecuTorch fp32 vs OpenVINO fp32: {res['model']}",
        "",
        f"Command: `{res['command']}`. Machine: {res['machine']['cpu']} (family {cid['family']} model {cid['model']} "
        f"stepping {cid['stepping']}); {', '.join(f'{k} {v}' for k, v in res['versions'].items())}. "
        f"{a.rounds} rounds, variants alternating, each timed in its own worker; p50 = median of the rounds.",
        "",
        "| variant | p50 ms | vs OpenVINO fp32 | rounds (ms) | spread |",
        "|---|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['p50_ms']:.3f} | {r['vs_openvino']:.2f}x | "
            f"{', '.join(f'{v:.2f}' for v in r['rounds_ms'])} | {r['spread']:.2f}x |"
        )
    (a.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
