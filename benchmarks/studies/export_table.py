"""Every artifact vitc can produce here for one checkpoint: target x precision, each exported,
loaded back and validated on the real val split (size, top-1, agreement with fp32, max diff).
One failing artifact never stops the others.

    python -m benchmarks.studies.export_table runs/study/hard-s0 --out results/exports-digits
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
from pathlib import Path

from vitc import export
from vitc.export.stage import export_checkpoint
from vitc.runtime import machine_info


def rows(ckpt: Path, work: Path, threads: int, calib_size: int) -> list[dict]:
    out = []
    for name in export.names():
        target = export.get(name)
        for precision in target.PRECISIONS:
            row = {"target": name, "precision": precision}
            why = target.check()
            if why:
                out.append({**row, "status": f"skipped: {why}"})
                continue
            try:
                m = export_checkpoint(
                    ckpt, name, precision, work, calib="digits", calib_size=calib_size, threads=threads
                )
                v = m["validation"]
                out.append(
                    {
                        **row,
                        "status": m["status"],
                        "size_mb": m["size_bytes"] / 1e6,
                        "top1": v["top1_artifact"],
                        "top1_fp32_pytorch": v["top1_reference"],
                        "agreement": 100 * v["top1_agreement"],
                        "max_abs_diff": v["max_abs_diff"],
                        "cosine_min": v["cosine_min"],
                        "export_s": m["export_s"],
                        "notes": m["notes"],
                        "artifact": m["artifact"],
                    }
                )
            except Exception as e:  # one failure never stops the others; the row says what broke
                traceback.print_exc()
                out.append({**row, "status": f"error: {type(e).__name__}: {str(e)[:200]}"})
            print(json.dumps(out[-1]), flush=True)
    return out


def render(r: dict) -> str:
    mc = r["machine"]
    lines = [
        "# Export and quantization of the digits-distilled deit_tiny student",
        "",
        f"Checkpoint: `{r['checkpoint']}` (deployed top-1 in PyTorch fp32: {r['fp32_top1']:.2f}% on the 360-image val split).",
        f"Machine: {mc['cpu']}, {mc['cores']} cores; torch {mc['torch']}. Command: `{r['command']}`",
        "",
        "Every artifact was loaded back in its own runtime and run on all 360 val images; agreement is the share of "
        "images whose top-1 equals fp32 PyTorch's. int8 calibration: 128 real train-split images.",
        "",
        "| target | precision | status | size MB | top-1 % | Δ vs fp32 | agreement % | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        if "top1" in x:
            lines.append(
                f"| {x['target']} | {x['precision']} | {x['status']} | {x['size_mb']:.1f} | {x['top1']:.2f} | "
                f"{x['top1'] - x['top1_fp32_pytorch']:+.2f} | {x['agreement']:.2f} | {x['max_abs_diff']:.2e} |"
            )
        else:
            lines.append(f"| {x['target']} | {x['precision']} | {x['status']} | | | | | |")
    notes = {f"{x['target']}": n for x in r["rows"] for n in x.get("notes", {}).values()}
    lines += [""] + [f"- {k}: {v}" for k, v in notes.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("runs/exports-table"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-size", type=int, default=128)
    a = ap.parse_args(argv)
    rs = rows(a.checkpoint, a.work, a.threads, a.calib_size)
    fp32 = next((x["top1_fp32_pytorch"] for x in rs if "top1_fp32_pytorch" in x), float("nan"))
    report = {
        "checkpoint": str(a.checkpoint),
        "fp32_top1": fp32,
        "machine": machine_info(),
        "rows": rs,
        "command": "python -m benchmarks.studies.export_table " + shlex.join(argv or sys.argv[1:]),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "exports.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.out / "exports.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
