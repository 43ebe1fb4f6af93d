"""timm's own training of the Fashion-MNIST student from the same teacher (issue 34): the side-by-side baseline for
vitc's distillation recipe, written as vitc's trainer writes a run (metrics.jsonl, config.json, a minimal vitc.json)
so that benchmarks/studies/time_to_accuracy.py reads it like any vitc run.

Everything is timm's: the student `deit_tiny_distilled_patch16_224` (img_size 28, patch_size 7, 10 classes);
Fashion-MNIST through `timm.data.create_dataset('torch/fashion_mnist')` (torchvision's reader, on the files vitc's
`find_fashion` finds), minus the same 5,000 train images vitc holds out (vitc.data._hold_out: stratified, seed 0);
`timm.data.create_loader` with its prefetcher; `timm.task.TokenDistillationTask` (hard, teacher as an nn.Module,
criterion LabelSmoothingCrossEntropy(0.1) as train.py builds it, task and distill weights 1 and 1);
`create_optimizer_v2` and `create_scheduler_v2` through timm's `optimizer_kwargs`/`scheduler_kwargs`. The settings
are timm train.py's argparse defaults (TRAIN_PY below, read from huggingface/pytorch-image-models train.py at commit
aa4b5850, timm 1.0.29.dev0; this venv runs timm 1.0.31): SGD (timm's 'sgd': Nesterov) momentum 0.9, weight decay
2e-5, lr = lr_base 0.1 x batch 128 / lr_base_size 256 = 0.05 (linear scaling, as train.py picks for SGD), cosine per
epoch, warm-up 5 epochs from 1e-5 inside the epochs, min lr 0, batch 128; RandomResizedCrop scale (0.08, 1) ratio
(3/4, 4/3), random interpolation, hflip 0.5, colour jitter 0.4, no auto-augment, no random erasing, no mixup/cutmix.

What differs from `train.py` run with those defaults, and why:
- epochs = floor(minutes x 60 x img/s / 55,000) (`--minutes`, `--img-per-s`: the step speed measured alone), or
  `--epochs`; warm-up min(5, epochs // 2) so that a short run still decays;
- bf16 autocast on a CPU that has it (`--amp auto`; train.py's --amp is off by default) and 2 threads, as vitc trains
  here, so the comparison is about the recipe, not the numerics; data loaded in-line (`--workers 0`; train.py: 4);
- the grayscale images are converted to RGB before timm's transform (timm applies no colour mode to torch/ sets);
- teacher hard distillation (train.py's --kd-token-distill-type default is soft) and seed 0 (train.py: 42);
- evaluation as vitc evaluates: the full 28 px image (crop_pct 1.0; the model's own is 0.9), fp32, the average of
  the two heads (timm's eval-mode output): held-out top-1 every half epoch, test top-1 (10k) every epoch.
The teacher's own mean/std (its vitc.json) go into its pretrained_cfg, which timm's DistillationTeacher renormalises
to; it must take 28 px input, as timm's task feeds it the student's batch as is.

    python -m benchmarks.studies.timm_baseline --teacher DIR --out DIR --minutes 90 --img-per-s 300
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

MODEL, IMG, OVERRIDES = "deit_tiny_distilled_patch16_224", 28, {"num_classes": 10, "img_size": 28, "patch_size": 7}
EVAL_CROP_PCT = 1.0
TRAIN_PY = dict(  # timm train.py's argparse defaults (pytorch-image-models @ aa4b5850)
    opt="sgd", lr=None, lr_base=0.1, lr_base_size=256, lr_base_scale="", momentum=0.9, weight_decay=2e-5,
    sched="cosine", sched_on_updates=False, epochs=300, warmup_epochs=5, warmup_lr=1e-5, min_lr=0.0,
    warmup_prefix=False, cooldown_epochs=0, decay_epochs=90, decay_rate=0.1, patience_epochs=10, lr_noise=None,
    lr_noise_pct=0.67, lr_noise_std=1.0, lr_cycle_mul=1.0, lr_cycle_decay=0.5, lr_cycle_limit=1, lr_k_decay=1.0,
    batch_size=128, smoothing=0.1, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, vflip=0.0, color_jitter=0.4,
    aa=None, reprob=0.0, remode="pixel", recount=1, mixup=0.0, cutmix=0.0, train_interpolation="random", drop=0.0,
    drop_path=None, task_loss_weight=None, distill_loss_weight=None, seed=42, workers=4,
)  # fmt: skip


def _rgb(im):
    return im.convert("RGB")


def _data():
    """timm's torch/fashion_mnist train split minus vitc's held-out 5,000, those 5,000, and the 10k test images."""
    import torch
    from timm.data import create_dataset

    from vitc.data import FASHION, Split, _hold_out
    from vitc.tv_data import find_fashion

    root, origin = find_fashion()
    make = lambda split: create_dataset("torch/fashion_mnist", root=str(root), split=split, download=False)  # noqa: E731
    train, hold, test = make("train"), make("train"), make("validation")
    ids = _hold_out(FASHION, train.classes, list(range(len(train))), train.targets.numpy(), Split([], []), {})
    for ds, keep in ((train, ids.train.items), (hold, ids.holdout.items)):
        keep = torch.tensor(keep)
        ds.data, ds.targets = ds.data[keep], ds.targets[keep]
    return train, hold, test, {"root": str(root), "origin": origin, "n_train": len(train), "n_holdout": len(hold)}


def _tensors(ds, tf, n: int | None):
    import torch
    from torchvision import transforms

    ds.transform = transforms.Compose([_rgb, tf])
    xs, ys = zip(*(ds[i] for i in range(min(n or len(ds), len(ds)))))
    return torch.stack(xs), torch.tensor(ys)


def top1(model, X, Y, batch: int = 256) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        right = sum(
            (model(X[i : i + batch]).argmax(1) == Y[i : i + batch]).sum().item() for i in range(0, len(X), batch)
        )
    model.train()
    return 100.0 * right / len(X)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True, help="a vitc checkpoint dir")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, help="wall budget; with --img-per-s gives the epochs")
    p.add_argument("--img-per-s", type=float, help="this configuration's step speed measured alone")
    p.add_argument("--epochs", type=int, help="overrides the epochs from --minutes and --img-per-s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", choices=("auto", "off"), default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="smoke test only: steps per epoch (and 512 images per evaluation)")
    a = p.parse_args()
    import timm
    import torch
    from timm.data import create_loader, create_transform, resolve_data_config
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2, optimizer_kwargs
    from timm.scheduler import create_scheduler_v2, scheduler_kwargs
    from timm.task import TokenDistillationTask
    from timm.utils import random_seed
    from torchvision import transforms

    from vitc import runtime
    from vitc.cpu_share import CpuShare
    from vitc.models import load_checkpoint_model

    torch.set_num_threads(a.threads)
    train, hold, test, data = _data()
    if a.epochs is None and (a.minutes is None or a.img_per_s is None):
        p.error("give --minutes and --img-per-s, or --epochs")
    epochs = a.epochs or math.floor(a.minutes * 60 * a.img_per_s / len(train))
    if epochs < 1:
        p.error(f"{a.minutes} min at {a.img_per_s} img/s is less than one epoch of {len(train)} images")
    cfg = SimpleNamespace(**{**TRAIN_PY, "epochs": epochs, "seed": a.seed, "workers": a.workers})
    cfg.warmup_epochs = min(cfg.warmup_epochs, epochs // 2)
    ratio = cfg.batch_size / cfg.lr_base_size  # train.py: lr from lr_base, scaled by the global batch
    cfg.lr_base_scale = cfg.lr_base_scale or ("sqrt" if any(o in cfg.opt for o in ("ada", "lamb")) else "linear")
    cfg.lr = cfg.lr_base * (ratio**0.5 if cfg.lr_base_scale == "sqrt" else ratio)

    random_seed(cfg.seed, 0)
    model = timm.create_model(MODEL, pretrained=False, drop_rate=cfg.drop, drop_path_rate=cfg.drop_path, **OVERRIDES)
    dc = resolve_data_config({"input_size": (3, IMG, IMG)}, model=model)
    teacher, tmeta = load_checkpoint_model(a.teacher)
    tpre = tmeta["preprocess"]
    if tpre["input_size"][-1] != IMG:
        p.error(f"the teacher takes {tpre['input_size'][-1]} px; timm's task feeds it the student's {IMG} px batch")
    teacher.pretrained_cfg = {**getattr(teacher, "pretrained_cfg", {}), "mean": tpre["mean"], "std": tpre["std"]}
    task = TokenDistillationTask(
        model, teacher.requires_grad_(False), criterion=LabelSmoothingCrossEntropy(smoothing=cfg.smoothing),
        distill_type="hard", distill_loss_weight=cfg.distill_loss_weight, task_loss_weight=cfg.task_loss_weight,
        device=torch.device("cpu"), verbose=False,
    )  # fmt: skip
    student = task.get_trainable_module()
    opt = create_optimizer_v2(student, **optimizer_kwargs(cfg=cfg))
    loader = create_loader(
        train, input_size=dc["input_size"], batch_size=cfg.batch_size, is_training=True, re_prob=cfg.reprob,
        re_mode=cfg.remode, re_count=cfg.recount, scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, vflip=cfg.vflip,
        color_jitter=cfg.color_jitter, auto_augment=cfg.aa, interpolation=cfg.train_interpolation, mean=dc["mean"],
        std=dc["std"], num_workers=cfg.workers, device=torch.device("cpu"), use_prefetcher=True,
    )  # fmt: skip
    train.transform = transforms.Compose([_rgb, train.transform])  # timm gives torch/ sets no colour mode
    steps = min(len(loader), a.max_steps or len(loader))
    sched, _ = create_scheduler_v2(opt, **scheduler_kwargs(cfg), updates_per_epoch=steps)
    eval_tf = create_transform(
        dc["input_size"], is_training=False, interpolation=dc["interpolation"], mean=dc["mean"], std=dc["std"],
        crop_pct=EVAL_CROP_PCT,
    )  # fmt: skip
    n_eval = 512 if a.max_steps else None
    hold_xy, test_xy = _tensors(hold, eval_tf, n_eval), _tensors(test, eval_tf, n_eval)
    bf16 = runtime.use_bf16(a.amp, torch.device("cpu"))

    pre = {"input_size": list(dc["input_size"]), "interpolation": dc["interpolation"], "mean": list(dc["mean"])}
    pre |= {"std": list(dc["std"]), "crop_pct": EVAL_CROP_PCT, "crop_mode": "center"}
    meta = {
        "stage": "timm-baseline",
        "model": {"name": MODEL, "overrides": OVERRIDES},
        "data": "fashion-mnist",
        "preprocess": pre,
        "inputs": {"teacher": {"path": str(a.teacher.resolve())}, "data": data},
        "metrics": {},
    }
    conf = {
        "what": "timm train.py defaults, epochs fitted to a wall budget (benchmarks/studies/timm_baseline.py)",
        "timm": timm.__version__,
        "torch": torch.__version__,
        "train_py": "huggingface/pytorch-image-models@aa4b5850 train.py argparse defaults",
        "train_py_defaults": TRAIN_PY,
        "resolved": vars(cfg),
        "epoch_rule": "floor(minutes * 60 * img_per_s / n_train), or --epochs; warmup min(5, epochs // 2)",
        "minutes": a.minutes, "img_per_s": a.img_per_s, "max_steps": a.max_steps, "steps_per_epoch": steps,
        "model": meta["model"], "data_config": dc, "eval_crop_pct": EVAL_CROP_PCT, "data": data,
        "teacher": {"path": str(a.teacher.resolve()), "model": tmeta["model"], "preprocess": tpre},
        "distillation": {"task": type(task).__name__, "distill_type": "hard", "criterion": type(task.criterion).__name__,
                         "task_loss_weight": task.task_loss_weight, "distill_loss_weight": task.distill_loss_weight},
        "optimizer": {"class": type(opt).__name__, **opt.defaults, "weight_decay": cfg.weight_decay},
        "param_groups": [{"params": len(g["params"]), "weight_decay": g["weight_decay"]} for g in opt.param_groups],
        "scheduler": type(sched).__name__, "bf16": bf16, "threads": torch.get_num_threads(), "seed": cfg.seed,
    }  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "config.json").write_text(json.dumps(conf, indent=1, default=str) + "\n")
    (a.out / "vitc.json").write_text(json.dumps(meta, indent=1) + "\n")
    rows = (a.out / "metrics.jsonl").open("w")
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    for epoch in range(epochs):
        task.train()  # the student trains, the teacher stays in eval
        curve, eval_s, share, seen, loss_sum, t0 = [], 0.0, CpuShare(), 0, 0.0, time.perf_counter()
        opt.zero_grad()
        for i, (x, y) in zip(range(steps), loader):
            with amp():
                loss = task(x, y)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad()
            sched.step_update(num_updates=epoch * steps + i + 1)  # a no-op for train.py's per-epoch schedule
            if not torch.isfinite(loss):
                raise SystemExit(f"loss is {loss.item()} at epoch {epoch + 1}, step {i + 1}")
            seen, loss_sum = seen + len(x), loss_sum + loss.item() * len(x)
            if i + 1 == steps // 2:
                te = time.perf_counter()
                curve.append(
                    {"images": (epoch * steps + i + 1) * cfg.batch_size, "holdout_top1": top1(student, *hold_xy)}
                )
                eval_s += time.perf_counter() - te
        secs = time.perf_counter() - t0 - eval_s  # training only, as vitc's trainer times it
        row = {
            "epoch": epoch + 1, "batch_size": cfg.batch_size, "train_loss": loss_sum / seen,
            "lr": opt.param_groups[0]["lr"], "images_per_s": seen / secs, "epoch_s": secs,
            "images": (epoch + 1) * steps * cfg.batch_size, **share.read(),
        }  # fmt: skip
        if curve:
            row |= {"curve": curve, "curve_eval_s": eval_s}
        row |= {"holdout_top1": top1(student, *hold_xy), "top1": top1(student, *test_xy)}
        sched.step(epoch + 1)
        rows.write(json.dumps(row) + "\n")
        rows.flush()
        print(f"epoch {epoch + 1}/{epochs}  loss {row['train_loss']:.4f}  held-out {row['holdout_top1']:.2f}  "
              f"test {row['top1']:.2f}  {row['images_per_s']:.0f} img/s", flush=True)  # fmt: skip
    rows.close()
    (a.out / "vitc.json").write_text(json.dumps({**meta, "metrics": row}, indent=1) + "\n")


if __name__ == "__main__":
    main()
