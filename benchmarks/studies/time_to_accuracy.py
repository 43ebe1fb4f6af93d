"""Time-to-accuracy of training runs (issue 34): held-out top-1 against images seen and against minutes, where
minutes = images / the configuration's img/s measured alone, and training compute in PFLOPs.

Each run is a vitc training folder (metrics.jsonl, vitc.json, config.json). Its img/s alone is the median of its
epochs during which other processes used under 5% of the machine (`others_cpu`, recorded by the trainer); a run
with no such epoch needs `--alone NAME=IMG_PER_S` from a separate measurement, or is reported as not measured
alone. Training FLOPs per image are counted by torch's FlopCounterMode on one real step (forward + backward of the
trained model, plus the frozen teacher's forward for a distillation run).

    python -m benchmarks.studies.time_to_accuracy --out results/fashion-cpu/recipe NAME=RUN_DIR ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ALONE = 0.05  # an epoch is "alone" when other processes used less than this share of all CPU time


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def alone_speed(rows: list[dict]) -> tuple[float | None, int]:
    """Median img/s over the epochs that ran alone, and how many there were."""
    alone = [r["images_per_s"] for r in rows if r.get("others_cpu", 1.0) < ALONE]
    return (statistics.median(alone) if alone else None), len(alone)


def train_gflops_per_image(run: Path) -> float:
    """FLOPs of one training step per image (GFLOP): the model's forward + backward, and a teacher's forward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vitc.models import build_from_spec, load_checkpoint_model

    meta = json.loads((run / "vitc.json").read_text())
    size = meta["preprocess"]["input_size"]
    model = build_from_spec(meta["model"]).train()
    if hasattr(model, "set_distilled_training"):
        model.set_distilled_training(True)
    x = torch.randn(2, *size)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        (sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()).backward()
    flops = fc.get_total_flops() / 2
    teacher = (meta.get("inputs") or {}).get("teacher") or {}
    if teacher.get("path") and Path(teacher["path"]).is_dir():
        t, tmeta = load_checkpoint_model(teacher["path"])
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            t(torch.randn(2, *tmeta["preprocess"]["input_size"]))
        flops += fc.get_total_flops() / 2
    return flops / 1e9


def summarise(name: str, run: Path, alone: float | None = None) -> dict:
    rows = _rows(run)
    speed, n_alone = alone_speed(rows)
    if alone is not None:
        speed, n_alone = alone, -1
    best = max(rows, key=lambda r: r.get("holdout_top1", r["top1"]))
    gf = train_gflops_per_image(run)
    points = []  # (images, held-out top-1)
    for r in rows:
        points += [(p["images"], p["holdout_top1"]) for p in r.get("curve", [])]
        if "holdout_top1" in r:
            points.append((r["images"], r["holdout_top1"]))
    images = rows[-1]["images"]
    return {
        "name": name,
        "run": str(run),
        "epochs": len(rows),
        "images": images,
        "img_per_s_alone": speed,
        "alone_epochs": n_alone,
        "minutes": images / speed / 60 if speed else None,
        "pflops": images * gf / 1e6,
        "train_gflops_per_image": gf,
        "best_epoch": best["epoch"],
        "holdout_top1": best.get("holdout_top1"),
        "test_top1": best["top1"],
        "last_test_top1": rows[-1]["top1"],
        "others_cpu": [r.get("others_cpu") for r in rows],
        "curve": points,
    }


def table(runs: list[dict]) -> str:
    out = [
        "| run | epochs | images | img/s alone | minutes | PFLOPs | best epoch | held-out top-1 | test top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        speed = f"{r['img_per_s_alone']:.0f}" if r["img_per_s_alone"] else "not alone"
        mins = f"{r['minutes']:.1f}" if r["minutes"] else "-"
        out.append(
            f"| {r['name']} | {r['epochs']} | {r['images']:,} | {speed} | {mins} | {r['pflops']:.2f} | "
            f"{r['best_epoch']} | {r['holdout_top1']:.2f} | **{r['test_top1']:.2f}** |"
        )
    return "\n".join(out) + "\n"


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in runs:
        if not r["img_per_s_alone"] or not r["curve"]:
            continue
        xs = [i / r["img_per_s_alone"] / 60 for i, _ in r["curve"]]
        ys = [t for _, t in r["curve"]]
        ax.plot(xs, ys, marker=".", label=f"{r['name']} (test {r['test_top1']:.2f}%)")
    ax.set_xlabel("training minutes (images seen / img/s measured alone)")
    ax.set_ylabel("held-out top-1 % (5,000 train images)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)  # a legend, not labels on the curves: they never overlap
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    p.add_argument("--alone", action="append", default=[], help="NAME=IMG_PER_S measured alone elsewhere")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="Fashion-MNIST time to accuracy, 2 CPU cores")
    a = p.parse_args()
    alone = {k: float(v) for k, v in (s.split("=", 1) for s in a.alone)}
    runs = [summarise(n, Path(d), alone.get(n)) for n, d in (s.split("=", 1) for s in a.runs)]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    (a.out / "table.md").write_text(table(runs))
    plot(runs, a.out / "time-to-accuracy.png", a.title)
    print(table(runs))


if __name__ == "__main__":
    main()
