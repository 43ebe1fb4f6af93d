"""Issue 26's study: `vitc prune --latency` on the Fashion-MNIST student, and the latency table at 224.

    python -m benchmarks.studies.prune_latency --phases table224 --out results/prune-latency
    python -m benchmarks.studies.prune_latency --phases prune,export,bench,report --budgets 0.5x,0.33x,0.25x \\
        --epochs 1 --out results/prune-latency

Phases:
- table224: deit_tiny at 224/16 with random weights, latency only: the table, and for each budget the structure
  closest under it (no accuracy to rank by), timed on its own against the budget.
- prune: `vitc prune --latency B` of runs/fashion/student for each budget, the control (`--latency 1x`: the
  unpruned student, re-distilled for the same epochs) and `--ratio R` for the ratio comparison.
- export: each result to OpenVINO int8 with the table's recipe (NNCF defaults), validated on the 10k test images.
- bench: one isolated `vitc bench` run: the unpruned student, its by-hand NNCF-defaults baseline, the control, the
  pruned and ratio-pruned IRs.
- report: results/prune-latency/README.md and summary.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from benchmarks.studies.prune_sweep import run_vitc
from vitc import checkpoint as ckpt

STUDENT = Path("runs/fashion/student")
WORK = Path("runs/prune-latency")
COMMANDS = (  # what made the committed results (the report phase may be re-run alone)
    "python -m benchmarks.studies.prune_latency --phases prune,ranking,export,bench,report --budgets 0.5x,0.33x,0.25x "
    "--epochs 1 --out results/prune-latency`, then `python -m benchmarks.studies.prune_latency "
    "--phases table224,report --rounds 5 --out results/prune-latency"
)
PHASES = ("table224", "prune", "ranking", "export", "bench", "report")
RANK_STEPS, RANK_BATCH = 100, 128  # the short re-distillation each scored candidate gets in the ranking check


def name_of(budget: str) -> str:
    return "control" if budget == "1x" else f"latency-{budget}"


def table224(out: Path, budgets: list[str], rounds: int) -> None:
    from vitc.budget import Budget
    from vitc.compress import latency_table as lt
    from vitc.compress.prune_latency import shortlist

    base = lt.Base("deit_tiny_distilled_patch16_224", {"img_size": 224, "patch_size": 16, "num_classes": 1000}, 12, 16)
    widths, scales = [0.0, 0.25, 0.5], [1.0, 0.75]
    path = out / "table-224-openvino-int8.json"
    t0 = time.perf_counter()
    t = lt.build(base, "openvino-int8", 2, widths, scales, rounds=rounds, table=path)
    chosen = {}
    for b in budgets:
        target, picks = shortlist(t, base, Budget.parse(b), widths, scales)
        chosen[b] = {"key": picks[0].candidate.key, "predicted": picks[0].predicted, "target": target}
    # each chosen structure timed as a table entry of its own (against the reference in the same rounds)
    t = lt.build(
        base, "openvino-int8", 2, widths, scales, rounds=rounds, table=path,
        extra=[c for c in lt.every_candidate(base, widths, scales) if c.key in {v["key"] for v in chosen.values()}],
    )  # fmt: skip
    for b, v in chosen.items():
        v["measured"] = t.entries[v["key"]]["ratio"]
    ckpt.write_json(
        out / "table-224.json",
        {"wall_s": time.perf_counter() - t0, "ref_ms": t.ref_ms, "error": t.model_error(), "chosen": chosen},
    )


def prune(budgets: list[str], ratio: float, epochs: int, lr: float, table: Path, retrain: bool) -> None:
    jobs = [(name_of(b), ["--latency", b]) for b in ["1x", *budgets]] + [(f"ratio-{ratio:g}", ["--ratio", ratio])]
    for name, how in jobs:
        out = WORK / name
        if ckpt.is_checkpoint_dir(out) and (out / "wall.json").is_file() and not retrain:
            print(f"{out}: done, kept", flush=True)
            continue
        extra = ["--table", table] if how[0] == "--latency" else []
        args = ["prune", STUDENT, *how, *extra, "--epochs", epochs, "--lr", lr, "--batch-size", 128, "--aug", "fashion"]
        args += ["--out", out]
        wall = run_vitc(*args, "--force")
        ckpt.write_json(out / "wall.json", {"wall_s": wall, "command": shlex.join(["vitc", *map(str, args)])})


def ranking(run: Path, out: Path) -> None:
    """How well the choice's criterion (loss right after the cut) ranks the candidates it scored: each one is cut
    again from the student and re-distilled briefly (RANK_STEPS hard-distillation steps on un-augmented train
    images), then scored on the held-out part of train; Spearman's rho between the two orders."""
    import torch
    from scipy.stats import spearmanr

    from vitc.compress.latency_table import Base, Candidate
    from vitc.compress.prune_latency import criterion, cut
    from vitc.compress.trainer import evaluate, train_step
    from vitc.config import DistillConfig, ModelArgs
    from vitc.data import eval_tensors, load_source
    from vitc.models import load_checkpoint_model

    meta = ckpt.load_meta(run)
    pr = meta["pruning"]
    student, smeta = load_checkpoint_model(STUDENT)
    pre, ov = smeta["preprocess"], smeta["model"]["overrides"]
    base = Base(smeta["model"]["name"], {**ov, "img_size": pre["input_size"][-1]}, len(student.blocks), pr["round_to"])
    src = load_source("fashion-mnist", base.img_size)
    t0 = time.perf_counter()
    rows = []
    for c in pr["candidates"]:
        d, w, i = c["key"][1:].split("-")
        cand = Candidate(int(d), float(w[1:]), int(i[1:]))
        p = {**pre, "input_size": [3, cand.img_size, cand.img_size]}
        dcfg = DistillConfig(ModelArgs(base.name, cand.img_size, ov.get("patch_size")), teacher_checkpoint="runs/fashion/teacher",
                             data="fashion-mnist", teacher_amp="off", train={"epochs": 1})  # fmt: skip
        crit = criterion(dcfg, src.classes, p, {})
        Xt, Yt = eval_tensors(type(src.train)(src.train.items[: RANK_STEPS * RANK_BATCH],
                                              src.train.targets[: RANK_STEPS * RANK_BATCH]), p)  # fmt: skip
        Xh, Yh = eval_tensors(src.holdout, p)
        torch.manual_seed(0)
        m, _ = cut(student, base, cand, pr["drop_order"], base.round_to)
        m.train().set_distilled_training(True)
        opt = torch.optim.AdamW(m.parameters(), lr=5e-4, weight_decay=0.05)
        for k in range(RANK_STEPS):
            sl = slice(k * RANK_BATCH, (k + 1) * RANK_BATCH)
            train_step(m, crit, opt, Xt[sl], Yt[sl], False)
        m.set_distilled_training(False)
        rows.append({**c, "holdout_top1_after": evaluate(m, Xh, Yh)["top1"]})
        print(
            f"{c['key']}: loss {c['loss']:.4f}, holdout top-1 after {RANK_STEPS} steps {rows[-1]['holdout_top1_after']:.2f}%"
        )
    rho = spearmanr([r["loss"] for r in rows], [-r["holdout_top1_after"] for r in rows])
    ckpt.write_json(
        out / f"ranking-{run.name}.json",
        {"run": str(run), "steps": RANK_STEPS, "batch": RANK_BATCH, "rows": rows, "spearman_rho": float(rho.statistic),
         "p_value": float(rho.pvalue), "wall_s": time.perf_counter() - t0},
    )  # fmt: skip


def export(names: list[str]) -> list[Path]:
    from vitc.export.stage import export_checkpoint

    arts = []
    for name in names:
        art = WORK / "int8" / f"{name}-openvino-int8.xml"
        if not Path(str(art) + ".json").is_file():
            m = export_checkpoint(
                WORK / name, "openvino", "int8", WORK / "int8", calib="fashion-mnist", threads=2, stem=name,
                opts={"nncf": "defaults"},
            )  # fmt: skip
            print(f"{name}: {m['status']}, top-1 {m['validation']['top1_artifact']:.2f}%", flush=True)
        arts.append(art)
    return arts


def bench(arts: list[Path], repeats: int, min_seconds: float) -> float:
    return run_vitc(
        "bench", STUDENT, *arts, "--baselines", "--batch", 1, "--repeats", repeats, "--min-seconds", min_seconds,
        "--out", WORK / "bench",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="0.5x,0.33x,0.25x")
    ap.add_argument("--ratio", type=float, default=0.5, help="the --ratio run compared at the same latency")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--rounds", type=int, default=3, help="latency table rounds")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument(
        "--rank-budget", default="0.33x", help="the run whose scored candidates the ranking check re-trains"
    )
    ap.add_argument("--out", type=Path, default=Path("results/prune-latency"))
    a = ap.parse_args(argv)
    budgets, phases = a.budgets.split(","), a.phases.split(",")
    a.out.mkdir(parents=True, exist_ok=True)
    table = a.out / "table-fashion-openvino-int8.json"
    names = [name_of(b) for b in ["1x", *budgets]] + [f"ratio-{a.ratio:g}"]
    if "table224" in phases:
        table224(a.out, budgets, a.rounds)
    if "prune" in phases:
        prune(budgets, a.ratio, a.epochs, a.lr, table, a.retrain)
    if "ranking" in phases:
        ranking(WORK / name_of(a.rank_budget), a.out)
    arts = export(names) if "export" in phases else [WORK / "int8" / f"{n}-openvino-int8.xml" for n in names]
    if "bench" in phases:
        ckpt.write_json(WORK / "bench_wall.json", {"wall_s": bench(arts, a.repeats, a.min_seconds)})
    if "report" in phases:
        from benchmarks.studies.prune_latency_report import write

        write(
            WORK,
            a.out,
            names,
            budgets,
            COMMANDS,
        )
    print(json.dumps({"done": phases}))


if __name__ == "__main__":
    main()
