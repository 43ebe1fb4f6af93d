"""Training step speed vs data loading on Fashion-MNIST: what sized the recipe in results/fashion-cpu/README.md.

One vitc training step (`compress.trainer.train_step`: forward, cross-entropy, backward, AdamW) on random tensors
at the recipe's shapes, fp32 and bf16 autocast, timed over `--steps` steps after 2 warm-up steps; and timm's train
transform (the `fashion` preset) over the real 28 px images on one thread, in-line as the trainer runs it.
Run it alone: another job on the 2 cores halves every figure.

    python -m benchmarks.studies.step_profile --out results/fashion-cpu/step-profile
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

# (name, timm model, img, patch, batch, bf16)
SHAPES = [
    ("resnet18, 28 px, fp32", "resnet18", 28, None, 256, False),
    ("resnet18, 28 px, bf16 autocast", "resnet18", 28, None, 256, True),
    ("deit_tiny, 28 px, patch 4 (49 tokens), bf16", "deit_tiny", 28, 4, 256, True),
    ("deit_tiny, 28 px, patch 7 (16 tokens), bf16", "deit_tiny", 28, 7, 256, True),
]
TRAIN_IMAGES = 55_000


def step_speed(model_name: str, img: int, patch: int | None, batch: int, bf16: bool, steps: int) -> float:
    from vitc.compress.trainer import train_step
    from vitc.models import create_model

    torch.manual_seed(0)
    model, _ = create_model(model_name, 10, img, patch)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, img, img), torch.randint(0, 10, (batch,))
    crit = lambda inp, out, t: torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, t)  # noqa: E731
    for _ in range(2):
        train_step(model, crit, opt, x, y, bf16)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, crit, opt, x, y, bf16)
    return steps * batch / (time.perf_counter() - t0)


def loading_speed(n: int) -> float:
    from vitc.config import AugConfig
    from vitc.data import build_transform, load_source
    from vitc.models import create_model, data_config

    src = load_source("fashion-mnist", 28)
    pre = data_config(create_model("deit_tiny", 10, 28, 7)[0], 28, 1.0)
    tf = build_transform(pre, train=True, aug=AugConfig("fashion"))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for i in range(n):
        tf(src.train.items[i])
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    from vitc.runtime import machine_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--load-images", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("results/fashion-cpu/step-profile"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for name, model, img, patch, batch, bf16 in SHAPES:
        ips = step_speed(model, img, patch, batch, bf16, a.steps)
        rows.append({"shape": name, "batch": batch, "img_per_s": ips, "epoch_min": TRAIN_IMAGES / ips / 60})
        print(f"{name}: {ips:.0f} img/s", flush=True)
    load = loading_speed(a.load_images)
    print(f"timm train transform (fashion preset), 1 thread: {load:.0f} img/s", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine_info(), "threads": a.threads, "steps": a.steps, "rows": rows, "loading_img_per_s": load}
    (a.out / "step-profile.json").write_text(json.dumps(res, indent=1))
    lines = [
        "# Training step speed on Fashion-MNIST shapes",
        "",
        f"Machine: {res['machine']['cpu']} {res['machine']['cpu_id']}; torch {res['machine']['torch']}; "
        f"{a.threads} threads. Command: `python -m benchmarks.studies.step_profile --out {a.out}`",
        "",
        "| model | batch | img/s | one pass over 55k |",
        "|---|---:|---:|---:|",
        *[f"| {r['shape']} | {r['batch']} | {r['img_per_s']:.0f} | {r['epoch_min']:.1f} min |" for r in rows],
        "",
        f"Data loading (timm's train transform, `fashion` preset, 28 px PIL images, 1 thread): {load:,.0f} img/s.",
    ]
    (a.out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
