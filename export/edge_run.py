"""Classify images with a vitc bundle: numpy, Pillow and the artifact's runtime only (no torch, no vitc).

    python run.py photo.jpg [more.jpg ...] [--top 5] [--threads N]
    python run.py --selftest        # does this device compute what vitc validated? (exit 1 if not)

`vitc bundle` copies this file into the bundle as run.py, beside the artifact, labels.json and preprocess.json;
`vitc predict` on an .onnx or .xml runs the same functions. The pre-processing is timm's eval transform (the one
the model was validated with), written out because the device has neither timm nor torchvision: resize the
shorter side to floor(size / crop_pct) with the model's interpolation, centre-crop to size. An artifact exported
with its pre-processing in the graph takes those uint8 RGB pixels (N, H, W, 3) and casts, normalizes and
transposes inside; an artifact without takes the normalized float32 NCHW tensor this file computes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SUFFIXES = (".onnx", ".xml", ".pte")
RESAMPLE = {
    "bicubic": Image.BICUBIC,
    "bilinear": Image.BILINEAR,
    "nearest": Image.NEAREST,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}


# int8 dot-product paths (`int8_isa`). On x86 without VNNI, int8 GEMMs multiply u8 x s8 and add neighbouring
# products with VPMADDUBSW, which saturates at int16 (2 x 255 x 127 = 64,770 > 32,767): an int8 model that uses the
# full 8-bit range then computes other answers there than on a VNNI/AMX CPU. NEON widens to 16 bits per product.
SATURATING = ("avx512", "avx2", "sse")


# CPUID (numpy's name) vs the OS's name for flags both report: when any differs, this process runs on another CPU
# than the OS shows (an emulator), and the OS-only flags (AVX-VNNI, AMX) are not this process's either
AGREE = (
    ("avx2", "avx2"),
    ("avx512f", "avx512f"),
    ("avx512bw", "avx512bw"),
    ("avx512vnni", "avx512_vnni"),
    ("gfni", "gfni"),
    ("vaes", "vaes"),
    ("vpclmulqdq", "vpclmulqdq"),
    ("f16c", "f16c"),
)


def cpu_features() -> frozenset[str]:
    """The CPU features this process sees, lower case. numpy's CPUID probe is the source: it reads what the runtimes'
    own dispatchers read (under an emulator, the emulated CPU; /proc/cpuinfo shows the host there). numpy does not
    probe AVX-VNNI or AMX, so those come from the OS's flags, and only while the OS agrees with CPUID on the rest.
    numpy's probe is a private table: without it, the OS's flags alone."""
    os_flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    os_flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    probed = None
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            probed = __import__(mod, fromlist=["__cpu_features__"]).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    if not isinstance(probed, dict):
        return frozenset(f.replace("avx512_vnni", "avx512vnni") for f in os_flags)
    seen = {k.lower() for k, v in probed.items() if v}
    if all((a in seen) == (b in os_flags) for a, b in AGREE):
        seen |= os_flags & {"avx_vnni", "amx_int8"}
    return frozenset(seen)


def int8_isa(features: frozenset[str] | None = None) -> dict:
    """The int8 dot-product path of this CPU: amx | avx512-vnni | avx-vnni | avx512 | avx2 | sse | neon-dotprod |
    neon | unknown, and whether 8-bit products saturate there (SATURATING)."""
    f = cpu_features() if features is None else features
    order = [
        ("amx_int8", "amx"),
        ("avx512vnni", "avx512-vnni"),
        ("avx_vnni", "avx-vnni"),
        ("avx512f", "avx512"),
        ("avx2", "avx2"),
        ("ssse3", "sse"),
        ("asimddp", "neon-dotprod"),
        ("asimd", "neon"),
        ("neon", "neon"),
    ]
    path = next((name for flag, name in order if flag in f), "unknown")
    return {"path": path, "saturates": path in SATURATING, "machine": platform.machine()}


class SelftestUnavailable(ValueError):
    """The artifact has no self-test to run here (no reference images, or their file is missing): exit 2, not 1."""


class ImageUnreadable(ValueError):
    """An image file this runner cannot decode, or a pre-processing it does not implement."""


def decode(source) -> Image.Image:
    """A path or encoded bytes -> upright 8-bit RGB (the EXIF rotation applied, as vitc reads images)."""
    import io

    with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # as vitc.data.to_rgb: rescale, do not clip
            a = np.asarray(im, dtype=np.float64)
            hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
            im = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if im.mode == "P":
            im = im.convert("RGBA")
        return im.convert("RGB") if im.mode != "RGB" else im.copy()


def resize_crop(img: Image.Image, pre: dict) -> np.ndarray:
    """torchvision's Resize(shorter side) + CenterCrop on a PIL image, as timm's eval transform runs them
    -> uint8 (H, W, 3)."""
    h, w = int(pre["input_size"][-2]), int(pre["input_size"][-1])
    interp = pre.get("interpolation", "bicubic")
    if interp not in RESAMPLE:
        raise ImageUnreadable(f"interpolation {interp!r} is not one this runner implements ({', '.join(RESAMPLE)})")
    mode = pre.get("crop_mode", "center")
    if mode == "squash":  # timm: resize both sides to size / crop_pct, then the centre crop
        scale = [math.floor(v / float(pre.get("crop_pct", 1.0))) for v in (h, w)]
        img = img.resize((scale[1], scale[0]), RESAMPLE[interp])
    elif mode != "center":
        raise ImageUnreadable(f"crop_mode {mode!r} is not one this runner implements (center, squash)")
    scale = math.floor(min(h, w) / float(pre.get("crop_pct", 1.0)))
    iw, ih = img.size
    short, long = (iw, ih) if iw <= ih else (ih, iw)
    if mode == "center" and short != scale:
        new_long = int(scale * long / short)
        size = (scale, new_long) if iw <= ih else (new_long, scale)
        img = img.resize(size, RESAMPLE[interp])
    iw, ih = img.size
    top, left = int(round((ih - h) / 2.0)), int(round((iw - w) / 2.0))
    return np.asarray(img.crop((left, top, left + w, top + h)), dtype=np.uint8)


def normalize(pixels: np.ndarray, pre: dict) -> np.ndarray:
    """uint8 (N, H, W, 3) -> the float32 NCHW tensor an artifact without in-graph pre-processing takes."""
    mean = np.asarray(pre["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(pre["std"], np.float32).reshape(1, 3, 1, 1)
    return ((pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)) - mean) / std


def _runtime(path: Path, threads: int | None):
    """-> fn(x) -> logits for the artifact's own runtime."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        so = ort.SessionOptions()
        # as vitc.export.onnx.session_options (this runner imports nothing from vitc): an explicit count, from the
        # CPU affinity; left at 0, ORT pins a thread per physical core, ignoring taskset
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # no affinity call on macOS/Windows
            cores = os.cpu_count() or 1
        so.intra_op_num_threads, so.inter_op_num_threads = threads or cores, 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    if path.suffix == ".xml":
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        cfg = {"PERFORMANCE_HINT": "LATENCY", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        key = ["vitc", "inference_precision"]  # what vitc validated the IR with (f32 for an fp32 IR), as its loader
        if model.has_rt_info(key) and model.get_rt_info(key).astype(str) != "default":
            cfg["INFERENCE_PRECISION_HINT"] = model.get_rt_info(key).astype(str)
        compiled = core.compile_model(model, "CPU", cfg)
        return lambda x: compiled(x)[0]
    if path.suffix == ".pte":  # the executorch package (it brings torch); a phone runs the .pte from C++/Java/Swift
        import torch
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(str(path)).load_method("forward")
        return lambda x: method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0].numpy()
    raise SystemExit(f"{path.name}: not an artifact this runner knows ({', '.join(SUFFIXES)})")


class Bundle:
    """The artifact of a bundle folder (or a vitc artifact with its manifest) and how to feed it."""

    def __init__(
        self,
        artifact: Path,
        pre: dict,
        labels: list[str],
        in_graph: bool,
        threads: int | None = None,
        selftest: dict | None = None,
    ):
        self.artifact, self.pre, self.labels, self.in_graph = artifact, pre, labels, in_graph
        self.selftest_spec = selftest  # the manifest's `selftest`: file of reference images and the gate
        t0 = time.perf_counter()
        self.fn = _runtime(artifact, threads)
        self.load_s = time.perf_counter() - t0

    @classmethod
    def open(cls, folder: Path, threads: int | None = None) -> "Bundle":
        cfg = json.loads((folder / "preprocess.json").read_text())
        labels = json.loads((folder / "labels.json").read_text())
        return cls(folder / cfg["artifact"], cfg["preprocess"], labels, cfg["in_graph"], threads, cfg.get("selftest"))

    def inputs(self, images: list, on_error=SystemExit) -> np.ndarray:
        pixels = []
        for im in images:
            try:
                img = decode(im)
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:  # not an image
                where = im if not isinstance(im, (bytes, bytearray)) else "an image"
                raise on_error(f"{where} is not a readable image ({type(e).__name__}: {e})") from None
            try:
                pixels.append(resize_crop(img, self.pre))
            except ImageUnreadable as e:  # the model's pre-processing, not the image
                raise on_error(str(e)) from None
        pixels = np.stack(pixels)
        return pixels if self.in_graph else normalize(pixels, self.pre)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(x), dtype=np.float32)

    def top(self, images: list, k: int = 5, on_error=SystemExit) -> list[list[tuple[str, float]]]:
        z = self.logits(self.inputs(images, on_error))
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        out = []
        for row in p:
            idx = np.argsort(-row)[: min(k, len(row))]
            out.append([(self.labels[i], float(row[i])) for i in idx])
        return out

    def selftest(self) -> dict:
        return selftest(self.logits, self.artifact, self.selftest_spec, self.pre, self.in_graph)


def device_fn(path: Path, load, threads: int | None = None):
    """The function a device runs for this artifact: this runner for .onnx/.xml/.pte (OpenVINO compiled with its
    dynamic batch, as here), else `load` (vitc's loader for .ptl, .engine). The exporter's self-test logits and
    `vitc predict --selftest` both go through it, so they compare like with like."""
    return _runtime(path, threads) if Path(path).suffix in SUFFIXES else load(path, threads)


def run_batches(fn, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """fn over x in batches of 16 (the self-test's batches, on the exporting host and on the device alike)."""
    return np.concatenate(
        [np.asarray(fn(np.ascontiguousarray(x[i : i + batch])), np.float32) for i in range(0, len(x), batch)]
    )


def selftest(fn, artifact: Path, spec: dict | None, pre: dict, in_graph: bool) -> dict:
    """Run the reference images the exporter validated on (`<artifact>.selftest.npz`) through fn and judge the
    outputs by the exporter's own gate: max |logit - PyTorch fp32| <= atol, and top-1 agreement with PyTorch fp32 >=
    the gate's minimum (or, on these few images, what the artifact reached on the exporting machine, if lower). And
    drift, max |logit - the exporting machine's logits from this artifact|, <= drift_atol: a device that computes the
    model differently fails even inside the accuracy gate."""
    if not spec:
        raise SelftestUnavailable(f"{artifact.name} carries no self-test images: re-export it with vitc export")
    ref_file = artifact.parent / spec["file"]
    if not ref_file.is_file():
        raise SelftestUnavailable(f"self-test file {ref_file.name} is missing beside {artifact.name}: copy it there")
    with np.load(ref_file, allow_pickle=False) as z:
        pixels, reference, validated = z["pixels"], z["reference"], z["validated"]
    x = pixels if in_graph else normalize(pixels, pre)
    got = run_batches(fn, x)
    agree = float((got.argmax(1) == reference.argmax(1)).mean())
    built = float((validated.argmax(1) == reference.argmax(1)).mean())
    max_diff = float(np.abs(got.astype(np.float64) - reference).max())
    drift = float(np.abs(got.astype(np.float64) - validated).max())
    need = min(float(spec["min_agreement"]), built)
    ok = max_diff <= float(spec["atol"]) and agree >= need and drift <= float(spec["drift_atol"])
    return {
        "passed": bool(ok),
        "images": int(len(pixels)),
        "agreement": agree,
        "need_agreement": need,
        "max_abs_diff": max_diff,
        "atol": float(spec["atol"]),
        "drift": drift,
        "drift_atol": float(spec["drift_atol"]),
        "isa": int8_isa()["path"],
        "validated_isa": (spec.get("isa") or {}).get("path"),
    }


def selftest_line(name: str, r: dict) -> str:
    """One line: does this device compute what vitc validated?"""
    verdict = "PASS" if r["passed"] else "FAIL"
    return (
        f"selftest {verdict}: {name} on {r['images']} reference images, top-1 agreement with PyTorch "
        f"{100 * r['agreement']:.1f}% (need {100 * r['need_agreement']:.1f}%), max|diff| {r['max_abs_diff']:.3g} "
        f"(atol {r['atol']:g}), drift from the validated run {r['drift']:.3g} (limit {r['drift_atol']:g}); "
        f"int8 path here {r['isa']}, validated on {r['validated_isa']}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Classify images with this bundle's model.")
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--selftest", action="store_true", help="check this device computes what vitc validated")
    a = ap.parse_args(argv)
    if a.selftest:
        b = Bundle.open(Path(__file__).resolve().parent, a.threads)
        try:
            r = b.selftest()
        except SelftestUnavailable as e:
            print(f"selftest not run: {e}", file=sys.stderr)
            return 2
        print(selftest_line(b.artifact.name, r))
        return 0 if r["passed"] else 1
    if not a.images:
        ap.error("give image files, or --selftest")
    missing = [str(p) for p in a.images if not p.is_file()]
    if missing:
        raise SystemExit(f"no such image: {', '.join(missing)}")
    b = Bundle.open(Path(__file__).resolve().parent, a.threads)
    for path, top in zip(a.images, b.top(list(a.images), a.top)):
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in top))


if __name__ == "__main__":
    sys.exit(main())
