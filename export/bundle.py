"""`vitc bundle`: the folder that goes onto the device. It runs with numpy, Pillow and the artifact's runtime:
no torch, no timm, no vitc (an ExecuTorch bundle's Python runner is the exception: the executorch package brings
torch; a phone runs the .pte through ExecuTorch's C++/Java/Swift runtime instead).

    DIR/<artifact>          the model (.onnx, .xml + .bin, or .pte), pre-processing inside by default
    DIR/labels.json         class names, in output order
    DIR/preprocess.json     resize/crop/normalize recipe and what the artifact takes
    DIR/<artifact>.selftest.npz  reference images with the logits vitc validated: `python run.py --selftest`
    DIR/run.py              export/edge_run.py: decode, resize, crop (and normalize, when not in the graph), run
    DIR/requirements.txt    the runtime at the version the artifact was validated with
    DIR/README.md           the two lines that run it

Manifests are read through vitc.manifest, which imports no torch: nor do this module and the runner.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vitc.errors import ConfigError, OutputError
from vitc.manifest import Manifest

RUNTIMES = {".onnx": "onnxruntime", ".xml": "openvino", ".pte": "executorch"}
TARGET_OF = {".onnx": "onnx", ".xml": "openvino", ".pte": "executorch"}
RUNNER = Path(__file__).with_name("edge_run.py")


def files_of(artifact: Path) -> list[Path]:
    """The artifact and the files it needs beside it (an IR's .bin, an ONNX model's external data)."""
    files = [artifact]
    if artifact.suffix == ".xml":
        files.append(artifact.with_suffix(".bin"))
    files += [p for p in artifact.parent.glob(artifact.name + ".data")]
    files += [p for p in artifact.parent.glob(artifact.name + ".selftest.npz")]  # absent in older exports
    return files


def make(artifact: Path, out: Path, force: bool = False) -> dict:
    """Bundle an exported artifact into `out`; written beside and renamed into place, so an error leaves nothing."""
    artifact = Path(artifact)
    if not artifact.is_file():
        raise ConfigError(f"artifact {artifact} does not exist", "pass a file written by `vitc export`")
    if artifact.suffix not in RUNTIMES:
        raise ConfigError(
            f"{artifact.name}: a bundle runs without torch, and a {artifact.suffix} artifact needs it",
            "bundle an .onnx, .xml or .pte artifact (vitc export --target onnx|openvino|executorch)",
        )
    m = Manifest.read(artifact)
    if m.output != "logits":
        raise ConfigError(
            f"{artifact.name} outputs features, not logits", "bundle an artifact exported without --features"
        )
    if not (m.status or "ok").startswith("ok"):
        raise ConfigError(f"{artifact.name} failed its validation ({m.status})", "bundle an artifact marked ok")
    out = Path(out).resolve()
    if out == Path.cwd().resolve() or out == artifact.resolve().parent or out in artifact.resolve().parents:
        raise OutputError(
            f"--out {out} is the current folder or holds the artifact; --force would delete it",
            "pass a new folder for the bundle, e.g. --out bundle/",
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise OutputError(f"--out {out} already holds files", "pass --force to replace it, or another --out")
    missing = [f.name for f in files_of(artifact) if not f.is_file()]
    if m.selftest and not (artifact.parent / m.selftest["file"]).is_file():
        missing.append(m.selftest["file"])  # run.py --selftest needs it on the device
    if missing:
        raise ConfigError(f"{artifact.name} needs {', '.join(missing)} beside it", "re-export the artifact")
    runtime = RUNTIMES[artifact.suffix]
    version = m.versions.get(runtime)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for f in files_of(artifact):
            shutil.copy2(f, tmp / f.name)
        (tmp / "labels.json").write_text(json.dumps(m.classes, indent=1) + "\n")
        info = {
            "artifact": artifact.name,
            "in_graph": m.in_graph,
            "input": m.input or {"preprocess": "python", "dtype": "float32", "layout": "NCHW"},
            "preprocess": m.preprocess.to_json(),
            "target": m.target,
            "precision": m.precision,
            "validated": {k: m.validation.get(k) for k in ("top1_agreement", "max_abs_diff")},
            "data": m.data,
            "selftest": m.selftest,  # run.py --selftest: the reference file and the gate
            "isa": m.isa,
        }
        (tmp / "preprocess.json").write_text(json.dumps(info, indent=1) + "\n")
        shutil.copy2(RUNNER, tmp / "run.py")
        reqs = ["numpy", "Pillow", f"{runtime}=={version}" if version else runtime]
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        (tmp / "README.md").write_text(readme(artifact.name, runtime, info))
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():  # moved aside, deleted only once the new bundle is in place
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            if old.exists():
                old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "artifact": artifact.name, "runtime": runtime, "in_graph": info["in_graph"]}


def readme(name: str, runtime: str, info: dict) -> str:
    pre = info["preprocess"]
    size = "x".join(str(v) for v in pre["input_size"][1:])
    inside = (
        "The model takes uint8 RGB pixels (N, H, W, 3) at "
        f"{size}: casting, normalizing and the NHWC -> NCHW transpose happen inside it."
        if info["in_graph"]
        else f"The model takes a normalized float32 NCHW tensor at {size}; run.py normalizes with numpy."
    )
    lines = [
        f"# {name}",
        "",
        "Classify images on this machine with numpy, Pillow and " + runtime + ":",
        "",
        "```",
        "pip install -r requirements.txt",
        "python run.py photo.jpg",
        "```",
        "",
        f"run.py resizes the shorter side to floor({pre['input_size'][-1]} / {pre.get('crop_pct', 1.0)}) "
        f"({pre.get('interpolation', 'bicubic')}) and centre-crops, as the model was validated. {inside}",
        f"Labels: labels.json. Validated by vitc against the PyTorch model: {json.dumps(info['validated'])}.",
    ]
    if info.get("selftest"):
        validated_on = ((info.get("isa") or {}).get("validated_on") or {}).get("path")
        lines += [
            "",
            "`python run.py --selftest` runs the reference images vitc validated against and says in one line whether "
            f"this device computes the same (exit 1 if not). vitc validated it on a CPU whose int8 path is "
            f"{validated_on}; int8 built for: {(info.get('isa') or {}).get('int8_isa') or 'n/a (not int8)'}.",
        ]
    if runtime == "executorch":
        lines += [
            "",
            "run.py needs the executorch Python package, which brings torch. On a phone, load the .pte with "
            "ExecuTorch's C++, Java (Android) or Swift (iOS) runtime and feed it the same uint8 pixels.",
        ]
    return "\n".join(lines) + "\n"
