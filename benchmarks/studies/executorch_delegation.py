"""Issue 25: why ExecuTorch fp32 runs slower than OpenVINO fp32. How much of the graph does the XNNPACK partitioner
delegate, and what runs between the delegate calls (ExecuTorch's portable kernels)? Static: the lowered program's
graph is read, nothing is timed, so it can run while the machine is busy.

Counted per variant: XNNPACK delegate calls per inference, and the ops left outside them, by name. Variants: the
batch dimension dynamic (vitc's export: one .pte for batches 1..64) or fixed at 1; timm's fused attention
(F.scaled_dot_product_attention, which torch.export decomposes with masking ops) or its explicit q @ k^T softmax @ v.

    python -m benchmarks.studies.executorch_delegation --img-size 224 --patch-size 16 --out results/executorch-delegation
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch


def lowered_ops(model: torch.nn.Module, example: torch.Tensor, dynamic: bool) -> tuple[int, dict[str, int]]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    ds = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic else None
    ep = torch.export.export(model, (example if dynamic else example[:1],), dynamic_shapes=ds)
    graph = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).exported_program().graph_module.graph
    ops = collections.Counter(
        str(n.target).split(">")[0].replace("<EdgeOpOverload: ", "").strip()
        for n in graph.nodes
        if n.op == "call_function" and "getitem" not in str(n.target)
    )
    return ops.pop("executorch_call_delegate", 0), dict(ops.most_common())


def main(argv: list[str] | None = None) -> None:
    from vitc.models import create_model
    from vitc.runtime import machine_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="deit_tiny")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.manual_seed(0)  # the weights do not change the graph; random ones will do
    model, _ = create_model(a.model, 10, a.img_size, a.patch_size)
    model.eval()
    x = torch.randn(2, 3, a.img_size, a.img_size)
    rows = []
    for fused in (True, False):
        for blk in model.blocks:
            blk.attn.fused_attn = fused
        for dynamic in (True, False):
            delegates, ops = lowered_ops(model, x, dynamic)
            rows.append(
                {
                    "fused_attention": fused,
                    "dynamic_batch": dynamic,
                    "delegate_calls": delegates,
                    "ops_outside": sum(ops.values()),
                    "outside_by_op": ops,
                }
            )
            print(rows[-1]["fused_attention"], dynamic, delegates, sum(ops.values()), flush=True)
    from vitc.runtime import package_versions

    res = {
        "command": "python -m benchmarks.studies.executorch_delegation " + " ".join(argv or sys.argv[1:]),
        "model": f"{a.model} img {a.img_size} patch {a.patch_size} (random weights)",
        "machine": machine_info(),
        "executorch": package_versions(["executorch"]).get("executorch"),
        "rows": rows,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "delegation.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [
        f"# ExecuTorch XNNPACK delegation: {res['model']}",
        "",
        f"Command: `{res['command']}`; executorch {res['executorch']}, torch {res['machine']['torch']}, "
        f"timm {res['machine']['timm']}. Static (the lowered graph is read; nothing timed).",
        "",
        "| attention | batch | XNNPACK delegate calls | ops outside the delegate | the most frequent outside |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        top = ", ".join(f"{k.split('.')[1] if '.' in k else k} {v}" for k, v in list(r["outside_by_op"].items())[:5])
        lines.append(
            f"| {'fused (SDPA)' if r['fused_attention'] else 'explicit'} | "
            f"{'dynamic 1-64' if r['dynamic_batch'] else 'fixed 1'} | {r['delegate_calls']} | {r['ops_outside']} | {top} |"
        )
    (a.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
