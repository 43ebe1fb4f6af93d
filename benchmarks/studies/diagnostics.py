"""Issue 16's committed diagnostics: does int8 change where the student looks and what its features
encode? For one pipeline run folder (runs/NAME/student, int8, teacher): attention PNGs of 4 val images and
the whole-val-split table (student fp32 vs each compressed model), the position-embedding grid, and the probe
table (fp32 student, int8 student, teacher, the student at random init), on the data the student was trained on.

    python -m benchmarks.studies.diagnostics --run runs/digits --out results/diagnostics-digits
    python -m benchmarks.studies.diagnostics --run runs/fashion --train-limit 10000 --out results/fashion-cpu/diagnostics
    python -m benchmarks.studies.diagnostics --run runs/deit_tiny-224 --teacher runs/digits/teacher \\
        --out results/diagnostics-224
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from vitc import checkpoint as ckpt
from vitc.runtime import machine_info


def vitc(*args) -> float:
    print("$ " + shlex.join(["vitc", *map(str, args)]), flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vitc", *map(str, args)], check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--teacher", type=Path, default=None, help="default: <run>/teacher")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--train-limit", type=int, default=None, help="probe on a stratified subset of train (vitc features)"
    )
    a = ap.parse_args(argv)
    # the stage table's folders (vitc/stages.py); artifacts are named for their source folder
    student, q, work = a.run / "student", a.run / "int8", a.run / "diagnostics"
    data = json.loads((student / "vitc.json").read_text())["data"]
    teacher = a.teacher or a.run / "teacher"
    a.out.mkdir(parents=True, exist_ok=True)
    log: dict = {
        "machine": machine_info(),
        "data": data,
        "command": " ".join(["python -m benchmarks.studies.diagnostics", *(argv or sys.argv[1:])]),
        "steps": [],
    }

    def step(*args):
        log["steps"].append({"command": shlex.join(["vitc", *map(str, args)]), "seconds": round(vitc(*args), 1)})

    compared = [q, q / "student-onnx-int8.onnx", q / "student-openvino-int8.xml"]  # q itself: PyTorch dynamic int8
    compared = [c for c in compared if c.exists()]
    step(
        "attention",
        "--model",
        student,
        *sum((["--compare", c] for c in compared), []),
        "--out",
        a.out / "attention",
        "--pngs",
        "4",
    )
    step("posembed", student, "--out", a.out / "posembed")
    step(
        "export",
        student,
        "--target",
        "openvino",
        "--precision",
        "int8",
        "--calib",
        data,
        "--features",
        "--out",
        work / "features-ov",
    )
    ov_feat = next((work / "features-ov").glob("*.xml"))
    feats = {
        "student fp32": (student, []),
        "student int8 (PyTorch dynamic)": (q, []),
        "student int8 (OpenVINO NNCF, features export)": (ov_feat, []),
        "teacher": (teacher, []),
        "student, random init (floor)": (student, ["--random-init"]),
    }
    files = []
    for i, (name, (model, extra)) in enumerate(feats.items()):
        f = work / f"features-{i}.safetensors"
        limit = ["--train-limit", str(a.train_limit)] if a.train_limit else []
        step("features", data, "--model", model, "--token", "cls", *extra, *limit, "--out", f)
        files.append(f)
    step("probe", *files, "--out", a.out / "probe.json")
    ckpt.write_json(a.out / "steps.json", log)
    (a.out / "README.md").write_text(render(a, list(feats), log))


def render(a, names: list[str], log: dict) -> str:
    att = json.loads((a.out / "attention" / "attention.json").read_text())
    pe = json.loads((a.out / "posembed" / "posembed.json").read_text())
    probe = json.loads((a.out / "probe.json").read_text())
    mc = log["machine"]
    L = [
        f"# Diagnostics: {a.run}",
        "",
        f"Command: `{log['command']}`; each step below is a `vitc` command (steps.json has them "
        f"with their wall times). Data: {log['data']}. Machine: {mc['cpu']} (family {mc['cpu_id']['family']} model "
        f"{mc['cpu_id']['model']} stepping {mc['cpu_id']['stepping']}), {mc['cores']} cores, "
        f"no GPU; torch {mc['torch']}, timm {mc['timm']}.",
        "",
        f"## Attention: student fp32 vs compressed ({att['images']} images, the {att['source']})",
        "",
        "Class-token attention. JS: Jensen-Shannon distance (base 2, 0 = identical, 1 = disjoint) of each head's class-token "
        "attention row, mean over images and heads; rollout r: Pearson r of the rollout maps; IoU: overlap of their "
        "top-10% patches.",
        "",
        "| compared model | top-1 % (fp32 %) | agreement % | mean JS | most changed block (JS) | rollout r | top-10% IoU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in att["compared"]:
        js = c.get("js_per_layer")
        L.append(
            f"| {c['compared']} | {c.get('top1_compared', float('nan')):.2f} ({c.get('top1_reference', float('nan')):.2f}) | "
            f"{100 * c['agreement']:.2f} | {sum(js) / len(js):.4f} | {c['most_changed_layer']} ({max(js):.4f}) | "
            f"{c['rollout_pearson_mean']:.4f} | {c['top10_iou_mean']:.3f} |"
            if js
            else f"| {c['compared']} | {c['js_note']} |"
        )
    L += ["", "JS per block (rows: compared models; columns: blocks 0..):", ""]
    for c in att["compared"]:
        if c.get("js_per_layer"):
            L.append(f"- {c['compared']}: " + ", ".join(f"{v:.4f}" for v in c["js_per_layer"]))
    L += [
        "",
        "PNGs (first 4 val images): "
        + ", ".join(f"[{p.name}](attention/{p.name})" for p in sorted((a.out / "attention").glob("*.png"))),
        "",
        "## Position embeddings",
        "",
        "![posembed](posembed/posembed.png)",
        "",
        f"{pe['model']}, {pe['grid'][0]}x{pe['grid'][1]} patches: mean cosine similarity with the 4 nearest neighbours "
        f"{pe['neighbours']:.3f}, same row {pe['same_row']:.3f}, same column {pe['same_column']:.3f}, elsewhere "
        f"{pe['other']:.3f}.",
        "",
        "## Linear and k-NN probes on frozen features (val top-1 %)",
        "",
        "Logistic regression on standardised features, C chosen on a stratified 20% split of train then refit; "
        "k-NN: cosine, k=20, votes weighted by exp(sim/0.07) (DINO).",
        "",
        "| features | dim | logistic regression | C | k-NN | chance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n, r in zip(names, probe):
        L.append(
            f"| {n} ({r['token']} token) | {r['dim']} | {r['logreg']['top1']:.2f} | {r['logreg']['C']:g} | "
            f"{r['knn']['top1']:.2f} | {r['chance']:.1f} |"
        )
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
