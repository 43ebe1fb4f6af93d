"""Issue 14's machine probe: what this VM's slow spells look like from outside any vitc code.

benchmark_app (1 s, -hint latency, the given threads) runs the given IRs in turn, N times, each in
its own process, while /proc/stat is sampled every 0.5 s: per run, its median latency and what the
two vCPUs did meanwhile (busy %, steal ticks). A spell shows as a run ~1.9x slower than its IR's
fastest; whether the guest saw idle time or steal during it tells whether the guest could have
detected it.

    python -m benchmarks.studies.spells IR.xml [IR2.xml ...] --runs 10 --threads 2,1 \
        --out results/latency-ab/8-split-pairs/spells.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vitc.benchmarks.crosscheck import benchmark_app


def cpu_sample() -> dict:
    """Per-CPU ticks from /proc/stat: busy (user+nice+system+irq+softirq), idle (idle+iowait), steal."""
    out = {}
    for ln in open("/proc/stat"):
        f = ln.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            v = list(map(int, f[1:9]))
            out[f[0]] = (v[0] + v[1] + v[2] + v[5] + v[6], v[3] + v[4], v[7])
    return out


def cpu_between(c0: dict, c1: dict) -> dict:
    """What the vCPUs did between two cpu_sample() samples: busy % per CPU, steal ticks in all."""
    d = {c: tuple(b - a for a, b in zip(c0[c], c1[c])) for c in c0}
    return {
        "busy_pct": {c: round(100 * v[0] / max(1, v[0] + v[1])) for c, v in d.items()},
        "steal_ticks": sum(v[2] for v in d.values()),
    }


def summarize(p50s: list[float]) -> dict:
    """Runs of one kind: median, min, max, and the slow ones (over 1.25x the fastest: a spell)."""
    v = np.asarray(p50s)
    return {
        "median_ms": float(np.median(v)),
        "min_ms": float(v.min()),
        "max_ms": float(v.max()),
        "max_over_min": float(v.max() / v.min()),
        "slow_runs": int((v > 1.25 * v.min()).sum()),
        "runs": len(v),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("irs", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", default="2", help="comma-separated thread counts, alternated within each run")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")]
    hw = _hw(a.irs[0])  # the first IR's static height and width (a by-hand IR may leave them dynamic)
    rows = []
    for i in range(a.runs):
        for ir in a.irs:
            for t in threads:
                shape = [1, 3, *hw]
                c0, t0 = cpu_sample(), time.time()
                r = benchmark_app(ir, shape, t, 1.0, precision=None)
                rows.append(
                    {
                        "run": i + 1,
                        "ir": ir.name,
                        "threads": t,
                        "p50_ms": r.get("p50_ms"),
                        "error": r.get("error"),
                        "start": time.strftime("%H:%M:%S", time.gmtime(t0)),
                        "seconds": round(time.time() - t0, 2),
                        **cpu_between(c0, cpu_sample()),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for ir in a.irs:
        for t in threads:
            summary[f"{ir.name} @{t}"] = summarize(
                [r["p50_ms"] for r in rows if r["ir"] == ir.name and r["threads"] == t and r["p50_ms"]]
            )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


def _hw(ir: Path) -> list[int]:
    """Height and width from the IR's input (its batch may be dynamic)."""
    import openvino as ov

    ps = ov.Core().read_model(str(ir)).input(0).get_partial_shape()
    return [ps[2].get_length(), ps[3].get_length()]


if __name__ == "__main__":
    raise SystemExit(main())
