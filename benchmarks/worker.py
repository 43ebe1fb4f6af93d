"""One timing run of one artifact in a process of its own: `python -m vitc.benchmarks.worker SPEC.json`.

This is how benchmark_app and optimum-benchmark's process launcher measure: the process loads one
runtime, compiles only the shapes it times (the latency batch first, alone; then each throughput
batch), times them and exits. Nothing else lives in it: no torch beside OpenVINO or ONNX Runtime
(nothing here imports it, and the ONNX / OpenVINO target modules import torch only to export), no
other artifact's runtime, no compiled shapes from the accuracy pass. The parent (vitc.benchmarks.bench)
starts one worker per (artifact, round) and reads the JSON it writes.

SPEC: {"loader": "module:function" -> fn(path, threads) -> callable(np.ndarray), "path", "threads",
"inputs": [[batch, "x.npy"], ...] (latency batch first), "timing": time_calls kwargs (warmup_seconds included),
"out": "res.json", optional "spawned_at": the parent's time.time() at start (cold start), "e2e": {"jpeg", "preprocess",
"in_graph"} (JPEG bytes -> top-5, benchmarks/serving.py)}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import serving
from .timing import time_calls

READY_AT = serving.now()  # interpreter started and this module imported: what comes next is the runtime's

# runtimes whose presence in sys.modules the result reports (what the process really loaded)
RUNTIMES = ("torch", "onnxruntime", "openvino", "executorch", "tensorrt")


def resolve(loader: str):
    mod, _, fn = loader.partition(":")
    return getattr(importlib.import_module(mod), fn)


def checkpoint(path: str, threads: int):
    """Eager PyTorch: a vitc checkpoint dir (fp32, or its recorded torch int8 recipe applied)."""
    from vitc.inspect import runner

    return runner(Path(path), threads)[0]


def bare_onnxruntime(path: str, threads: int):
    """The cross-check for ONNX rows: ONNX Runtime's own API with the session options vitc's loader
    sets (intra-op threads, one inter-op thread), no vitc code between the loop and `run`."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


LATER_WARMUP_S = 0.1  # warm-up floor for the throughput batches, once the process is warm


def time_artifact(fn, inputs: list[tuple[int, np.ndarray]], timing: dict) -> list[dict]:
    """Each batch in order; the first (the latency batch) keeps its per-call samples for pooled tails.
    The timed warm-up is for the process: its first ~0.25 s after load run up to 1.8x slow here
    (results/latency-ab/8-split-pairs). A later batch, in a process already warm, warms its newly
    compiled shape by count (`warmup` calls) and for LATER_WARMUP_S (or warmup_seconds if shorter)."""
    later = {**timing, "warmup_seconds": min(timing["warmup_seconds"], LATER_WARMUP_S)}
    res = []
    for i, (b, x) in enumerate(inputs):
        t = time_calls(fn, x, **(timing if i == 0 else later))
        res.append({"batch": b, **t.to_json(), **({"samples_ms": t.samples_ms.round(5).tolist()} if i == 0 else {})})
    return res


def run(spec: dict) -> dict:
    t0 = time.perf_counter()
    fn = resolve(spec["loader"])(spec["path"], spec["threads"])
    load_s = time.perf_counter() - t0
    inputs = [(int(b), np.load(p)) for b, p in spec["inputs"]]
    t1 = time.perf_counter()
    fn(inputs[0][1])  # the first result: compiles the latency shape where the runtime compiles lazily
    cold = serving.cold_start(spec.get("spawned_at"), READY_AT, load_s, time.perf_counter() - t1)
    batches = time_artifact(fn, inputs, spec["timing"])
    e2e = serving.time_e2e(fn, spec["e2e"], spec["timing"]) if spec.get("e2e") else None
    return {
        "batches": batches,
        "load_s": load_s,
        "cold_start": cold,
        "e2e": e2e,
        "rss": serving.rss_mb(),
        "pid": os.getpid(),
        "torch_imported": "torch" in sys.modules,
        "runtimes": [m for m in RUNTIMES if m in sys.modules],
    }


def main(argv: list[str] | None = None) -> int:
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    res = run(spec)
    tmp = Path(spec["out"] + ".tmp")
    tmp.write_text(json.dumps(res))
    tmp.replace(spec["out"])  # the parent reads only a complete result
    return 0


if __name__ == "__main__":
    sys.exit(main())
