"""`vitc bench --peak`: this CPU's dense matmul peak per precision, measured once and cached.

The floor for a model is GFLOPs per image / peak; efficiency = achieved GFLOP/s / peak. Each
precision is the best of the kernels the runtimes themselves use on x86: fp32 from torch.mm (MKL)
and ONNX Runtime's MatMul (MLAS), bf16 from torch.mm (oneDNN, AVX512-BF16), int8 from ONNX Runtime's
MatMulInteger with uint8 activations x int8 weights (MLAS's VNNI path; torch._int_mm measured ~3x
slower here, so it is only the fallback when onnxruntime is missing). A FLOP is a multiply or an
add (2 per MAC), the same convention as torch's FlopCounterMode.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vitc import checkpoint as ckpt
from vitc.runtime import machine_info

SIZES = (1024, 2048)
# the peak each artifact precision is measured against: CPU runtimes compute fp16 IR/ONNX in fp32
PEAK_FOR = {"fp32": "fp32", "fp16": "fp32", "bf16": "bf16", "int8": "int8"}


def _best_gflops(run, n: int, reps: int) -> float:
    run()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _torch_mm(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return _best_gflops(lambda: torch.mm(a, b), n, reps)


def _ort_mm(kind: str, n: int, reps: int, threads: int) -> float | None:
    """ONNX Runtime (MLAS) matmul: float32 MatMul, or MatMulInteger with uint8 x int8 (VNNI)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    if kind == "fp32":
        op, a_t, w_t, y_t = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT
        w, a = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    else:
        op, a_t, w_t, y_t = "MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
        w, a = rng.integers(-128, 127, (n, n), dtype=np.int8), rng.integers(0, 255, (n, n), dtype=np.uint8)
    g = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])],
        "peak",
        [helper.make_tensor_value_info("A", a_t, [n, n])],
        [helper.make_tensor_value_info("Y", y_t, [n, n])],
        [helper.make_tensor("B", w_t, [n, n], w.tobytes(), raw=True)],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return _best_gflops(lambda: sess.run(None, {"A": a}), n, reps)


def _int8_torch(n: int, reps: int) -> float:
    a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    return _best_gflops(lambda: torch._int_mm(a, b), n, reps)


def measure(threads: int, reps: int = 8, warmup_seconds: float = 2.0) -> dict:
    """The best of the kernels the runtimes use, per precision. Measured on this Zen 5 machine:
    torch.mm fp32 (MKL) reaches ~180 GFLOP/s on 2 threads but ONNX Runtime's MLAS ~380, and
    OpenVINO's fp32 deit_tiny ran at ~275 GFLOP/s, so a torch-only fp32 'peak' gave efficiencies
    over 100%: fp32 is the max of both."""
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # this VM gives ~half speed for the first second or two of load: spin before timing
        a = torch.randn(1024, 1024)
        end = time.perf_counter() + warmup_seconds
        while time.perf_counter() < end:
            torch.mm(a, a)
        got = {
            "fp32": {"torch.mm float32 (MKL)": max(_torch_mm(torch.float32, n, reps) for n in SIZES)},
            "bf16": {"torch.mm bfloat16 (oneDNN)": max(_torch_mm(torch.bfloat16, n, reps) for n in SIZES)},
            "int8": {},
        }
        ort32 = [_ort_mm("fp32", n, reps, threads) for n in SIZES]
        if None not in ort32:
            got["fp32"]["onnxruntime MatMul float32 (MLAS)"] = max(ort32)
        ort8 = [_ort_mm("int8", n, reps, threads) for n in SIZES]
        if None in ort8:
            got["int8"]["torch._int_mm (onnxruntime missing)"] = max(_int8_torch(n, reps) for n in SIZES)
        else:
            got["int8"]["onnxruntime MatMulInteger u8 x s8 (MLAS, VNNI)"] = max(ort8)
    finally:
        torch.set_num_threads(prev)
    best = {k: max(v.items(), key=lambda kv: kv[1]) for k, v in got.items()}
    return {
        "threads": threads,
        "gflops": {k: v[1] for k, v in best.items()},
        "method": {
            **{k: v[0] for k, v in best.items()},
            "sizes": list(SIZES),
            "all": got,
            "statistic": f"best of {reps} (square matmuls, 2 FLOPs per MAC)",
        },
        "machine": machine_info(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def cache_path(threads: int) -> Path:
    info = machine_info()
    cid = info.get("cpu_id") or {}
    key = hashlib.sha256(
        f"{info['cpu']}|{cid.get('family')}/{cid.get('model')}/{cid.get('stepping')}|{info['isa']}|{threads}".encode()
    ).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vitc"
    return base / f"peak-{key}-t{threads}.json"


def peaks(threads: int, remeasure: bool = False) -> dict:
    """Cached peaks for this CPU and thread count; measured (a few seconds) when absent or asked."""
    p = cache_path(threads)
    if not remeasure and p.is_file():
        try:
            got = json.loads(p.read_text())
            if (
                got.get("threads") == threads
                and set(got.get("gflops", {})) >= {"fp32", "bf16", "int8"}
                and "all" in got.get("method", {})
            ):  # caches from before fp32 took the max over kernels are stale
                return {**got, "cached": str(p)}
        except (OSError, ValueError):
            pass  # a broken cache is re-measured, never trusted
    got = measure(threads)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(p, got)
    except OSError:
        pass  # read-only home: the peaks still go into bench.json
    return {**got, "cached": None}
