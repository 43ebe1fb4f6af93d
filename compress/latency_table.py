"""The latency of candidate ViT structures on one deployment runtime, measured, cached and modelled.

A candidate is (blocks kept, share of channels torch-pruning removes, input size). Each is built with random
weights (the values do not change latency), exported and quantized with the runtime's own recipe, and timed
by the bench's isolated worker (one process per measurement, as benchmark_app times). Every round times the
unpruned model too, and a candidate's figure is its p50 over the bracketing reference p50s of that round: a
ratio, which this VM's speed drift (up to 2x from hour to hour) leaves intact.

Only three depths per (width, input size) family are measured; the latency is a line in depth (each block
is the same ops at the same shape), fitted on the shallowest and the deepest, and the middle one is held out
to report the model's error. The table is cached as JSON keyed by CPU id, runtime and version, recipe,
threads and shape, and reused across runs.

Written by hand: no library measures a latency table on a CPU runtime (HALP's and MDP's code is GPU/CNN-only).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from vitc import checkpoint as ckpt
from vitc.budget import RUNTIMES, Budget  # noqa: F401  (Budget: the latency module's public name too)
from vitc.errors import ConfigError

TABLE_FORMAT = "vitc-latency-table/1"
TIMING = {"warmup": 10, "warmup_seconds": 0.5, "min_runs": 30, "min_seconds": 1.0}
REF_EVERY = 4  # a reference measurement after every this many candidates in a round


@dataclass(frozen=True)
class Candidate:
    depth: int
    width: float  # share of channels torch-pruning removes (embedding, head dims, MLP); 0: none
    img_size: int

    @property
    def key(self) -> str:
        return f"d{self.depth}-w{self.width:g}-i{self.img_size}"


@dataclass(frozen=True)
class Base:
    """The unpruned student the table is for: timm name, its constructor overrides, its depth."""

    name: str
    overrides: dict
    depth: int
    round_to: int | None

    @property
    def img_size(self) -> int:
        return int(self.overrides["img_size"])

    @property
    def patch(self) -> int:
        p = self.overrides.get("patch_size", 16)
        return int(p[0] if isinstance(p, (list, tuple)) else p)

    @property
    def reference(self) -> Candidate:
        return Candidate(self.depth, 0.0, self.img_size)


def img_sizes(base: Base, token_scales: list[float]) -> list[int]:
    """Input sizes for the token-count lever: scale x the side, rounded to whole patches (>= 2 per side)."""
    out = []
    for s in token_scales:
        n = max(2, round(base.img_size * s / base.patch))
        if n * base.patch not in out and n * base.patch <= base.img_size:
            out.append(n * base.patch)
    return out


def measured_depths(depth: int) -> list[int]:
    """Shallowest, middle (held out) and deepest: the points the depth line is fitted and checked on."""
    lo = max(1, math.ceil(depth / 4))
    return sorted({lo, (lo + depth) // 2, depth})


def cache_key(base: Base, runtime_name: str, threads: int) -> dict:
    from vitc.runtime import cpu_id

    target, precision, opts = RUNTIMES[runtime_name]
    return {
        "format": TABLE_FORMAT,
        "cpu": cpu_id(),
        "runtime": runtime_name,
        "runtime_version": runtime_version(target),
        "recipe": opts,
        "threads": threads,
        "model": base.name,
        "overrides": {k: base.overrides[k] for k in sorted(base.overrides) if k != "drop_path_rate"},
        "round_to": base.round_to,
        "batch": 1,
    }


def runtime_version(target: str) -> str:
    import importlib.metadata as md

    return md.version("openvino" if target == "openvino" else "onnxruntime")


def cache_path(key: dict, table: str | Path | None = None) -> Path:
    if table:
        return Path(table)
    root = Path(os.environ.get("VITC_CACHE_DIR") or Path.home() / ".cache" / "vitc") / "latency"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return root / f"{key['model']}-{key['runtime']}-{digest}.json"


def read_cache(path: Path, key: dict) -> dict:
    """The entries measured before under this exact key; another key (a new runtime version, CPU, threads or
    shape) measures afresh. A --table file written under another key is refused rather than overwritten."""
    if not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"latency table {path} cannot be read ({e})", "delete it to measure afresh") from None
    if d.get("key") == key:
        return d.get("entries", {})
    if path.parent.name != "latency":  # a user's --table file: theirs, not ours to replace
        raise ConfigError(
            f"latency table {path} was measured under another key ({_diff(d.get('key') or {}, key)})",
            "pass another --table file, or delete this one to measure afresh",
        )
    return {}


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in keys[:3]) or "format"


def random_model(base: Base, c: Candidate) -> torch.nn.Module:
    """The candidate's architecture with random weights: the first `depth` blocks, then torch-pruning's cut."""
    import timm

    from vitc.structure import keep_blocks

    from .widths import cut_widths

    torch.manual_seed(0)
    model = timm.create_model(base.name, pretrained=False, **{**base.overrides, "img_size": c.img_size}).eval()
    keep_blocks(model, list(range(c.depth)))
    if c.width > 0:
        cut_widths(model, c.width, 0.0, "magnitude", base.round_to, torch.zeros(1, 3, c.img_size, c.img_size))
    return model


def export_candidate(base: Base, c: Candidate, runtime_name: str, folder: Path) -> Path:
    from vitc import export

    target, precision, extra = RUNTIMES[runtime_name]
    mod = export.get(target)
    x = torch.randn(1, 3, c.img_size, c.img_size)
    g = torch.Generator().manual_seed(0)
    calib = torch.randn(32, 3, c.img_size, c.img_size, generator=g) if precision == "int8" else None
    opts = mod.Options(precision=precision, dynamic_batch=False, calibration=calib, **extra)
    return mod.export(random_model(base, c), x, folder / f"{c.key}{mod.SUFFIX}", opts)


def time_one(path: Path, runtime_name: str, threads: int, img: int, folder: Path) -> float:
    """p50 (ms) of one artifact at batch 1 in a fresh worker process."""
    from vitc.benchmarks.launcher import loader_for, run_worker, write_inputs

    x = np.random.default_rng(0).standard_normal((1, 3, img, img)).astype(np.float32)
    inputs = write_inputs(x, (1,), folder, f"x{img}")
    res = run_worker(loader_for("artifact", RUNTIMES[runtime_name][0]), str(path), threads, inputs, TIMING)
    return float(res["batches"][0]["p50_ms"])


@dataclass
class Table:
    key: dict
    path: Path
    entries: dict  # candidate key -> {"depth", "width", "img_size", "ratio", "ratio_rounds", "p50_ms_rounds"}
    reference: str = ""  # the unpruned model's key: its ratio is 1 by definition (it is the denominator)

    @property
    def ref_ms(self) -> float:
        return float(np.median([e["ref_ms"] for e in self.entries.values()]))

    def lines(self) -> dict[tuple[float, int], tuple[float, float]]:
        """(width, img) -> (intercept, slope) of latency ratio in depth, fitted on each family's shallowest
        and deepest measured points."""
        fams: dict[tuple[float, int], list[tuple[int, float]]] = {}
        for e in self.entries.values():
            fams.setdefault((e["width"], e["img_size"]), []).append((e["depth"], e["ratio"]))
        out = {}
        for f, pts in fams.items():
            pts.sort()
            (d0, r0), (d1, r1) = pts[0], pts[-1]
            slope = (r1 - r0) / (d1 - d0) if d1 != d0 else 0.0
            out[f] = (r0 - slope * d0, slope)
        return out

    def predict(self, c: Candidate) -> float:
        if c.key == self.reference:
            return 1.0
        e = self.entries.get(c.key)
        if e is not None:
            return e["ratio"]
        a, b = self.lines()[(c.width, c.img_size)]
        return a + b * c.depth

    def model_error(self) -> dict:
        """The depth lines' error on the middle depths, measured but not fitted on (relative, in %)."""
        lines, errs = self.lines(), []
        for e in self.entries.values():
            fam = [
                x["depth"] for x in self.entries.values() if (x["width"], x["img_size"]) == (e["width"], e["img_size"])
            ]
            if min(fam) < e["depth"] < max(fam):
                a, b = lines[(e["width"], e["img_size"])]
                errs.append({"key": _key(e), "measured": e["ratio"], "predicted": a + b * e["depth"]})
        rel = [100 * abs(x["predicted"] - x["measured"]) / x["measured"] for x in errs]
        return {
            "points": errs,
            "mean_abs_pct": float(np.mean(rel)) if rel else None,
            "max_abs_pct": max(rel, default=None),
        }


def _key(e: dict) -> str:
    return Candidate(e["depth"], e["width"], e["img_size"]).key


def grid(base: Base, widths: list[float], token_scales: list[float]) -> list[Candidate]:
    """What is measured: three depths for every (width, input size) family; the reference first."""
    out = [base.reference]
    for s in img_sizes(base, token_scales):
        for w in widths:
            out += [Candidate(d, float(w), s) for d in measured_depths(base.depth)]
    return list(dict.fromkeys(out))


def every_candidate(base: Base, widths: list[float], token_scales: list[float]) -> list[Candidate]:
    lo = measured_depths(base.depth)[0]
    return [
        Candidate(d, float(w), s)
        for s in img_sizes(base, token_scales)
        for w in widths
        for d in range(lo, base.depth + 1)
    ]


def build(
    base: Base,
    runtime_name: str,
    threads: int,
    widths: list[float],
    token_scales: list[float],
    rounds: int = 2,
    table: str | Path | None = None,
    console: Console | None = None,
    extra: list[Candidate] | None = None,
) -> Table:
    """Measure what the cache lacks of the grid (and `extra`), in `rounds` interleaved rounds; save; -> Table."""
    from vitc.progress import Steps

    if runtime_name not in RUNTIMES:
        raise ConfigError(f"runtime {runtime_name!r} is not one of {', '.join(RUNTIMES)}")
    console = console or Console()
    key = cache_key(base, runtime_name, threads)
    path = cache_path(key, table)
    entries = read_cache(path, key)
    todo = [c for c in [*grid(base, widths, token_scales), *(extra or [])] if c.key not in entries]
    todo = list(dict.fromkeys(todo))
    if todo:
        console.print(
            f"latency table {path}: measuring {len(todo)} structures on {runtime_name} ({threads} threads), "
            f"{rounds} rounds, {len(entries)} cached",
            highlight=False,
        )
        entries.update(_measure(base, runtime_name, threads, todo, rounds, console, Steps))
        path.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(path, {"key": key, "entries": entries})
    else:
        console.print(f"latency table {path}: all {len(entries)} structures cached", highlight=False)
    return Table(key, path, entries, base.reference.key)


def _measure(base: Base, runtime_name: str, threads: int, todo: list[Candidate], rounds: int, console, Steps) -> dict:
    ref = base.reference
    n_refs = math.ceil(len(todo) / REF_EVERY) + 1
    with tempfile.TemporaryDirectory(prefix="vitc-latency-") as tmp:
        folder = Path(tmp)
        files: dict[str, Path] = {}
        with Steps("export candidates", total=len(todo) + 1, console=console, unit="model") as p:
            for c in [ref, *todo]:
                if c.key not in files:
                    files[c.key] = export_candidate(base, c, runtime_name, folder)
                p.advance(1, info=c.key)
        times: dict[str, list[float]] = {c.key: [] for c in todo}
        ratios: dict[str, list[float]] = {c.key: [] for c in todo}
        refs_ms: dict[str, list[float]] = {c.key: [] for c in todo}
        with Steps("time candidates", total=rounds * (len(todo) + n_refs), console=console, unit="run") as p:
            for r in range(rounds):
                order = todo if r % 2 == 0 else todo[::-1]  # alternate the order: no candidate always runs late
                last_ref = time_one(files[ref.key], runtime_name, threads, ref.img_size, folder)
                p.advance(1, info=f"round {r + 1}: reference {last_ref:.3f} ms")
                pending: list[tuple[Candidate, float]] = []
                for i, c in enumerate(order):
                    pending.append((c, time_one(files[c.key], runtime_name, threads, c.img_size, folder)))
                    p.advance(1, info=f"round {r + 1}: {c.key} {pending[-1][1]:.3f} ms")
                    if len(pending) == REF_EVERY or i == len(order) - 1:
                        nxt = time_one(files[ref.key], runtime_name, threads, ref.img_size, folder)
                        p.advance(1, info=f"round {r + 1}: reference {nxt:.3f} ms")
                        for cc, ms in pending:  # against the mean of the references on either side
                            refs_ms[cc.key].append((last_ref + nxt) / 2)
                            times[cc.key].append(ms)
                            ratios[cc.key].append(ms / refs_ms[cc.key][-1])
                        pending, last_ref = [], nxt
    return {
        c.key: {
            "depth": c.depth,
            "width": c.width,
            "img_size": c.img_size,
            "ratio": float(np.median(ratios[c.key])),
            "ratio_rounds": ratios[c.key],
            "p50_ms_rounds": times[c.key],
            "ref_ms": float(np.median(refs_ms[c.key])),
        }
        for c in todo
    }
