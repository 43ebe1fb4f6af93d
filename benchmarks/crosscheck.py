"""Trust checks: the same artifact timed by the runtime's own tool or by the bare API.

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

from .timing import time_calls, time_paired

_MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us)")
_FPS = re.compile(r"Throughput:\s+([0-9.]+)\s*FPS")


def benchmark_app(xml: Path, shape: list[int], threads: int, seconds: float, precision: str | None = "f32",
                  hint: str = "latency") -> dict:
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
        cmd = [exe, "-m", str(xml), "-d", "CPU", "-hint", hint, "-load_config", str(cfg),
               "-shape", "[" + ",".join(map(str, shape)) + "]", "-t", str(max(1, round(seconds)))]
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


def interleaved(fn, target: str, path: Path, x: np.ndarray, threads: int, seconds: float, rounds: int = 5, **timing) -> dict | None:
    """The independent p50 beside vitc's own. ONNX Runtime: bare `InferenceSession.run` on the same
    session and vitc's wrapper are timed call by call in alternation (time_paired), so both see the
    same machine: this isolates what vitc's harness adds. OpenVINO's
    benchmark_app is another process: it and vitc's loop alternate over `rounds` rounds and the
    medians are compared (this VM's speed drifts by tens of percent over seconds)."""
    if target not in ("openvino", "onnx"):
        return None
    try:
        if target == "onnx":
            # the bare loop drives vitc's own session: a second session's idle-spinning thread pool
            # would fight the first for the 2 cores (measured: +95% on the fp32 digits student)
            if not hasattr(fn, "session"):
                from vitc.export import onnx as onnx_target

                fn = onnx_target.load(path, threads)
            feed = {fn.input_name: x}
            sess = fn.session
            ours, bare = time_paired(fn, lambda _: sess.run(None, feed), x, **timing)
            return {"tool": "bare InferenceSession.run loop, alternating call by call with vitc's",
                    "p50_ms": bare.p50_ms, "vitc_p50_ms": ours.p50_ms, "ratio": ours.p50_ms / bare.p50_ms, "rounds": 1,
                    "tool_p50s_ms": [bare.p50_ms], "vitc_p50s_ms": [ours.p50_ms], "runs": ours.runs}
        import openvino as ov

        from vitc.export.openvino import runtime_precision

        precision = runtime_precision(ov.Core().read_model(str(path)))  # as vitc's loader runs it
        tool, ours, res = [], [], {}
        for _ in range(rounds):
            res = benchmark_app(path, list(x.shape), threads, seconds, precision)
            if "p50_ms" not in res:
                return res
            tool.append(res["p50_ms"])
            ours.append(time_calls(fn, x, **timing).p50_ms)
    except Exception as e:  # a broken cross-check is reported on its row, never fatal to the bench
        return {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    t, o = float(np.median(tool)), float(np.median(ours))
    return {**res, "p50_ms": t, "vitc_p50_ms": o, "ratio": o / t, "rounds": rounds, "tool_p50s_ms": tool, "vitc_p50s_ms": ours}
