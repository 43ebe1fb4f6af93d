"""Issue 14's OpenVINO call-path study: what vitc's `infer` call adds over the bare request.

Why the OpenVINO rows of the digits bench read 2-9% above benchmark_app even in paired rounds. One
process per IR and batch (compiled once at that static shape, {LATENCY, threads, the IR's runtime
precision}); three ways to run one inference, each timed call by call in alternation with the bare
request (`time_paired`), so both halves of a pair see the same machine:

- share:  `req.infer({0: x}, share_inputs=True)` (vitc's loader until this study)
- copy:   `req.infer({0: x}, share_inputs=False)`
- into:   `req.get_input_tensor(0).data[...] = x; req.infer()` (vitc's loader now)
- bare:   input tensor set once, `req.infer()` (what benchmark_app times)

and, on the bare calls, perf_counter around `infer()` against `request.latency` (OpenVINO's own
clock, what benchmark_app's Median is over).

    python -m benchmarks.studies.ov_input_tensor IR.xml [IR2.xml ...] --batch 1,16 --rounds 3 \
        --out results/latency-ab/9-ov-input-tensor/study.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PATHS = ("share", "copy", "into")


def one(xml: str, batch: int, threads: int, rounds: int, seconds: float) -> dict:
    """In this process: compile the IR at [batch, C, H, W] and time each path against bare."""
    import openvino as ov

    from vitc.benchmarks.timing import time_paired
    from vitc.export.openvino import compile_config, runtime_precision

    core = ov.Core()
    m = core.read_model(xml)
    shape = [batch, *list(m.input(0).get_partial_shape().get_min_shape())[1:]]
    m.reshape({m.input(0).get_any_name(): ov.PartialShape(shape)})
    cm = core.compile_model(m, "CPU", compile_config("LATENCY", threads, runtime_precision(core.read_model(xml))))
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    reqs = {k: cm.create_infer_request() for k in (*PATHS, "bare")}
    reqs["bare"].set_input_tensor(ov.Tensor(x, shared_memory=True))
    call = {
        "share": lambda x: reqs["share"].infer({0: x}, share_inputs=True),
        "copy": lambda x: reqs["copy"].infer({0: x}, share_inputs=False),
        "into": lambda x: (reqs["into"].get_input_tensor(0).data.__setitem__(Ellipsis, x), reqs["into"].infer()),
    }
    out = {k: [] for k in PATHS}
    for _ in range(rounds):
        for k in PATHS:
            a, b = time_paired(call[k], lambda x: reqs["bare"].infer(), x, warmup_seconds=0.3, min_seconds=seconds)
            out[k].append({"p50_ms": a.p50_ms, "bare_p50_ms": b.p50_ms, "ratio": a.p50_ms / b.p50_ms})
    # benchmark_app's "Median" is over `request.latency`, the time OpenVINO's C++ measures inside infer();
    # vitc (like any Python caller) sees the whole call: both clocks on the same bare calls
    wall, own = [], []
    for _ in range(max(200, int(seconds * 1000 / max(0.05, out["into"][-1]["bare_p50_ms"])))):
        t0 = time.perf_counter_ns()
        reqs["bare"].infer()
        wall.append((time.perf_counter_ns() - t0) / 1e6)
        own.append(reqs["bare"].latency)
    clocks = {
        "perf_counter_p50_ms": float(np.median(wall)),
        "request_latency_p50_ms": float(np.median(own)),
        "ratio": float(np.median(wall) / np.median(own)),
    }
    return {
        "ir": xml,
        "batch": batch,
        "threads": threads,
        "median_ratio": {k: float(np.median([r["ratio"] for r in v])) for k, v in out.items()},
        "rounds": out,
        "bare_clocks": clocks,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("irs", nargs="+")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child: one IR and batch
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.irs[0], int(a.batch), a.threads, a.rounds, a.seconds)))
        return 0
    res = []
    for xml in a.irs:
        for b in map(int, a.batch.split(",")):  # each (IR, batch) in a fresh process, as the bench's workers
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    __spec__.name,
                    xml,
                    "--one",
                    "--batch",
                    str(b),
                    "--threads",
                    str(a.threads),
                    "--rounds",
                    str(a.rounds),
                    "--seconds",
                    str(a.seconds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(
                f"{Path(xml).name} b{b}: "
                + ", ".join(f"{k} {v:.3f}x bare" for k, v in r["median_ratio"].items())
                + f"; bare, Python clock / request.latency {r['bare_clocks']['ratio']:.3f}x",
                flush=True,
            )
            res.append(r)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
