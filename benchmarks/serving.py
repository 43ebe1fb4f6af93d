"""What an edge user feels, measured inside the isolated timing worker (benchmarks/worker.py):

- end-to-end latency: encoded JPEG bytes -> top-5 labels (Pillow decode, resize and crop as the bundle's run.py
  does them, normalize in numpy unless the artifact does it in its graph, inference, softmax top-k);
- cold start: process start -> first result, split into interpreter start + imports, load/compile, first call;
- peak RSS of the worker process (VmHWM), and its RSS at the end of serving.

No torch here: the worker must hold nothing but the artifact's runtime. Like optimum-benchmark's latency and
memory trackers, but inside vitc's own one-artifact-per-process worker.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from vitc.export.edge_run import decode, normalize, resize_crop

from .timing import time_calls

CAMERA = (640, 480)  # the e2e input: a val image upscaled to a small camera frame, then JPEG-encoded
JPEG_QUALITY = 90


def camera_jpeg(pixels: np.ndarray, out: Path) -> Path:
    """A val image (uint8 HWC) as the JPEG a camera would hand over: 640x480, quality 90."""
    from PIL import Image

    img = Image.fromarray(pixels).resize(CAMERA, Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    out.write_bytes(buf.getvalue())
    return out


def pipeline_fn(fn, pre: dict, in_graph: bool, topk: int = 5):
    """-> (bytes -> top-k indices, bytes -> model input): the whole serving path, and its pre-processing alone."""

    def prepare(data: bytes) -> np.ndarray:
        px = resize_crop(decode(data), pre)[None]
        return px if in_graph else normalize(px, pre)

    def serve(data: bytes) -> np.ndarray:
        z = np.asarray(fn(prepare(data)), dtype=np.float32)[0]
        return np.argsort(-z)[:topk]

    return serve, prepare


def time_e2e(fn, spec: dict, timing: dict) -> dict:
    """p50 of the whole path and of its pre-processing alone, on one JPEG's bytes."""
    data = Path(spec["jpeg"]).read_bytes()
    serve, prepare = pipeline_fn(fn, spec["preprocess"], spec["in_graph"])
    whole = time_calls(serve, data, **timing)
    pre = time_calls(prepare, data, **{**timing, "warmup_seconds": min(0.1, timing["warmup_seconds"])})
    return {
        "p50_ms": whole.p50_ms,
        "p90_ms": whole.p90_ms,
        "preprocess_p50_ms": pre.p50_ms,
        "preprocess": "in-graph" if spec["in_graph"] else "python",
        "jpeg_bytes": len(data),
        "jpeg_size": list(CAMERA),
    }


def rss_mb() -> dict:
    """Peak resident set of this process so far (VmHWM) and its current one (VmRSS), from /proc/self/status.
    Not getrusage's ru_maxrss: after fork + exec it starts from the parent's peak (measured: every worker read the
    bench process's 1.2 GB)."""
    out = {"peak_mb": None, "end_mb": None}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = {"VmHWM:": "peak_mb", "VmRSS:": "end_mb"}.get(line.split(":")[0] + ":")
            if key:
                out[key] = round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return out


def cold_start(spawned_at: float | None, ready_at: float, load_s: float, first_call_s: float) -> dict:
    """Process start -> first result. spawned_at: the parent's time.time() right before it started the process."""
    out = {"load_s": load_s, "first_call_s": first_call_s}
    if spawned_at is not None:
        out["start_s"] = ready_at - spawned_at  # interpreter start and the worker's imports
        out["total_s"] = out["start_s"] + load_s + first_call_s
    return out


def now() -> float:
    return time.time()
