"""Distillation study: a teacher, then students with --distillation none / hard / soft over several seeds
(same epochs, augmentation, schedule), on the built-in digits or Fashion-MNIST.

Drives the real CLI in subprocesses and reads each run's vitc.json. Finished runs (final epoch
present) are reused, so an interrupted study continues where it stopped.

    python -m benchmarks.studies.distill_study --out results/distill-digits --work runs/study
    python -m benchmarks.studies.distill_study --data fashion-mnist --img-size 28 --patch-size 7 --epochs 2 \
        --lr 1e-3 --amp auto --teacher-dir runs/fashion/teacher --reuse hard-s0=runs/fashion/student \
        --extra '--batch-size 128 --warmup-epochs 0.3 --drop-path 0 --aug fashion' \
        --out results/fashion-cpu/students --work runs/fashion-study
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vitc.runtime import machine_info, seed_all


def vitc(args: list[str]) -> float:
    cmd = [sys.executable, "-m", "vitc", *args]
    print("$ vitc " + shlex.join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def finished(run: Path, epochs: int) -> dict | None:
    meta = run / "vitc.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        if m.get("metrics", {}).get("epoch") == epochs:
            return m
    return None


def wall(run: Path) -> float | None:
    """The wall time a study recorded for the run (study-wall.json), or the pipeline's (stage.json)."""
    for name, key in (("study-wall.json", "wall_s"), ("stage.json", "seconds")):
        p = run / name
        if p.is_file():
            return json.loads(p.read_text()).get(key)
    m = run / "metrics.jsonl"  # a run started outside the study: its epochs' training time (no evaluation)
    if m.is_file():
        return sum(json.loads(line)["epoch_s"] for line in m.read_text().splitlines() if line.strip())
    return None


def train(run: Path, args: list[str], epochs: int) -> tuple[dict, float | None]:
    m = finished(run, epochs)
    if m is not None:
        print(f"reusing {run}", flush=True)
        return m, wall(run)
    secs = vitc([*args, "--out", str(run), "--force"])
    (run / "study-wall.json").write_text(json.dumps({"wall_s": secs, "command": "vitc " + shlex.join(args)}) + "\n")
    return json.loads((run / "vitc.json").read_text()), secs


def teacher_label_disagreement(teacher_dir: Path, data: str, presets: list[str], epochs: int) -> dict:
    """How often the teacher's hard label differs from the true label on augmented training images,
    per augmentation preset. Hard distillation can only add information where they differ."""
    import torch

    from vitc.config import AugConfig
    from vitc.data import ImageDataset, build_transform, load_source, mixup_fn
    from vitc.models import load_checkpoint_model

    teacher, meta = load_checkpoint_model(teacher_dir)
    src = load_source(data, meta["preprocess"]["input_size"][-1])
    out = {}
    for preset in presets:
        aug = AugConfig(preset)
        ds = ImageDataset(src.train, build_transform(meta["preprocess"], train=True, aug=aug))
        mix = mixup_fn(aug, len(src.classes))
        seed_all(0)  # timm's augmentations draw from Python's random too, not only torch's
        differ = total = 0
        for _ in range(epochs):
            for x, y in torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, drop_last=True):
                target = y
                if mix is not None:
                    x, soft = mix(x, y)
                    target = soft.argmax(1)  # a mixed image's dominant label
                with torch.no_grad():
                    pred = teacher(x).argmax(1)
                differ += (pred != target).sum().item()
                total += len(y)
        out[preset] = 100.0 * differ / total
    return out


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("runs/study"))
    ap.add_argument("--data", default="digits")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--teacher", default="resnet18")
    ap.add_argument("--teacher-dir", type=Path, help="a trained teacher to use instead of training one")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--teacher-lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=["none", "hard", "soft"])
    ap.add_argument("--extra", default="", help="more distill options, e.g. '--auto-augment none'")
    ap.add_argument("--amp", default="bf16", help="--amp and --teacher-amp of every student (auto: vitc's default)")
    ap.add_argument("--reuse", action="append", default=[], help="NAME=DIR: a finished run of that variant and seed")
    ap.add_argument("--presets", nargs="+", default=["none", "digits", "deit"], help="for the label disagreement")
    ap.add_argument("--disagreement-epochs", type=int, default=3)
    ap.add_argument("--report-only", action="store_true", help="report the finished runs, train none")
    ap.add_argument("--fp32-check", action="store_true", help="also run hard with --amp off --teacher-amp off")
    a = ap.parse_args(argv)
    extra = shlex.split(a.extra)

    data = ["--data", a.data]
    if a.teacher_dir:
        tdir, tsecs = a.teacher_dir, None
        tmeta = json.loads((tdir / "vitc.json").read_text())
        a.teacher_epochs = tmeta["metrics"]["epoch"]
    else:
        tdir = a.work / f"teacher-{a.teacher}"
        tmeta, tsecs = train(
            tdir,
            ["teacher", *data, "--model", a.teacher, "--epochs", str(a.teacher_epochs), "--lr", str(a.teacher_lr)],
            a.teacher_epochs,
        )
    reuse = dict(r.split("=", 1) for r in a.reuse)
    common = [
        "distill",
        *data,
        "--teacher-checkpoint",
        str(tdir),
        "--student",
        "deit_tiny",
        "--img-size",
        str(a.img_size),
        "--patch-size",
        str(a.patch_size),
        "--epochs",
        str(a.epochs),
        "--lr",
        str(a.lr),
        *extra,
    ]
    # the main rows train under bf16 autocast (student and teacher); --fp32-check repeats hard in fp32
    variants = {m: ["--distillation", m, "--amp", a.amp, "--teacher-amp", a.amp] for m in a.modes}
    if a.fp32_check:
        variants["hard-fp32"] = ["--distillation", "hard", "--amp", "off", "--teacher-amp", "off"]
    runs: dict[str, list[dict]] = {}
    for name, opts in variants.items():
        for seed in a.seeds:
            key = f"{name}-s{seed}"
            if key in reuse:  # a run of the same recipe made elsewhere (the pipeline's student)
                meta, secs = finished(Path(reuse[key]), a.epochs), wall(Path(reuse[key]))
                if meta is None:
                    raise SystemExit(f"--reuse {key}={reuse[key]}: no finished {a.epochs}-epoch run there")
            elif a.report_only:
                meta, secs = finished(a.work / key, a.epochs), wall(a.work / key)
                if meta is None:
                    print(f"not finished, left out: {a.work / key}", flush=True)
                    continue
            else:
                meta, secs = train(a.work / key, [*common, *opts, "--seed", str(seed)], a.epochs)
            m = meta["metrics"]
            keep = ("top", "teacher", "images", "holdout", "epoch_s")
            runs.setdefault(name, []).append(
                {
                    "seed": seed,
                    "wall_s": secs,
                    "run": reuse.get(key, str(a.work / key)),
                    **{k: m[k] for k in m if k.startswith(keep)},
                }
            )
    summary = {}
    for name, rs in runs.items():
        summary[name] = {k: mean_std([r[k] for r in rs]) for k in ("top1_avg", "top1_cls", "top1_dist", "images_per_s")}
    disagreement = (
        teacher_label_disagreement(tdir, a.data, a.presets, a.disagreement_epochs) if a.disagreement_epochs else {}
    )
    report = {
        "machine": machine_info(),
        "teacher_label_disagreement_pct": disagreement,
        "command": "python -m benchmarks.studies.distill_study " + shlex.join(argv or sys.argv[1:]),
        "data": a.data,
        "n_val": tmeta["inputs"]["data"].get("n_val"),
        "teacher": {
            "name": tmeta["model"]["name"],
            "dir": str(tdir),
            "top1": tmeta["metrics"]["top1"],
            "epochs": a.teacher_epochs,
            "wall_s": tsecs,
        },
        "student": {
            "name": "deit_tiny_distilled_patch16_224",
            "img_size": a.img_size,
            "patch_size": a.patch_size,
            "epochs": a.epochs,
            "lr": a.lr,
            "extra": a.extra,
        },
        "amp": a.amp,
        "disagreement_epochs": a.disagreement_epochs,
        "runs": runs,
        "summary": summary,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "study.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.out / "study.md").write_text(render(report))
    print(render(report))


def render(r: dict) -> str:
    s, t, mc = r["student"], r["teacher"], r["machine"]
    lines = [
        f"# Distillation on {r.get('data', 'digits')} (val split, {r.get('n_val') or 360} images)",
        "",
        f"Machine: {mc['cpu']}, {mc['cores']} cores ({', '.join(mc['isa'])}); torch {mc['torch']}, timm {mc['timm']}.",
        f"Command: `{r['command']}`",
        "",
        f"Teacher: {t['name']} trained with `vitc teacher` for {t['epochs']} epochs: **top-1 {t['top1']:.2f}%**"
        + (f" ({t['dir']})." if t.get("dir") else "."),
        f"Student: {s['name']} at img {s['img_size']}, patch {s['patch_size']}, {s['epochs']} epochs, lr {s['lr']} "
        f"{s['extra']}; final-epoch weights (not best-of-run).",
        "",
        f"Rows none/hard/soft: --amp {r.get('amp', 'bf16')} for student and teacher; hard-fp32: both in fp32.",
        "",
        "| distillation | seeds | deployed top-1 (avg of heads) | class head | dist head |",
        "|---|---|---|---|---|",
    ]
    for name, sm in r["summary"].items():
        n = len(r["runs"][name])
        cell = lambda k: f"{sm[k][0]:.2f} ± {sm[k][1]:.2f}" if n > 1 else f"{sm[k][0]:.2f} (one seed)"
        lines.append(f"| {name} | {n} | **{cell('top1_avg')}** | {cell('top1_cls')} | {cell('top1_dist')} |")
    d = r.get("teacher_label_disagreement_pct")
    if d:
        lines += [
            "",
            "Teacher hard label != true label on augmented training images "
            f"({r.get('disagreement_epochs', 3)} epochs of draws): "
            + ", ".join(f"aug `{k}`: {v:.2f}%" for k, v in d.items())
            + ".",
        ]
    lines += [
        "",
        "Per seed (deployed top-1; wall time of the run): "
        + "; ".join(
            f"{name}: "
            + ", ".join(f"{x['top1_avg']:.2f}" + (f" ({x['wall_s'] / 60:.1f} min)" if x["wall_s"] else "") for x in rs)
            for name, rs in r["runs"].items()
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
