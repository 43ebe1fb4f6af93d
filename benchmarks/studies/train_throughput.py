"""Distillation training throughput: vitc's train step vs timm's TokenDistillationTask.

Same student architecture and initial weights, same teacher, same pre-augmented batches
(prepared outside the timed region), same thread count, hard distillation, AdamW. The two
loops are timed in alternating rounds and the median round is quoted, so machine noise hits
both alike. timm's task is run as shipped (fp32) and, for fairness, also under bf16 autocast.

    python -m benchmarks.studies.train_throughput --teacher-checkpoint runs/study/teacher --out results/distill-digits
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn


def _batches(pre: dict, n: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from vitc.config import AugConfig
    from vitc.data import build_transform, load_source

    src = load_source("digits", pre["input_size"][-1])
    tf = build_transform(pre, train=True, aug=AugConfig("digits"))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        idx = torch.randint(len(src.train.targets), (batch,), generator=g).tolist()
        out.append(
            (torch.stack([tf(src.train.items[i]) for i in idx]), torch.tensor([src.train.targets[i] for i in idx]))
        )
    return out


def _time_loop(step, batches, steps: int) -> float:
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        step(x, y)
    return steps * batches[0][0].shape[0] / (time.perf_counter() - t0)


def run(
    teacher: nn.Module,
    tpre: dict,
    student_name: str,
    img: int,
    patch: int,
    batch: int,
    threads: int,
    rounds: int,
    steps: int,
    lr: float = 1e-3,
) -> dict:
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.task import TokenDistillationTask

    from vitc import runtime
    from vitc.compress.losses import DistillationLoss, TeacherAdapter
    from vitc.compress.trainer import train_step
    from vitc.models import create_model, data_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base, _ = create_model(student_name, 10, img, patch)
    pre = data_config(base, img, 1.0)
    batches = _batches(pre, 8, batch, 0)
    bf16 = runtime.cpu_has_bf16()

    def make_timm(amp: bool):
        s = copy.deepcopy(base)
        task = TokenDistillationTask(
            s,
            copy.deepcopy(teacher),
            criterion=LabelSmoothingCrossEntropy(0.1),
            distill_type="hard",
            task_loss_weight=0.5,
            verbose=False,
        )
        task.train()
        opt = create_optimizer_v2(s, "adamw", lr=lr, weight_decay=0.05)

        def step(x, y):
            with runtime.autocast(x.device, amp):
                loss = task(x, y)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    def make_vitc():
        s = copy.deepcopy(base)
        s.set_distilled_training(True)
        s.train()
        adapter = TeacherAdapter(copy.deepcopy(teacher), pre, tpre, bf16=bf16)
        crit = DistillationLoss(LabelSmoothingCrossEntropy(0.1), adapter, "hard", 0.5, 1.0)
        opt = create_optimizer_v2(s, "adamw", lr=lr, weight_decay=0.05)
        return lambda x, y: train_step(s, crit, opt, x, y, bf16), adapter

    loops = {"timm_fp32": make_timm(False), "timm_bf16_autocast": make_timm(bf16)}
    vitc_step, adapter = make_vitc()
    loops["vitc"] = vitc_step
    for fn in loops.values():  # warm-up: allocator, oneDNN kernel selection
        _time_loop(fn, batches, 3)
    adapter.seconds = 0.0
    res: dict[str, list[float]] = {k: [] for k in loops}
    vitc_time = 0.0
    for _ in range(rounds):
        for k, fn in loops.items():
            t0 = time.perf_counter()
            res[k].append(_time_loop(fn, batches, steps))
            if k == "vitc":
                vitc_time += time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in res.items()}
    return {
        "images_per_s": med,
        "rounds": res,
        "speedup_vs_timm_fp32": med["vitc"] / med["timm_fp32"],
        "speedup_vs_timm_bf16": med["vitc"] / med["timm_bf16_autocast"],
        "vitc_teacher_share": adapter.seconds / vitc_time,
        "bf16": bf16,
        "setup": {
            "student": student_name,
            "img_size": img,
            "patch_size": patch,
            "batch": batch,
            "threads": threads,
            "steps_per_round": steps,
            "rounds": rounds,
        },
    }


def main(argv=None) -> None:
    from vitc.models import create_model, data_config, load_checkpoint_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher-checkpoint", required=True, help="vitc teacher dir (e.g. resnet18 trained on digits)")
    ap.add_argument("--big-teacher", default="regnety_16gf", help="second teacher, random init (cost only); '' to skip")
    ap.add_argument("--student", default="deit_tiny")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    t, meta = load_checkpoint_model(a.teacher_checkpoint)
    teachers = {meta["model"]["name"]: (t, meta["preprocess"])}
    if a.big_teacher:
        big, _ = create_model(a.big_teacher, 10, a.img_size)
        teachers[f"{a.big_teacher} (random init)"] = (big.eval(), data_config(big, a.img_size, 1.0))
    report = {
        "command": "python -m benchmarks.studies.train_throughput " + " ".join(argv or __import__("sys").argv[1:]),
        "torch": torch.__version__,
        "results": {},
    }
    for name, (model, tpre) in teachers.items():
        r = run(model, tpre, a.student, a.img_size, a.patch_size, a.batch, a.threads, a.rounds, a.steps)
        report["results"][name] = r
        print(
            name,
            json.dumps({k: round(v, 1) for k, v in r["images_per_s"].items()}),
            f"vitc/timm_fp32 {r['speedup_vs_timm_fp32']:.2f}x  vitc/timm_bf16 {r['speedup_vs_timm_bf16']:.2f}x "
            f"teacher share {100 * r['vitc_teacher_share']:.0f}%",
            flush=True,
        )
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
