"""The training loop shared by `vitc teacher` and `vitc distill`.

AdamW (timm's factory: no weight decay on norms, biases, pos/cls/dist tokens) + cosine schedule
with linear warm-up, stepped per iteration; optional EMA; bf16 autocast; DDP under torchrun
(rank 0 writes). Each epoch re-seeds every RNG from (seed, epoch, rank), and the resumable state
is saved atomically at each epoch end, so `--resume` after any interruption repeats exactly the
epochs an uninterrupted run would have done.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from rich.console import Console

from vitc import checkpoint as ckpt
from vitc import recipe, runtime
from vitc.config import TrainConfig, to_dict
from vitc.cpu_share import CpuShare
from vitc.data import ImageDataset, Split, build_transform, mixup_fn
from vitc.errors import CheckpointError, ConfigError
from vitc.models import is_distilled
from vitc.progress import Steps, track
from vitc.structure import head_names

from .stage import checkpoint_meta

METRICS = "metrics.jsonl"


def head_logits(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eval logits per head. A distilled DeiT gives its class head, its distillation head and
    their average (what `model(x)` returns in eval and what gets deployed)."""
    if is_distilled(model):
        f = model.forward_features(x)
        cls, dist = (getattr(model, name)(f[:, i]) for i, name in enumerate(head_names(model)))
        return {"cls": cls, "dist": dist, "avg": (cls + dist) / 2}
    return {"out": model(x)}


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch: int = 256) -> dict[str, float]:
    was = model.training
    model.eval()
    correct: dict[str, list[int]] = {}
    for i in track(range(0, len(X), batch), "evaluate", -(-len(X) // batch), unit="batch"):
        y = Y[i : i + batch]
        for k, logits in head_logits(model, X[i : i + batch]).items():
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            c = correct.setdefault(k, [0, 0])
            c[0] += (top[:, 0] == y).sum().item()
            c[1] += (top == y[:, None]).any(1).sum().item()
    model.train(was)
    out = {}
    for k, (c1, c5) in correct.items():
        out[f"top1_{k}"] = 100.0 * c1 / len(X)
        out[f"top5_{k}"] = 100.0 * c5 / len(X)
    out["top1"] = out.get("top1_avg", out.get("top1_out"))
    return out


class SplitEvaluator:
    """Per-epoch metrics: top-1/top-5 on the val split (what is reported) and, where the data holds part of
    train out (DataSource.holdout), `holdout_top1` on it: fit() chooses best/ by that, so val decides nothing."""

    def __init__(self, src, pre: dict):
        from vitc.data import eval_tensors

        self.val = eval_tensors(src.val, pre)
        self.holdout = eval_tensors(src.holdout, pre) if src.holdout is not None else None

    def holdout_top1(self, model: nn.Module) -> float | None:
        """Top-1 on the held-out train images alone: the time-to-accuracy curve's point (cheap, and the test
        images stay for the end)."""
        return evaluate(model, *self.holdout)["top1"] if self.holdout is not None else None

    def __call__(self, model: nn.Module) -> dict:
        r = evaluate(model, *self.val)
        if self.holdout is not None:
            r["holdout_top1"] = evaluate(model, *self.holdout)["top1"]
        return r


def selection_score(row: dict) -> float:
    """What best/ is chosen by: the held-out part of train where there is one, else val (digits, ImageFolder)."""
    return row.get("holdout_top1", row["top1"])


def train_step(
    net: nn.Module, criterion: Callable, opt: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor, bf16: bool
) -> torch.Tensor:
    """One optimisation step: student forward under bf16 autocast (weights and optimiser stay
    fp32), loss in fp32, backward, AdamW step. Returns the (detached) loss."""
    with runtime.autocast(x.device, bf16):
        outputs = net(x)
    outputs = tuple(o.float() for o in outputs) if isinstance(outputs, tuple) else outputs.float()
    loss = criterion(x, outputs, target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@dataclass
class FitResult:
    metrics: dict
    history: list = field(default_factory=list)


def _loader(split: Split, transform, cfg: TrainConfig, d: runtime.Dist, epoch: int):
    ds = ImageDataset(split, transform)
    if d.enabled:
        sampler = torch.utils.data.DistributedSampler(ds, d.world, d.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        sampler = torch.utils.data.RandomSampler(ds, generator=g)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.workers,
        persistent_workers=False,
    )


def fit(
    *,
    model: nn.Module,
    criterion: Callable,
    train: Split,
    pre: dict,
    num_classes: int,
    cfg: TrainConfig,
    evaluate_fn: Callable[[nn.Module], dict],
    out: Path,
    meta_fn: Callable[[dict], dict],
    resume: bool,
    d: runtime.Dist,
    console: Console,
    teacher_clock: Callable[[], float] | None = None,
    holdout_fn: Callable[[nn.Module], float | None] | None = None,
) -> FitResult:
    """Train `model`; write `out/` (last), `out/best/`, `out/train_state.pt`, `out/metrics.jsonl`. `holdout_fn`
    gives the held-out top-1 that cfg.eval_every records mid-epoch (SplitEvaluator.holdout_top1)."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    device = d.device
    model.to(device)
    bf16 = runtime.use_bf16(cfg.amp, device)
    memory = torch.channels_last if runtime.channels_last(model, bf16) else torch.contiguous_format
    model.to(memory_format=memory)
    n_train = len(train.targets) // d.world
    # none set: the default, capped so that it cannot make a small dataset fail (one set is kept, and refused
    # below when too large)
    cfg, note = recipe.batch_for(cfg, n_train)
    if note and d.main:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    global_batch = cfg.batch_size * d.world
    lr = cfg.scaled_lr(global_batch)
    steps = n_train // cfg.batch_size
    if steps == 0:
        raise ConfigError(
            f"batch_size: {cfg.batch_size} per process is larger than the {n_train} training images each process sees",
            "lower --batch-size",
        )
    if cfg.aug.mixing and cfg.batch_size % 2:
        raise ConfigError(
            "batch_size: mixup/cutmix need an even batch size", "use an even --batch-size or turn mixing off"
        )
    opt = create_optimizer_v2(model, "adamw", lr=lr, weight_decay=cfg.weight_decay)
    sched = CosineLRScheduler(
        opt,
        t_initial=cfg.epochs * steps,
        lr_min=cfg.min_lr,
        warmup_t=int(cfg.warmup_epochs * steps),
        warmup_lr_init=cfg.warmup_lr,
        t_in_epochs=False,
    )
    ema = ModelEmaV3(model, decay=cfg.ema) if cfg.ema > 0 else None
    cfg_json = json.dumps(to_dict(cfg), sort_keys=True)
    # the recipe as resolved (vitc.recipe), in every checkpoint's vitc.json and on the run's first line
    resolved = {**to_dict(cfg), "lr_applied": lr, "global_batch": global_batch, "n_train": n_train * d.world}
    if d.main:
        console.print(recipe.describe(cfg, lr), highlight=False)

    start, best, history = 0, -math.inf, []
    state_path = out / ckpt.TRAIN_STATE
    if resume:
        st = ckpt.load_train_state(state_path)
        if st.get("config") != cfg_json:
            raise CheckpointError(
                f"--resume: {state_path} was made with another training config",
                "resume with the same options, or start fresh without --resume",
            )
        ckpt.load_into(model, st["model"], str(state_path))
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if ema is not None and st.get("ema") is not None:
            ckpt.load_into(ema.module, st["ema"], str(state_path))
        runtime.set_rng_state(st["rng"])
        start, best, history = int(st["epoch"]), float(st["best"]), list(st.get("history", []))
        if d.main:
            console.print(f"resumed from {state_path} after epoch {start}/{cfg.epochs}")

    net = model
    if d.enabled:  # the teacher stays outside DDP: frozen, nothing to synchronise
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if device.type == "cuda" else None
        )
    train_tf = build_transform(pre, train=True, aug=cfg.aug)
    mix = mixup_fn(cfg.aug, num_classes)
    result = history[-1] if history else {}
    # mid-epoch held-out points (cfg.eval_every): after these step counts, besides the epoch's end
    marks = (
        {round(k * cfg.eval_every * steps) for k in range(1, math.ceil(1 / cfg.eval_every))}
        if cfg.eval_every
        else set()
    )
    marks = {m for m in marks if 0 < m < steps}
    for epoch in range(start, cfg.epochs):
        runtime.seed_all(cfg.seed, epoch, d.rank)
        loader = _loader(train, train_tf, cfg, d, epoch)
        net.train()
        t0, seen, loss_sum, t_teacher0 = time.perf_counter(), 0, 0.0, teacher_clock() if teacher_clock else 0.0
        curve, eval_s, share = [], 0.0, CpuShare()
        with Steps(f"epoch {epoch + 1}/{cfg.epochs}", steps, console, unit="batch", visible=d.main) as prog:
            for i, (x, y) in enumerate(loader):
                x, y = x.to(device, non_blocking=True, memory_format=memory), y.to(device, non_blocking=True)
                target = y
                if mix is not None:
                    x, target = mix(x, y)
                loss = train_step(net, criterion, opt, x, target, bf16)
                if not torch.isfinite(loss):
                    raise ConfigError(
                        f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, step {i + 1}",
                        "lower --lr/--base-lr or turn --amp off",
                    )
                sched.step_update(epoch * steps + i + 1)
                if ema is not None:
                    ema.update(model)
                seen += x.shape[0]
                loss_sum += loss.item() * x.shape[0]
                if i + 1 in marks and holdout_fn is not None and d.main:
                    te = time.perf_counter()
                    top1 = holdout_fn(ema.module if ema is not None else model)
                    net.train()
                    eval_s += time.perf_counter() - te
                    if top1 is not None:
                        curve.append({"images": (epoch * steps + i + 1) * global_batch, "holdout_top1": top1})
                prog.advance(
                    1,
                    info=f"loss {loss.item():.4f}  lr {opt.param_groups[0]['lr']:.2e}  "
                    f"{seen * d.world / (time.perf_counter() - t0 - eval_s):.0f} img/s",
                )
        secs = time.perf_counter() - t0 - eval_s  # training only: the mid-epoch evaluations are timed apart
        row = {
            "epoch": epoch + 1,
            "batch_size": cfg.batch_size,
            "train_loss": loss_sum / max(seen, 1),
            "lr": opt.param_groups[0]["lr"],
            "images_per_s": seen * d.world / secs,
            "epoch_s": secs,
            "images": (epoch + 1) * steps * global_batch,  # seen since the start: the curve's x axis
            **share.read(),  # others_cpu near 0: this epoch's img/s was measured alone
        }
        if curve:
            row["curve"] = curve
            row["curve_eval_s"] = eval_s
        if teacher_clock:
            row["teacher_s"] = teacher_clock() - t_teacher0
            row["teacher_share"] = row["teacher_s"] / secs
        d.barrier()
        if d.main:
            eval_model = ema.module if ema is not None else model
            row.update(evaluate_fn(eval_model))
            history.append(row)
            score = selection_score(row)
            best_now = score > best
            best = max(best, score)
            _save(
                out,
                model,
                ema,
                opt,
                sched,
                epoch + 1,
                best,
                history,
                cfg_json,
                {**meta_fn(row), "recipe": resolved},
                best_now,
            )
            console.print(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  top1 {row['top1']:.2f}"
                f"  {row['images_per_s']:.0f} img/s"
                + (f"  teacher {100 * row['teacher_share']:.0f}% of time" if teacher_clock else "")
            )
            result = row
        d.barrier()
    return FitResult(result, history)


def _save(
    out: Path, model, ema, opt, sched, epoch: int, best: float, history: list, cfg_json: str, meta: dict, best_now: bool
) -> None:
    deploy = ema.module if ema is not None else model
    state = {
        "epoch": epoch,
        "best": best,
        "history": history,
        "config": cfg_json,
        "model": ckpt.state_dict_for_save(model),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "ema": ckpt.state_dict_for_save(ema.module) if ema is not None else None,
        "rng": runtime.rng_state(),
    }
    ckpt.save_train_state(out / ckpt.TRAIN_STATE, state)
    ckpt.save_checkpoint(out, deploy, meta)
    # one JSON object per epoch, rewritten from the saved history so it always matches train_state
    with ckpt.atomic_path(out / METRICS) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    if best_now:
        ckpt.save_checkpoint(out / "best", deploy, meta)


def train_recorded(
    *,
    stage: str,
    model: nn.Module,
    spec,
    criterion: Callable,
    src,
    pre: dict,
    cfg: TrainConfig,
    config: dict,
    inputs: dict,
    out: Path,
    resume: bool,
    d: runtime.Dist,
    console: Console,
    evaluator: SplitEvaluator | None = None,
    eval_extra: dict | None = None,
    teacher_clock: Callable[[], float] | None = None,
    extra_meta: dict | None = None,
) -> dict:
    """The frame every training stage (teacher, distill, prune) shares: its config.json, the checkpoint vitc.json
    of every epoch (checkpoint_meta + extra_meta), the held-out and val evaluation (+ eval_extra), then fit."""
    evaluator = evaluator or SplitEvaluator(src, pre)
    if d.main:
        ckpt.write_json(out / "config.json", {"stage": stage, **config, **(extra_meta or {})})

    def eval_fn(m: nn.Module) -> dict:
        return {**evaluator(m), **(eval_extra or {})}

    def meta(row: dict) -> dict:
        return {
            **checkpoint_meta(
                stage=stage, spec=spec, classes=src.classes, pre=pre, config=config, metrics=row, inputs=inputs
            ),
            **(extra_meta or {}),
        }

    return fit(
        model=model,
        criterion=criterion,
        train=src.train,
        pre=pre,
        num_classes=len(src.classes),
        cfg=cfg,
        evaluate_fn=eval_fn,
        out=out,
        meta_fn=meta,
        resume=resume,
        d=d,
        console=console,
        teacher_clock=teacher_clock,
        holdout_fn=evaluator.holdout_top1,
    ).metrics
