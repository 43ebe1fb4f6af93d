"""The latency-pruning study's report: results/prune-latency/{README.md, summary.json, pareto.png, bench/}.

Every figure is read from the study's own files: each run's vitc.json (the choice, top-1, per-epoch metrics),
its wall.json, the latency tables, and the one bench run that timed every int8 IR."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from vitc import checkpoint as ckpt
from vitc.structure import summary

BYHAND = "baseline-openvino-nncf-default-int8"  # the unpruned student, NNCF defaults, by hand
WITHIN = 0.10  # a pruned IR's measured ratio within this share of its budget ratio
TARGET, STRETCH, MAX_DROP = 0.33, 0.25, 1.0


def _paired(row: dict, ref: dict) -> float:
    """Median over rounds of row/ref, both timed in the same interleaved round."""
    a, b = row["latency"]["p50_rounds_ms"], ref["latency"]["p50_rounds_ms"]
    return statistics.median(x / y for x, y in zip(a, b))


def collect(work: Path, names: list[str]) -> dict:
    bench = json.loads((work / "bench" / "bench.json").read_text())
    rows = {r["artifact"]: r for r in bench["rows"]}
    hand = rows[BYHAND]
    runs = []
    for name in names:
        meta, row = ckpt.load_meta(work / name), rows[f"{name}-openvino-int8"]
        pr = meta["pruning"]
        ch = pr.get("chosen", {})
        runs.append(
            {
                "name": name,
                "budget": pr.get("latency_budget"),
                "budget_ratio": pr.get("budget_ratio"),
                "ratio_arg": pr.get("ratio"),
                "chosen": ch.get("key"),
                "kept_blocks": ch.get("kept_blocks"),
                "predicted": ch.get("predicted"),
                "measured_table": ch.get("measured"),
                "widths": summary(meta["model"]["structure"]),
                "img_size": meta["preprocess"]["input_size"][-1],
                "gflops": pr["after_pruning"]["gflops"],
                "top1_after_cut": pr["after_pruning"]["top1"],
                "top1": meta["metrics"]["top1"],
                "int8_top1": row["top1"],
                "agreement": row.get("agreement"),
                "status": row.get("status"),
                "p50_ms": row["p50_ms"],
                "ratio_measured": _paired(row, hand),
                "wall_min": json.loads((work / name / "wall.json").read_text())["wall_s"] / 60,
                "candidates": pr.get("candidates", []),
                "table_error": pr.get("table", {}).get("error"),
            }
        )
    return {"bench": bench, "rows": rows, "hand": hand, "runs": runs}


def plot(c: dict, path: Path) -> None:
    """Latency ratio vs int8 top-1; the labels sit in a column beside the axes, one per point in the points'
    vertical order, joined by leader lines: they cannot overlap however close the points are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["ratio_measured"], r["int8_top1"], r["name"]) for r in c["runs"]]
    pts.append((1.0, c["hand"]["top1"], "unpruned, NNCF defaults by hand"))
    fig, ax = plt.subplots(figsize=(8, 4.6))
    fig.subplots_adjust(right=0.62)
    for x, y, n in pts:
        ax.scatter(x, y, color="tab:red" if n.startswith("latency") else "tab:gray", zorder=3)
    ax.set_xlabel("OpenVINO int8 p50 / unpruned by-hand int8 p50 (same bench run)")
    ax.set_ylabel("int8 top-1 on the 10k test images (%)")
    ax.grid(alpha=0.3)
    y0, y1 = ax.get_ylim()
    order = sorted(pts, key=lambda p: p[1])
    for i, (x, y, n) in enumerate(order):
        ty = y0 + (y1 - y0) * (i + 0.5) / len(order)
        ax.annotate(
            f"{n} ({x:.2f}x, {y:.2f}%)",
            (x, y),
            xytext=(1.03, (ty - y0) / (y1 - y0)),
            textcoords="axes fraction",
            fontsize=8,
            va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"},
        )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table_md(path: Path) -> list[str]:
    t = json.loads(path.read_text())
    out = ["| structure | measured ratio (median of rounds) | rounds | p50 ms per round |", "|---|---:|---|---|"]
    for k, e in sorted(t["entries"].items(), key=lambda kv: -kv[1]["ratio"]):
        out.append(
            f"| {k} | {e['ratio']:.3f} | {', '.join(f'{r:.3f}' for r in e['ratio_rounds'])} | "
            f"{', '.join(f'{m:.3f}' for m in e['p50_ms_rounds'])} |"
        )
    return out


def write(work: Path, out: Path, names: list[str], budgets: list[str], command: str) -> None:
    c = collect(work, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench").mkdir(exist_ok=True)
    for f in ("bench.json", "bench.csv", "report.md"):
        if (work / "bench" / f).is_file():
            shutil.copyfile(work / "bench" / f, out / "bench" / f)
    plot(c, out / "pareto.png")
    summ = {k: v for k, v in c.items() if k in ("runs",)}
    summ["byhand_p50_ms"] = c["hand"]["p50_ms"]
    ckpt.write_json(out / "summary.json", summ)
    env = c["bench"]["environment"]
    lines = [
        "# Latency-first pruning: `vitc prune --latency` on the Fashion-MNIST student",
        "",
        f"Machine: {env.get('cpu')} (family {(env.get('cpu_id') or {}).get('family')}, model "
        f"{(env.get('cpu_id') or {}).get('model')}, stepping {(env.get('cpu_id') or {}).get('stepping')}), "
        f"{env.get('cores')} cores; "
        + ", ".join(
            f"{k} {v}"
            for k, v in {**env, **env.get("versions", {})}.items()
            if k in ("torch", "openvino", "nncf", "timm")
        )
        + ".",
        f"Command: `{command}`",
        "",
        *reading(c),
        "",
        "## Runs (int8: OpenVINO, NNCF defaults; timed in one isolated bench run)",
        "",
        "| run | structure (input px; kept blocks) | GFLOPs | fp32 top-1 | int8 top-1 | int8 p50 ms | "
        "ratio to by-hand | budget | predicted (table) | re-distill wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in c["runs"]:
        pred = "" if r["predicted"] is None else f"{r['predicted']:.3f}x"
        lines.append(
            f"| {r['name']} | {r['widths']} ({r['img_size']} px; {r['kept_blocks'] or 'all'}) | {r['gflops']:.3f} | "
            f"{r['top1']:.2f} | {r['int8_top1']:.2f} | {r['p50_ms']:.3f} | **{r['ratio_measured']:.3f}x** | "
            f"{r['budget'] or '--ratio ' + str(r['ratio_arg'])} | "
            f"{pred} | {r['wall_min']:.1f} min |"
        )
    lines += [
        "",
        f"By hand (unpruned student, NNCF defaults): p50 {c['hand']['p50_ms']:.3f} ms, top-1 {c['hand']['top1']:.2f}%.",
        "",
        "Validation of the int8 IRs against their fp32 checkpoints on the 10k test images (top-1 agreement; status): "
        + "; ".join(f"{r['name']} {_agree(r['agreement'])} ({r['status']})" for r in c["runs"])
        + ". The `validation failed` status here (the by-hand baseline has it too) is the max-abs-diff tolerance"
        " (1.5 logits) missed on one image"
        " or a few out of 10,000 by NNCF defaults (the recipe the table and the by-hand baseline use); the IRs are"
        " timed and reported as they are.",
        "",
        "![pareto](pareto.png)",
        "",
        "## Candidates each budget scored (loss right after the cut, before re-training; lowest chosen)",
        "",
    ]
    for r in c["runs"]:
        if r["candidates"]:
            scored = [f"{x['key']} {x['predicted']:.3f}x loss {x['loss']:.4f}" for x in r["candidates"]]
            lines.append(f"- **{r['name']}**: " + "; ".join(scored))
    for f in sorted(out.glob("ranking-*.json")):
        rk = json.loads(f.read_text())
        lines += [
            "",
            f"## Does the criterion rank the candidates? (`{f.name}`)",
            "",
            f"Each candidate the {Path(rk['run']).name} run scored was cut again and re-distilled {rk['steps']} steps "
            f"(batch {rk['batch']}, hard, un-augmented train images), then scored on the held-out part of train: "
            f"Spearman's rho between loss-after-cut and held-out top-1 (descending) **{rk['spearman_rho']:.2f}** "
            f"(p = {rk['p_value']:.4f}, {len(rk['rows'])} candidates, {rk['wall_s'] / 60:.1f} min).",
            "",
            "| candidate | loss right after the cut | held-out top-1 after the short re-distillation |",
            "|---|---:|---:|",
            *[
                f"| {r['key']} | {r['loss']:.4f} | {r['holdout_top1_after']:.2f}% |"
                for r in sorted(rk["rows"], key=lambda r: r["loss"])
            ],
        ]
    for f in sorted(out.glob("table-*-openvino-int8.json")):
        lines += ["", f"## Latency table `{f.name}`", "", *_table_md(f)]
    if (out / "table-224.json").is_file():
        t = json.loads((out / "table-224.json").read_text())
        lines += ["", "## 224 px, patch 16 (random weights, latency only): the structures chosen per budget", ""]
        lines += [
            "| budget | chosen | predicted | measured alone | measured vs budget | under budget | within 10% |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for b, v in t["chosen"].items():
            dev = v["measured"] / v["target"] - 1
            lines.append(
                f"| {b} | {v['key']}{' (a measured grid point)' if v['predicted'] == v['measured'] else ''} | "
                f"{v['predicted']:.3f}x | {v['measured']:.3f}x | {dev:+.0%} | "
                f"{'yes' if dev <= 0 else 'no'} | {'yes' if abs(dev) <= WITHIN else 'no'} |"
            )
        lines.append(
            "\nThe chosen structure is the candidate predicted closest under the budget; on this coarse grid (whole "
            "blocks, 3 widths, 2 input sizes) the next one up is predicted over it, so a measured ratio can sit more "
            "than 10% under its budget, by the grid's step plus the table's prediction error (a measured grid point's "
            "prediction is its measurement). A budget is a ceiling: "
            + (
                "every row here meets it."
                if all(v["measured"] <= v["target"] for v in t["chosen"].values())
                else "the rows marked no go over it, by the table's prediction error."
            )
        )
        lines.append(
            f"\nDepth-line error on the held-out middle depths: {_err(t['error'])}; "
            f"unpruned reference p50 {t['ref_ms']:.3f} ms."
        )
        tab = json.loads((out / "table-224-openvino-int8.json").read_text())["entries"]
        ref = tab.get("d12-w0-i224")
        if ref:
            lines.append(
                f"The unpruned model timed as a candidate against its own bracketing references read "
                f"{', '.join(f'{r:.3f}' for r in ref['ratio_rounds'])}x over the rounds: the noise floor of this table "
                f"(a slow spell put one reference at {max(max(e['p50_ms_rounds']) for e in tab.values()):.1f} ms "
                f"against a median of {t['ref_ms']:.1f})."
            )
    (out / "README.md").write_text("\n".join(lines) + "\n")


def _agree(a) -> str:
    return "n/a" if a is None else f"{100 * a:.2f}%" if a <= 1 else f"{a:.2f}%"


def _err(e: dict | None) -> str:
    if not e or e.get("mean_abs_pct") is None:
        return "n/a"
    return f"mean {e['mean_abs_pct']:.1f}%, max {e['max_abs_pct']:.1f}% over {len(e['points'])} points"


def why_missed(best: dict, ctrl: dict, runs: list[dict], hand_ms: float) -> str:
    """The measured facts behind a missed target: the same structure timed twice, the control's read of the same
    graph as the by-hand IR, and what the next faster run costs in top-1."""
    parts = [
        f"{best['chosen']} was predicted {best['predicted']:.3f}x by the table and timed {best['measured_table']:.3f}x "
        f"alone in it, then {best['ratio_measured']:.3f}x in the bench"
        if best.get("measured_table")
        else f"{best['chosen']} measured {best['ratio_measured']:.3f}x in the bench",
        f"the ratio is the median of per-round paired ratios; the rows' own medians give {best['p50_ms']:.3f} / "
        f"{hand_ms:.3f} ms = {best['p50_ms'] / hand_ms:.3f}x (and {ctrl['p50_ms'] / hand_ms:.3f}x for the control)",
        f"the control, the unpruned graph the by-hand IR also has, read {ctrl['ratio_measured']:.3f}x of it in the "
        "same rounds (this VM's noise on the pairing)",
    ]
    faster = [r for r in runs if "latency" in r["name"] and r["ratio_measured"] < best["ratio_measured"]]
    if faster:
        f = max(faster, key=lambda r: r["ratio_measured"])
        parts.append(
            f"the next faster run, {f['name']} at {f['ratio_measured']:.3f}x, is "
            f"{ctrl['int8_top1'] - f['int8_top1']:.2f} points below the control"
        )
    return "; ".join(parts) + "."


def reading(c: dict) -> list[str]:
    runs = {r["name"]: r for r in c["runs"]}
    ctrl = runs.get("control")
    out = ["## Reading", ""]
    for r in c["runs"]:
        if r["budget_ratio"] and r["name"] != "control":
            dev = r["ratio_measured"] / r["budget_ratio"] - 1
            out.append(
                f"- {r['name']}: measured {r['ratio_measured']:.3f}x against a {r['budget_ratio']:.3f}x budget "
                f"({dev:+.0%}; {'within' if abs(dev) <= WITHIN else 'outside'} 10%), int8 top-1 {r['int8_top1']:.2f}%"
                + (f" ({r['int8_top1'] - ctrl['int8_top1']:+.2f} points vs the control)" if ctrl else "")
            )
    if ctrl:
        ok = [r for r in c["runs"] if "latency" in r["name"] and r["int8_top1"] >= ctrl["int8_top1"] - MAX_DROP]
        best = min(ok, key=lambda r: r["ratio_measured"], default=None)
        head = f"- Target (<= {TARGET}x the by-hand int8, within {MAX_DROP} point of the control's {ctrl['int8_top1']:.2f}%): "
        if best is None:
            out.append(head + "no pruned run within 1 point")
        else:
            x = best["ratio_measured"]
            verdict = "missed" if x > TARGET else "met" + (f", stretch {STRETCH}x met" if x <= STRETCH else "")
            out.append(head + f"best {best['name']} at {x:.3f}x, {best['int8_top1']:.2f}% -> {verdict}")
            if x > TARGET:
                out.append("- Why missed, measured: " + why_missed(best, ctrl, c["runs"], c["hand"]["p50_ms"]))
    return out
