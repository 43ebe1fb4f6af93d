"""Issue 17's sweep: prune the 224 student of configs/deit_tiny-224.yaml at several ratios, re-distill
each from the same teacher, quantize each with OpenVINO NNCF (vitc's own --nncf auto), and time them
all in ONE isolated `vitc bench` run next to the unpruned student's int8 IR and the by-hand baselines.
A round-to study (ratio 0.4 at round-to 8/16/32/64, pruned but not re-trained: latency only) is timed
in the same run.

    python -m benchmarks.studies.prune_sweep --settings 0.3,0.4,0.5,0.6,0.5@20 --epochs 10 \\
        --out results/prune-224-cpu            # phases: train, roundto, export, bench, report
    (a setting is RATIO or RATIO@EPOCHS; --epochs is the default)
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from vitc import checkpoint as ckpt

STUDENT = Path("runs/deit_tiny-224/distill")
UNPRUNED_INT8 = Path("runs/deit_tiny-224/quantize/student-openvino-int8.xml")
WORK = Path("runs/prune-224")
PHASES = ("train", "roundto", "export", "bench", "report")


def run_vitc(*args) -> float:
    """Run one vitc command in its own process, echoing it; -> its wall time in seconds."""
    cmd = [sys.executable, "-m", "vitc", *map(str, args)]
    print("$ " + shlex.join(["vitc", *map(str, args)]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def parse(settings: str, epochs: int) -> list[tuple[float, int]]:
    out = []
    for s in settings.split(","):
        r, _, e = s.partition("@")
        out.append((float(r), int(e) if e else epochs))
    return out


def tag(setting: tuple[float, int], default_epochs: int = 10) -> str:
    r, e = setting
    return f"r{r:.2f}" + (f"-e{e}" if e != default_epochs else "")


def train(settings: list[tuple[float, int]], lr: float, retrain: bool) -> None:
    for st in settings:
        (r, epochs), out = st, WORK / tag(st)
        if (
            ckpt.is_checkpoint_dir(out)
            and not retrain
            and len((out / "metrics.jsonl").read_text().splitlines()) == epochs
        ):
            print(f"{out}: done, kept", flush=True)
            continue
        wall = run_vitc("prune", STUDENT, "--ratio", r, "--epochs", epochs, "--lr", lr, "--out", out, "--force")
        ckpt.write_json(
            out / "wall.json",
            {
                "wall_s": wall,
                "command": f"vitc prune {STUDENT} --ratio {r} --epochs {epochs} --lr {lr} --out {out} --force",
            },
        )


def roundto(values: list[int], ratio: float) -> None:
    """Pruned, not re-trained: the widths and GFLOPs each round-to gives, and (in the bench) their int8 latency."""
    import torch

    from vitc.compress.prune import prune_model
    from vitc.config import PruneConfig
    from vitc.models import ModelSpec, load_checkpoint_model

    for n in values:
        model, meta = load_checkpoint_model(STUDENT)
        s = prune_model(model, PruneConfig(str(STUDENT), ratio=ratio, round_to=n), torch.randn(1, 3, 224, 224))
        m = meta["model"]
        spec = ModelSpec(m["name"], m["overrides"], m.get("pretrained_tag"), structure=s)
        ckpt.save_checkpoint(
            WORK / "roundto" / f"r{ratio:.2f}-rt{n}",
            model.eval(),
            {
                **meta,
                "stage": "prune",
                "model": spec.to_json(),
                "metrics": {},
                "pruning": {"ratio": ratio, "round_to": n, "retrained": False},
            },
        )


def export(settings: list[tuple[float, int]], rts: list[int], rt_ratio: float) -> list[Path]:
    from vitc.export.stage import export_checkpoint

    arts = []
    jobs = [(WORK / tag(st), f"pruned-{tag(st)}") for st in settings] + [
        (WORK / "roundto" / f"r{rt_ratio:.2f}-rt{n}", f"untrained-r{rt_ratio:.2f}-rt{n}") for n in rts
    ]
    for src, stem in jobs:
        if (WORK / "int8" / f"{stem}-openvino-int8.xml.json").is_file():
            arts.append(WORK / "int8" / f"{stem}-openvino-int8.xml")
            print(f"{stem}: exported before, kept", flush=True)
            continue
        m = export_checkpoint(
            src,
            "openvino",
            "int8",
            WORK / "int8",
            data="digits",
            calib="digits",
            calib_size=128,
            threads=2,
            stem=stem,
            opts={"nncf": "auto"},
        )
        print(f"{stem}: {m['status']}, top-1 {m['validation']['top1_artifact']:.2f}%", flush=True)
        arts.append(WORK / "int8" / m["artifact"])
    return arts


def bench(arts: list[Path], repeats: int, min_seconds: float) -> float:
    return run_vitc(
        "bench",
        STUDENT,
        UNPRUNED_INT8,
        *arts,
        "--baselines",
        "--repeats",
        repeats,
        "--min-seconds",
        min_seconds,
        "--out",
        WORK / "bench",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", "--ratios", dest="settings", default="0.3,0.4,0.5")
    ap.add_argument("--roundto", default="8,16,32,64")
    ap.add_argument(
        "--roundto-ratio",
        type=float,
        default=0.4,
        help="the ratio of the round-to study (0.5 gives one shape for 8-32)",
    )
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("results/prune-224-cpu"))
    a = ap.parse_args(argv)
    settings = parse(a.settings, a.epochs)
    rts = [int(x) for x in a.roundto.split(",")] if a.roundto else []
    phases = a.phases.split(",")
    if "train" in phases:
        train(settings, a.lr, a.retrain)
    if "roundto" in phases:
        roundto(rts, a.roundto_ratio)
    arts = export(settings, rts, a.roundto_ratio) if "export" in phases else sorted((WORK / "int8").glob("*.xml"))
    if "bench" in phases:
        ckpt.write_json(WORK / "bench_wall.json", {"wall_s": bench(arts, a.repeats, a.min_seconds)})
    if "report" in phases:
        from benchmarks.studies.prune_report import write

        write(
            WORK,
            a.out,
            settings,
            rts,
            a.roundto_ratio,
            a.epochs,
            a.lr,
            " ".join(["python -m benchmarks.studies.prune_sweep", *(argv or sys.argv[1:])]),
        )


if __name__ == "__main__":
    main()
