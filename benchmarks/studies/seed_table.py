"""Seeds side by side (issue 34's controls): for each group of training runs (vitc run folders, or timm_baseline's,
which write the same metrics.jsonl), the test top-1 of the epoch chosen by held-out top-1 and of the last epoch,
as mean +- std over the group's seeds, with the images each run saw.

    python -m benchmarks.studies.seed_table --out results/fashion-cpu/converged/controls.json \
        hard=runs/fc34b/ctl-hard-s0 hard=runs/fc34b/ctl-hard-s1 none=runs/fc34b/ctl-none-s0 ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def run_row(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    best = max(rows, key=lambda r: (r.get("holdout_top1", r["top1"]), r["epoch"]))  # the trainer's choice
    cfg = json.loads((run / "config.json").read_text())
    return {
        "run": str(run),
        "seed": (cfg.get("train") or {}).get("seed", cfg.get("seed")),
        "epochs": len(rows),
        "images": rows[-1]["images"],
        "best_epoch": best["epoch"],
        "test_top1_best": best["top1"],
        "holdout_top1_best": best.get("holdout_top1"),
        "test_top1_last": rows[-1]["top1"],
    }


def _stat(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="GROUP=RUN_DIR (repeat a group for its seeds)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    groups: dict[str, list[dict]] = {}
    for spec in a.runs:
        name, _, path = spec.partition("=")
        groups.setdefault(name, []).append(run_row(Path(path)))
    table = {
        g: {
            "runs": rs,
            "test_top1_best": _stat([r["test_top1_best"] for r in rs]),
            "test_top1_last": _stat([r["test_top1_last"] for r in rs]),
        }
        for g, rs in groups.items()
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(table, indent=1) + "\n")
    print("| group | seeds | images per run | test top-1 (best held-out epoch) | test top-1 (last epoch) |")
    print("|---|---:|---:|---:|---:|")
    for g, t in table.items():

        def fmt(s: dict) -> str:
            return f"{s['mean']:.2f}" + (f" +- {s['std']:.2f}" if s["std"] is not None else "")

        print(
            f"| {g} | {t['test_top1_best']['n']} | {t['runs'][0]['images']:,} | {fmt(t['test_top1_best'])} "
            f"| {fmt(t['test_top1_last'])} |"
        )


if __name__ == "__main__":
    main()
