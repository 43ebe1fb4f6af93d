"""Issue 33: every int8 recipe x {this CPU, an emulated CPU without VNNI}: top-1 agreement with PyTorch fp32 and
top-1 on the val split, the portable and the VNNI-only recipe side by side.

    python -m benchmarks.studies.int8_isa export runs/fashion-student runs/int8-isa [--calib-size 512]
    python -m benchmarks.studies.int8_isa eval runs/int8-isa                      # this CPU
    python -m benchmarks.studies.int8_isa eval runs/int8-isa --emulate Haswell   # qemu-x86_64 -cpu Haswell
    python -m benchmarks.studies.int8_isa report runs/int8-isa --out results/int8-isa
    vitc bench runs/int8-isa --out runs/int8-isa-bench --threads 1 --batch 1,16 --repeats 5 --min-seconds 1.0 \
        --no-crosscheck                                                          # latency, each row isolated
    python -m benchmarks.studies.int8_isa pairs runs/int8-isa-bench/bench.json   # portable vs VNNI-only per round

The emulated CPU: QEMU's user-mode emulator (Debian's qemu-user) runs the worker process on a Haswell (AVX2, no
AVX-512, no VNNI), so every runtime's own CPUID dispatch picks its AVX2 kernels, VPMADDUBSW saturation included.
It emulates arithmetic, not speed: latency comes from `vitc bench` on real hosts only.

The eval worker imports no torch (except for the .ptl row, TorchScript needs it): each artifact runs through the
runner a bundle ships (export/edge_run.py), on the val images exactly as that runner feeds them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# (row name, target, int8_isa, opts, preprocess)
RECIPES = [
    ("onnx-static-portable", "onnx", "portable", {"int8_mode": "static"}, "python"),
    ("onnx-static-vnni", "onnx", "vnni", {"int8_mode": "static"}, "python"),
    ("onnx-static-portable-rgb8", "onnx", "portable", {"int8_mode": "static"}, "in-graph"),
    ("onnx-static-vnni-rgb8", "onnx", "vnni", {"int8_mode": "static"}, "in-graph"),
    ("onnx-dynamic-portable", "onnx", "portable", {"int8_mode": "dynamic"}, "python"),
    ("onnx-dynamic-vnni", "onnx", "vnni", {"int8_mode": "dynamic"}, "python"),
    ("openvino-portable", "openvino", "portable", None, "python"),
    ("openvino-vnni", "openvino", "vnni", None, "python"),
    ("openvino-portable-rgb8", "openvino", "portable", None, "in-graph"),
    ("openvino-vnni-rgb8", "openvino", "vnni", None, "in-graph"),
    ("executorch-xnnpack", "executorch", "portable", None, "python"),
    ("torchscript-lite-dynamic", "torchscript-lite", "portable", None, "python"),
]


def export(ckpt_dir: Path, out: Path, calib_size: int, only: list[str] | None) -> None:
    from vitc.export.stage import export_checkpoint
    from vitc.handoff import Checkpoint
    from vitc.isa import here

    out.mkdir(parents=True, exist_ok=True)
    c = Checkpoint.open(ckpt_dir)
    data = c.data_name(None)
    X, Y = c.val(data)
    px = c.pixels(data)[0]
    np.save(out / "pixels.npy", px.numpy())
    np.save(out / "labels.npy", Y.numpy())
    np.save(out / "reference.npy", c.reference(data))
    rows = json.loads((out / "recipes.json").read_text()) if (out / "recipes.json").is_file() else {}
    for name, target, isa, opts, pre in RECIPES:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        m = export_checkpoint(
            c, target, "int8", out, calib_size=calib_size, opts=opts, preprocess=pre, int8_isa=isa, stem=name
        )
        rows[name] = {
            "artifact": m["artifact"],
            "target": target,
            "int8_isa": m["options"].get("int8_isa"),
            "preprocess": pre,
            "options": {k: v for k, v in m["options"].items() if k in ("int8_mode", "nncf", "nncf_result")},
            "export_s": time.perf_counter() - t0,
            "validation": m["validation"],
            "status": m["status"],
        }
        print(f"{name}: {m['status']} agreement {100 * m['validation']['top1_agreement']:.2f}%", flush=True)
    if not only or "onnx-static-u8u8" in only:
        rows["onnx-static-u8u8"] = u8u8(c, out, calib_size)
    (out / "recipes.json").write_text(
        json.dumps(
            {
                "checkpoint": str(ckpt_dir),
                "data": data,
                "built_on": here(),
                **{k: v for k, v in rows.items() if k not in ("checkpoint", "data", "built_on")},
            },
            indent=1,
        )
    )


def u8u8(c, out: Path, calib_size: int) -> dict:
    """ONNX Runtime's other documented way out of saturation: u8 activations x u8 weights (MLAS's U8U8 kernels
    widen to 16 bits before multiplying), full 8-bit range. Not a vitc option: measured here against reduce_range."""
    from vitc.compress.quantize import ort_static_int8
    from vitc.export.stage import calibration_images, export_checkpoint
    from vitc.validate import compare, run_artifact

    m = export_checkpoint(c, "onnx", "fp32", out, stem="onnx-fp32")
    art = out / "onnx-static-u8u8-onnx-int8.onnx"
    calib = calibration_images(c, None, calib_size)
    ort_static_int8(out / m["artifact"], art, calib, activation="u8", weights="u8", reduce_range=False)
    from vitc.export import onnx as target

    X, Y = c.val(c.data_name(None))
    got = run_artifact(target.load(art), X, 32)
    v = compare(c.reference(c.data_name(None)), got, Y.numpy(), 1.5, 0.97)
    status = "ok" if v.passed else "failed: validation"
    man = {
        **m,
        "artifact": art.name,
        "precision": "int8",
        "validation": v.to_json(),
        "status": status,
        "isa": {**m["isa"], "int8_isa": "u8u8"},
        "selftest": None,
    }
    (out / (art.name + ".json")).write_text(json.dumps(man))
    return {
        "artifact": art.name,
        "target": "onnx",
        "int8_isa": "u8u8 (full range)",
        "preprocess": "python",
        "options": {"int8_mode": "static", "activation": "u8", "weights": "u8"},
        "validation": v.to_json(),
        "status": status,
    }


def _fn(path: Path, threads: int):
    if path.suffix == ".ptl":
        import torch

        torch.set_num_threads(threads)
        m = torch.jit.load(str(path))
        return lambda x: m(torch.from_numpy(x)).detach().numpy()
    from vitc.export.edge_run import _runtime

    return _runtime(path, threads)


def evaluate(d: Path, emulate: str | None, threads: int, limit: int | None, only: list[str] | None) -> None:
    """Run every artifact of recipes.json on the val images here, or re-run this under qemu-x86_64 -cpu EMULATE."""
    if emulate:
        qemu = shutil.which("qemu-x86_64")
        if not qemu:
            raise SystemExit("qemu-x86_64 is not installed: apt-get install qemu-user")
        cmd = [
            qemu,
            "-cpu",
            emulate,
            sys.executable,
            "-m",
            "benchmarks.studies.int8_isa",
            "eval",
            str(d),
            "--threads",
            str(threads),
            "--tag",
            f"qemu-{emulate}",
        ]
        cmd += ["--limit", str(limit)] if limit else []
        cmd += sum((["--only", o] for o in only or []), [])
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)  # qemu warns once per CPUID bit TCG lacks
        return
    raise AssertionError("unreachable")


def run_here(d: Path, tag: str, threads: int, limit: int | None, only: list[str] | None) -> None:
    from vitc.export.edge_run import int8_isa, normalize

    rec = json.loads((d / "recipes.json").read_text())
    px = np.load(d / "pixels.npy")[:limit]
    isa = int8_isa()
    res_file = d / f"logits-{tag}.npz"
    done = dict(np.load(res_file)) if res_file.is_file() else {}
    for name, r in rec.items():
        if not isinstance(r, dict) or "artifact" not in r or (only and name not in only):
            continue
        man = json.loads((d / (r["artifact"] + ".json")).read_text())
        x = px if r["preprocess"] == "in-graph" else normalize(px, man["preprocess"])
        fn = _fn(d / r["artifact"], threads)
        t0 = time.perf_counter()
        done[name] = np.concatenate(
            [np.asarray(fn(np.ascontiguousarray(x[i : i + 50])), np.float32) for i in range(0, len(x), 50)]
        )
        print(f"[{tag} {isa['path']}] {name}: {len(x)} images in {time.perf_counter() - t0:.0f} s", flush=True)
        np.savez(res_file, **done)
    (d / f"isa-{tag}.json").write_text(json.dumps(isa))


def report(d: Path, out: Path) -> None:
    """One row per recipe: agreement with PyTorch fp32, top-1 and max |diff| on every tag's images; for an emulated
    tag, the native logits on the same images beside it and the drift between the two (max |emulated - native|,
    and the share of images whose top-1 changed)."""
    rec = json.loads((d / "recipes.json").read_text())
    ref, labels = np.load(d / "reference.npy"), np.load(d / "labels.npy")
    tags = sorted(p.stem[len("logits-") :] for p in d.glob("logits-*.npz"))
    native = dict(np.load(d / "logits-native.npz")) if "native" in tags else {}
    rows = []
    for name, r in rec.items():
        if not isinstance(r, dict) or "artifact" not in r:
            continue
        row = {
            "recipe": name,
            "target": r["target"],
            "int8_isa": r["int8_isa"],
            "preprocess": r["preprocess"],
            "status_at_export": r["status"],
        }
        for tag in tags:
            z = np.load(d / f"logits-{tag}.npz")
            if name not in z:
                continue
            got = z[name]
            n = len(got)
            cell = {
                "isa": json.loads((d / f"isa-{tag}.json").read_text())["path"],
                "images": n,
                "agreement": 100 * float((got.argmax(1) == ref[:n].argmax(1)).mean()),
                "top1": 100 * float((got.argmax(1) == labels[:n]).mean()),
                "top1_fp32": 100 * float((ref[:n].argmax(1) == labels[:n]).mean()),
                "max_abs_diff": float(np.abs(got - ref[:n]).max()),
            }
            if tag != "native" and name in native:
                nat = native[name][:n]
                cell["native_same_images"] = {
                    "agreement": 100 * float((nat.argmax(1) == ref[:n].argmax(1)).mean()),
                    "top1": 100 * float((nat.argmax(1) == labels[:n]).mean()),
                }
                cell["drift_from_native"] = float(np.abs(got - nat).max())
                cell["top1_changed_pct"] = 100 * float((got.argmax(1) != nat.argmax(1)).mean())
            row[tag] = cell
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = 100 * float((ref.argmax(1) == labels).mean())
    (out / "int8-isa.json").write_text(
        json.dumps({"recipes": rec, "fp32_top1": fp32, "tags": tags, "rows": rows}, indent=1)
    )
    emu = [t for t in tags if t != "native"]
    head = "| recipe | built for | native: agreement / top-1 / max diff |"
    sep = "|---|---|---:|"
    for t in emu:
        head += f" {t}: agreement / top-1 (native on the same images) | drift from native / top-1 changed |"
        sep += "---:|---:|"
    lines = [f"PyTorch fp32 top-1 {fp32:.2f}% on {len(labels)} images.", "", head, sep]
    for row in rows:
        c = row.get("native")
        cells = [f"{c['agreement']:.2f}% / {c['top1']:.2f}% / {c['max_abs_diff']:.3f}" if c else "-"]
        for t in emu:
            e = row.get(t)
            if not e:
                cells += ["-", "-"]
                continue
            nat = e.get("native_same_images") or {}
            cells.append(
                f"{e['agreement']:.2f}% / {e['top1']:.2f}% ({nat.get('agreement', float('nan')):.2f}% / "
                f"{nat.get('top1', float('nan')):.2f}%)"
            )
            cells.append(f"{e.get('drift_from_native', float('nan')):.3f} / {e.get('top1_changed_pct', 0):.2f}%")
        lines.append(f"| {row['recipe']} | {row['int8_isa']} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


PAIRS = [  # (what, portable artifact stem, VNNI-only artifact stem)
    ("ONNX Runtime static QDQ", "onnx-static-portable-onnx-int8", "onnx-static-vnni-onnx-int8"),
    (
        "ONNX Runtime static QDQ, pixels in",
        "onnx-static-portable-rgb8-onnx-int8-rgb8",
        "onnx-static-vnni-rgb8-onnx-int8-rgb8",
    ),
    ("ONNX Runtime dynamic", "onnx-dynamic-portable-onnx-int8", "onnx-dynamic-vnni-onnx-int8"),
    ("OpenVINO NNCF", "openvino-portable-openvino-int8", "openvino-vnni-openvino-int8"),
    ("OpenVINO NNCF, pixels in", "openvino-portable-rgb8-openvino-int8-rgb8", "openvino-vnni-rgb8-openvino-int8-rgb8"),
    (
        "ONNX Runtime static U8U8 (the other way out) / portable",
        "onnx-static-u8u8-onnx-int8",
        "onnx-static-portable-onnx-int8",
    ),
]


def pairs(bench_json: Path) -> str:
    """Portable vs VNNI-only rows of one isolated bench run: p50s, and their ratio paired round by round."""
    import statistics

    rows = {r["artifact"].rsplit(".", 1)[0]: r for r in json.loads(bench_json.read_text())["rows"]}
    lines = [
        "| runtime | portable p50 ms | VNNI-only p50 ms | portable / VNNI-only, paired per round: median (range) "
        "| batch 16 img/s, portable / VNNI-only | top-1 % | agreement % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for what, a, b in PAIRS:
        if a not in rows or b not in rows:
            continue
        ra, rb = rows[a], rows[b]
        ratio = [x / y for x, y in zip(ra["latency"]["p50_rounds_ms"], rb["latency"]["p50_rounds_ms"])]
        lines.append(
            f"| {what} | {ra['p50_ms']:.3f} | {rb['p50_ms']:.3f} | {statistics.median(ratio):.3f}x "
            f"({min(ratio):.3f}-{max(ratio):.3f}) | {ra['throughput']['16']:.0f} / {rb['throughput']['16']:.0f} "
            f"| {ra['top1']:.2f} / {rb['top1']:.2f} | {ra['agreement']:.2f} / {rb['agreement']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["export", "eval", "report", "pairs"])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--calib-size", type=int, default=512)
    ap.add_argument("--emulate", default=None, help="a qemu CPU model without VNNI, e.g. Haswell")
    ap.add_argument("--tag", default="native")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N val images only")
    ap.add_argument("--only", action="append", default=None, help="recipe name (repeatable)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.cmd == "export":
        export(a.paths[0], a.paths[1], a.calib_size, a.only)
    elif a.cmd == "eval" and a.emulate:
        evaluate(a.paths[0], a.emulate, a.threads, a.limit, a.only)
    elif a.cmd == "eval":
        run_here(a.paths[0], a.tag, a.threads, a.limit, a.only)
    elif a.cmd == "pairs":
        print(pairs(a.paths[0]))
    else:
        report(a.paths[0], a.out or a.paths[0])


if __name__ == "__main__":
    main()
