"""Classify images with a vitc bundle: numpy, Pillow and the artifact's runtime only (no torch, no vitc).

    python run.py photo.jpg [more.jpg ...] [--top 5] [--threads N]

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

    def __init__(self, artifact: Path, pre: dict, labels: list[str], in_graph: bool, threads: int | None = None):
        self.artifact, self.pre, self.labels, self.in_graph = artifact, pre, labels, in_graph
        t0 = time.perf_counter()
        self.fn = _runtime(artifact, threads)
        self.load_s = time.perf_counter() - t0

    @classmethod
    def open(cls, folder: Path, threads: int | None = None) -> "Bundle":
        cfg = json.loads((folder / "preprocess.json").read_text())
        labels = json.loads((folder / "labels.json").read_text())
        return cls(folder / cfg["artifact"], cfg["preprocess"], labels, cfg["in_graph"], threads)

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Classify images with this bundle's model.")
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    missing = [str(p) for p in a.images if not p.is_file()]
    if missing:
        raise SystemExit(f"no such image: {', '.join(missing)}")
    b = Bundle.open(Path(__file__).resolve().parent, a.threads)
    for path, top in zip(a.images, b.top(list(a.images), a.top)):
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in top))


if __name__ == "__main__":
    sys.exit(main())
