"""Issue 14's second study: vitc's timing worker vs a bare OpenVINO script vs benchmark_app on one IR,
each a fresh process per round, variants alternating. Separates the worker from the runtime and the VM.

    python -m benchmarks.studies.isolation_tools IR ROUNDS worker,bare,share,copyout,async,nopin,benchmark_app ['[1,3,32,32]']

Variants: worker = vitc.benchmarks.worker with vitc's OpenVINO loader; bare = read, reshape, compile
{LATENCY, 2 threads}, `infer({0: x})`; share = + share_inputs=True; copyout = + copying the output as
vitc's loader does; async = start_async + wait (benchmark_app's way); nopin = ENABLE_CPU_PINNING off;
benchmark_app = `benchmark_app -hint latency -t 1`. Prints each round and per-variant median/min/max.
"""

import json
import subprocess
import sys
import tempfile

import numpy as np

BARE = r"""
import sys, time, numpy as np, openvino as ov
x = np.load(sys.argv[3])
core = ov.Core(); m = core.read_model(sys.argv[1]); m.reshape({m.input(0).get_any_name(): ov.PartialShape(list(x.shape))})
cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2}
if sys.argv[2] == "nopin": cfg["ENABLE_CPU_PINNING"] = False
c = core.compile_model(m, "CPU", cfg)
r = c.create_infer_request()
MODE = sys.argv[2]
def call():
    if MODE == "bare": r.infer({0: x})
    elif MODE == "share": r.infer({0: x}, share_inputs=True)
    elif MODE == "copyout": r.infer({0: x}, share_inputs=True); r.get_output_tensor(0).data.copy()
    elif MODE == "async": r.start_async({0: x}, share_inputs=True); r.wait()
    elif MODE == "nopin": r.infer({0: x}, share_inputs=True)
end = time.perf_counter() + 1.0
while time.perf_counter() < end: call()
s = []; end = time.perf_counter() + 1.0
while time.perf_counter() < end:
    t = time.perf_counter_ns(); call(); s.append(time.perf_counter_ns() - t)
print("P50", np.median(s) / 1e6)
"""


def main():
    IR = sys.argv[1]
    ROUNDS = int(sys.argv[2])
    VARIANTS = sys.argv[3].split(",")
    shape = json.loads(sys.argv[4]) if len(sys.argv) > 4 else [1, 3, 32, 32]
    X = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    TMP = tempfile.mkdtemp(prefix="vitc-tools-")
    XP, BP = f"{TMP}/x.npy", f"{TMP}/bare.py"
    np.save(XP, X)
    open(BP, "w").write(BARE)
    from vitc.benchmarks.crosscheck import benchmark_app
    from vitc.benchmarks.launcher import run_worker

    res = {v: [] for v in VARIANTS}
    for r in range(ROUNDS):
        for v in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            if v == "worker":
                p = run_worker(
                    "vitc.export.openvino:load",
                    IR,
                    2,
                    [[shape[0], XP]],
                    dict(warmup=10, warmup_seconds=1.0, min_runs=50, min_seconds=1.0),
                )["batches"][0]["p50_ms"]
            elif v == "benchmark_app":
                p = benchmark_app(IR, shape, 2, 1.0, None)["p50_ms"]
            else:
                o = subprocess.run([sys.executable, BP, IR, v, XP], capture_output=True, text=True).stdout
                p = float(o.split("P50")[1])
            res[v].append(p)
        print(r, {k: round(v[-1], 3) for k, v in res.items()}, flush=True)
    for k, v in res.items():
        print(
            f"{k:14s} median {np.median(v):.3f}  min {min(v):.3f} max {max(v):.3f}  " + " ".join(f"{x:.3f}" for x in v)
        )


if __name__ == "__main__":
    main()
