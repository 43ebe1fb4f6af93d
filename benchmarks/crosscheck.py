"""Trust checks: the same artifact timed by the runtime's own tool or by the bare API, in the same
interleaved rounds as vitc's own timing (vitc.benchmarks.bench), each in a process of its own.

OpenVINO: `benchmark_app -hint latency` (ships with the openvino wheel) on the same IR, threads and
inference precision, median latency parsed from its report. ONNX Runtime: a bare
`InferenceSession.run` loop with the same session options, no vitc wrapper in between. A row's
p50 far from these means vitc's harness, not the model, is being measured.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us)")
_FPS = re.compile(r"Throughput:\s+([0-9.]+)\s*FPS")


def benchmark_app(
    xml: Path, shape: list[int], threads: int, seconds: float, precision: str | None = "f32", hint: str = "latency"
) -> dict:
    """One benchmark_app run; precision None (or "default") leaves the CPU plugin's own default."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return {"tool": "benchmark_app", "error": "benchmark_app not found (pip install 'vitc[openvino]')"}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.json"
        # -hint latency forbids -nthreads on its command line; the thread count goes in a config file
        conf = {"INFERENCE_NUM_THREADS": str(threads)}
        if precision and precision != "default":
            conf["INFERENCE_PRECISION_HINT"] = precision
        cfg.write_text(json.dumps({"CPU": conf}))
        cmd = [
            exe,
            "-m",
            str(xml),
            "-d",
            "CPU",
            "-hint",
            hint,
            "-load_config",
            str(cfg),
            "-shape",
            "[" + ",".join(map(str, shape)) + "]",
            "-t",
            str(max(1, round(seconds))),
        ]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + seconds)
        except subprocess.TimeoutExpired:
            return {"tool": "benchmark_app", "error": "timed out", "command": " ".join(cmd)}
    m, fps = _MEDIAN.search(p.stdout), _FPS.search(p.stdout)
    if p.returncode != 0 or not (m or (hint == "throughput" and fps)):
        tail = (p.stdout + p.stderr).strip().splitlines()[-1:] or ["no output"]
        return {"tool": "benchmark_app", "error": f"exit {p.returncode}: {tail[0][:200]}", "command": " ".join(cmd)}
    shown = ["benchmark_app"] + cmd[1:]
    shown[shown.index("-load_config") + 1] = "<{CPU: " + ", ".join(f"{k}={v}" for k, v in conf.items()) + "}>"
    res = {"tool": f"benchmark_app -hint {hint}", "command": " ".join(shown)}
    if fps:
        res["fps"] = float(fps.group(1))  # inferences (of the whole batch) per second
    if m:  # the THROUGHPUT hint's median is per request with several in flight: not a latency
        res["p50_ms"] = float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)
    return res


TOOLS = {"openvino": "benchmark_app -hint latency", "onnx": "bare InferenceSession.run loop"}


def tool_round(target: str, path: Path, inputs: list[list], threads: int, seconds: float, timing: dict) -> dict | None:
    """One round of the independent tool on the latency batch, in its own process like vitc's worker,
    so the bench can interleave it with vitc's rounds and compare medians. OpenVINO: benchmark_app
    with the precision vitc's loader runs the IR at. ONNX Runtime: ONNX Runtime's own API in a worker
    (vitc.benchmarks.worker.bare_onnxruntime), no vitc code in the loop. None: no tool for the target."""
    if target not in TOOLS:
        return None
    try:
        if target == "openvino":
            import openvino as ov

            from vitc.export.openvino import runtime_precision

            precision = runtime_precision(ov.Core().read_model(str(path)))  # as vitc's loader runs it
            return benchmark_app(path, list(np.load(inputs[0][1], mmap_mode="r").shape), threads, seconds, precision)
        from .launcher import run_worker

        res = run_worker("vitc.benchmarks.worker:bare_onnxruntime", str(path), threads, inputs[:1], timing)
        b = res["batches"][0]
        return {
            "tool": TOOLS["onnx"] + " (own process, ONNX Runtime's API only)",
            "p50_ms": b["p50_ms"],
            "runs": b["runs"],
            "torch_imported": res["torch_imported"],
        }
    except Exception as e:  # a broken cross-check is reported on its row, never fatal to the bench
        return {"tool": TOOLS[target], "error": f"{type(e).__name__}: {str(e)[:200]}"}
