"""Issue 14's thread-count probe: does this VM's noise depend on how many threads a run uses?

Each given artifact is timed by the bench's own worker (vitc.benchmarks.worker: a fresh process,
warm-up 0.5 s, then >= 0.5 s of batch-1 calls on a real val image) with each thread count in turn,
N times, so runs with 1 and 2 threads alternate seconds apart and see the same machine. Per
(artifact, threads): median, min, max of the runs' p50s and the runs slower than 1.25x the
fastest (a slow spell).

    python -m benchmarks.studies.one_thread runs/digits/export/student-openvino-fp32.xml ... \
        --runs 8 --threads 2,1 --out results/latency-ab/10-one-thread/study.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.studies.spells import cpu_between, cpu_sample, summarize
from vitc.benchmarks import launcher
from vitc.benchmarks.bench import discover


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--data", default="digits", help="the dataset whose first val image is timed")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    from vitc.data import eval_tensors, load_source

    items = discover(a.artifacts)
    threads = [int(t) for t in a.threads.split(",")]
    timing = {"warmup": 10, "warmup_seconds": 0.5, "min_runs": 20, "min_seconds": a.seconds}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs, first = {}, {}
        for it in items:
            pre = it.manifest["preprocess"]
            key = json.dumps(pre, sort_keys=True)
            if key not in first:  # the first val image, pre-processed once per distinct preprocess
                first[key] = eval_tensors(load_source(a.data, pre["input_size"][-1]).val, pre)[0].numpy()[:1]
            inputs[it.name] = launcher.write_inputs(first[key], (1,), Path(tmp), it.name)
        for i in range(a.runs):
            for it in items:
                for t in threads:
                    c0, t0 = cpu_sample(), time.time()
                    r = launcher.run_worker(
                        launcher.loader_for(it.kind, it.target), str(it.path), t, inputs[it.name], timing
                    )
                    rows.append(
                        {
                            "run": i + 1,
                            "artifact": it.name,
                            "threads": t,
                            "p50_ms": r["batches"][0]["p50_ms"],
                            "start": time.strftime("%H:%M:%S", time.gmtime(t0)),
                            **cpu_between(c0, cpu_sample()),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    summary = {
        f"{it.name} @{t}": summarize([r["p50_ms"] for r in rows if r["artifact"] == it.name and r["threads"] == t])
        for it in items
        for t in threads
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"timing": timing, "runs": rows, "summary": summary}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
