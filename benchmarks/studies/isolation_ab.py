"""Issue 14's study: which part of the old in-process bench made OpenVINO rows run in a 2x slow mode.

Each variant below is a fresh process that builds one piece of the old bench's process state, then
times the same IR at batch 1 in `--inner` rounds exactly as the old bench did (time_calls, with the
throughput batch timed between rounds where the variant says so). Variants run in alternating
order over `--rounds` outer rounds, so this VM's drift lands on all of them alike.

    python -m benchmarks.studies.isolation_ab runs/digits/quantize/student-openvino-int8.xml \
        --others runs/digits/export --checkpoint runs/digits/distill --out results/latency-ab/7-isolation

Variants (each adds one thing to `alone`):
  alone           only OpenVINO, only the batch-1 shape compiled (the new worker)
  b16-between     + the batch-16 shape compiled and timed between the batch-1 rounds (old round order)
  eval-shapes     + the accuracy pass's shapes compiled first (batch 32 and the remainder)
  torch-used      + torch imported and the fp32 reference logits computed first (as the parent did)
  all-loaded      + every other artifact in --others loaded and run once, kept alive
  old-bench       all of the above: vitc bench's old in-process process state

`--bench-ab N` then runs the whole `vitc bench` on the IR and the --baseline IR N times each way,
alternating --no-isolate (old) and --isolate (new), and tabulates both rows' p50s and spreads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("alone", "b16-between", "eval-shapes", "torch-used", "all-loaded", "old-bench")
HAS = {
    "alone": set(),
    "b16-between": {"b16"},
    "eval-shapes": {"eval"},
    "torch-used": {"torch"},
    "all-loaded": {"others"},
    "old-bench": {"b16", "eval", "torch", "others"},
}


def child(a) -> dict:
    from vitc.benchmarks.timing import time_calls

    has = HAS[a.variant]
    X = np.load(a.x)
    if "torch" in has:  # the old parent: torch loaded, reference logits computed on the val split
        import torch

        from vitc.models import load_checkpoint_model

        torch.set_num_threads(a.threads)
        model, _ = load_checkpoint_model(a.checkpoint)
        with torch.no_grad():
            model.eval()(torch.from_numpy(X))
    keep = []
    if "others" in has:
        from vitc.benchmarks.bench import discover, load_item

        for it in discover([Path(a.others)]):
            if it.kind == "artifact" and it.path != Path(a.ir):
                fn = load_item(it, a.threads)[0]
                fn(X[:1])
                keep.append(fn)
    from vitc.export.openvino import load

    fn = load(Path(a.ir), a.threads)
    if "eval" in has:  # the accuracy pass: all val images in batches of 32, remainder last
        for i in range(0, len(X), 32):
            fn(X[i : i + 32])
    x1, x16 = np.ascontiguousarray(X[:1]), np.ascontiguousarray(np.repeat(X, 2, 0)[:16])
    timing = dict(warmup=10, warmup_seconds=a.seconds / 2, min_runs=50, min_seconds=a.seconds)
    p50s = []
    for _ in range(a.inner):
        p50s.append(time_calls(fn, x1, **timing).p50_ms)
        if "b16" in has:
            time_calls(fn, x16, **timing)
    return {"variant": a.variant, "p50s_ms": p50s, "torch": "torch" in sys.modules, "others": len(keep)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ir")
    ap.add_argument("--others", help="an export dir whose other artifacts the all-loaded variant keeps alive")
    ap.add_argument("--checkpoint", help="the fp32 source checkpoint dir (torch-used variant)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rounds", type=int, default=3, help="outer rounds over all variants, order alternating")
    ap.add_argument("--inner", type=int, default=4, help="batch-1 timing rounds inside each process")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--bench-ab", type=int, default=0, help="whole-bench A/B: old in-process vs isolated, N alternations"
    )
    ap.add_argument("--baseline", help="the by-hand IR benched beside the IR in --bench-ab")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--x", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.variant:
        print("RESULT " + json.dumps(child(a)))
        return
    if a.bench_ab:
        return bench_ab(a)
    from vitc import checkpoint as ckpt
    from vitc.handoff import Checkpoint

    X = Checkpoint.open(a.checkpoint).val()[0].numpy()
    a.out.mkdir(parents=True, exist_ok=True)
    xp = a.out / "val.npy"
    np.save(xp, X)
    variants = a.variants.split(",")
    res = {v: [] for v in variants}
    t0 = time.time()
    for r in range(a.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.studies.isolation_ab",
                a.ir,
                "--variant",
                v,
                "--x",
                str(xp),
                "--inner",
                str(a.inner),
                "--seconds",
                str(a.seconds),
                "--threads",
                str(a.threads),
            ]
            cmd += ["--others", a.others] if a.others else []
            cmd += ["--checkpoint", a.checkpoint] if a.checkpoint else []
            p = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if not line:
                raise SystemExit(f"{v}: {p.stderr.strip().splitlines()[-1:]}")
            res[v].append(json.loads(line[7:])["p50s_ms"])
            print(v, [f"{x:.3f}" for x in res[v][-1]], flush=True)
    xp.unlink()
    ref = float(np.median([x for rr in res["alone"] for x in rr])) if "alone" in res else None
    rows = []
    for v in variants:
        allp = [x for rr in res[v] for x in rr]
        slow = sum(x > 1.25 * ref for x in allp) if ref else None
        rows.append(
            {
                "variant": v,
                "median_ms": float(np.median(allp)),
                "min_ms": min(allp),
                "max_ms": max(allp),
                "spread": max(allp) / min(allp),
                "slow_rounds": slow,
                "rounds": len(allp),
                "per_process": res[v],
            }
        )
    from vitc.runtime import machine_info, package_versions

    out = {
        "command": "python -m benchmarks.studies.isolation_ab " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "wall_s": time.time() - t0,
        "machine": machine_info(),
        "versions": package_versions(("torch", "openvino", "onnxruntime")),
        "alone_median_ms": ref,
        "rows": rows,
    }
    ckpt.write_json(a.out / "variants.json", out)
    md = [
        f"# Which part of the in-process bench causes the slow mode\n\n`{out['command']}`  \n{out['date']}, "
        f"{out['machine']['cpu']}, {a.threads} threads; versions {out['versions']}\n",
        f"Each cell: one fresh process per (variant, outer round), {a.inner} batch-1 timing rounds of >= {a.seconds} s in it; "
        f"{a.rounds} outer rounds, variant order alternating. Slow round: p50 > 1.25x the `alone` median ({ref:.3f} ms).\n",
        "| variant | median p50 ms | min-max | spread | slow rounds | p50s per process |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['variant']} | {r['median_ms']:.3f} | {r['min_ms']:.3f}-{r['max_ms']:.3f} | {r['spread']:.2f} | "
            f"{r['slow_rounds']}/{r['rounds']} | "
            + "; ".join(" ".join(f"{x:.2f}" for x in pp) for pp in r["per_process"])
            + " |"
        )
    (a.out / "variants.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def bench_ab(a) -> None:
    """The user-visible A/B: `vitc bench IR BASELINE` old (in-process) vs new (isolated), alternating."""
    vitc = str(Path(sys.executable).with_name("vitc"))
    runs = {"in-process (old)": [], "isolated (new)": []}
    t0 = time.time()
    for k in range(a.bench_ab):
        modes = [("in-process (old)", "--no-isolate"), ("isolated (new)", "--isolate")]
        for name, flag in modes if k % 2 == 0 else modes[::-1]:
            out = a.out / "bench-ab-runs" / f"{'old' if 'old' in name else 'new'}-{k}"
            cmd = [
                vitc,
                "bench",
                a.ir,
                a.baseline,
                flag,
                "--repeats",
                "3",
                "--min-seconds",
                str(a.seconds),
                "--out",
                str(out),
            ]
            subprocess.run(cmd, check=True, capture_output=True)
            res = json.loads((out / "bench.json").read_text())
            runs[name].append(
                {
                    r["artifact"]: {
                        "p50": r["p50_ms"],
                        "rounds": r["latency"]["p50_rounds_ms"],
                        "cc": (r.get("crosscheck") or {}).get("p50_ms"),
                        "wall": res["wall_s"],
                    }
                    for r in res["rows"]
                }
            )
            print(name, {n: round(v["p50"], 3) for n, v in runs[name][-1].items()}, flush=True)
    from vitc import checkpoint as ckpt

    cmd = "python -m benchmarks.studies.isolation_ab " + " ".join(sys.argv[1:])
    ckpt.write_json(
        a.out / "bench-ab.json",
        {"command": cmd, "date": time.strftime("%Y-%m-%d %H:%M"), "wall_s": time.time() - t0, "runs": runs},
    )
    md = [
        f"# vitc bench: in-process (old) vs isolated (new), same two IRs, alternating\n\n`{cmd}`  "
        f"\n{time.strftime('%Y-%m-%d %H:%M')}\n",
        "Each run: `vitc bench IR BASELINE --repeats 3`; benchmark_app cross-check in the same rounds.\n",
        "| bench | run | artifact | p50 ms | round p50s ms | spread | benchmark_app ms | vitc/tool |",
        "|---|---:|---|---:|---|---:|---:|---:|",
    ]
    for name, rr in runs.items():
        for k, rows in enumerate(rr):
            for art, v in rows.items():
                md.append(
                    f"| {name} | {k + 1} | {art} | {v['p50']:.3f} | {', '.join(f'{x:.3f}' for x in v['rounds'])} | "
                    f"{max(v['rounds']) / min(v['rounds']):.2f} | {v['cc']:.3f} | {v['p50'] / v['cc']:.2f} |"
                )
    (a.out / "bench-ab.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
