"""`vitc bench`: one row per artifact (target x precision) with status, size, accuracy, latency,
throughput and efficiency against this CPU's measured peak. One failing artifact never stops the
others: its row says what went wrong.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from vitc import checkpoint as ckpt
from vitc.errors import ConfigError, VitcError

from . import crosscheck, peak
from .timing import images_per_second, time_calls

SKIPPED_FILE = "skipped.json"  # written by the pipeline for targets that cannot run here


@dataclass
class BenchConfig:
    threads: int = 2
    batch: tuple[int, ...] = (1, 16)   # the first is the latency batch, the others throughput batches
    warmup: int = 10
    warmup_seconds: float = 1.0
    min_runs: int = 50
    min_seconds: float = 2.0
    data: str | None = None            # val data for top-1 (default: the source checkpoint's)
    crosscheck: bool = True            # benchmark_app / bare ORT loop beside the OpenVINO / ONNX rows
    remeasure_peak: bool = False
    eval_batch: int = 32

    def __post_init__(self):
        self.batch = tuple(self.batch)
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ConfigError(f"bench.threads: must be an integer >= 1, got {self.threads!r}")
        if not self.batch or any(not isinstance(b, int) or b < 1 for b in self.batch):
            raise ConfigError(f"bench.batch: must be positive integers, e.g. 1,16; got {self.batch!r}")
        if self.min_runs < 1 or self.min_seconds < 0 or self.warmup < 0 or self.warmup_seconds < 0:
            raise ConfigError("bench: need min_runs >= 1, min_seconds >= 0, warmup >= 0, warmup_seconds >= 0")


@dataclass
class Item:
    kind: str                  # artifact | checkpoint | skipped
    path: Path | None
    target: str
    precision: str
    name: str
    manifest: dict = field(default_factory=dict)
    reason: str = ""


def discover(paths: list[Path]) -> list[Item]:
    """Artifacts (a file with its manifest, or every manifest in a dir), checkpoint dirs (an eager
    PyTorch row) and the pipeline's skipped.json entries."""
    from vitc import export

    suffixes = export.by_suffix()
    items: list[Item] = []
    for p in map(Path, paths):
        if not p.exists():
            raise VitcError(f"{p} does not exist", "pass export dirs, artifacts or checkpoint dirs")
        if p.is_file():
            if p.suffix not in suffixes:
                raise VitcError(f"{p.name} is not an artifact vitc knows ({', '.join(suffixes)})", "pass an artifact written by `vitc export`")
            items.append(_artifact(p))
            continue
        if ckpt.is_checkpoint_dir(p):
            meta = ckpt.load_meta(p)
            q = meta.get("quantization")
            items.append(Item("checkpoint", p, "pytorch", "int8" if q else "fp32", f"{p.name}-pytorch-{'int8' if q else 'fp32'}"))
        for m in sorted(p.glob("*.json")):
            art = m.with_suffix("")
            if art.suffix in suffixes and art.exists():
                items.append(_artifact(art))
        sk = p / SKIPPED_FILE
        if sk.is_file():
            for s in json.loads(sk.read_text()):
                items.append(Item("skipped", None, s["target"], s["precision"], f"{s['target']}-{s['precision']}", reason=s["reason"]))
    if not items:
        raise VitcError(f"no artifacts or checkpoints found in {', '.join(map(str, paths))}",
                        "export some first: vitc export CHECKPOINT --target onnx --out DIR")
    return items


def _artifact(p: Path) -> Item:
    from vitc.export.stage import read_manifest

    m = read_manifest(p)
    return Item("artifact", p, m["target"], m["precision"], p.stem if p.suffix != ".xml" else p.name[:-4], manifest=m)


class _Sources:
    """Per source checkpoint, computed once: val tensors, fp32 PyTorch logits, GFLOPs per image."""

    def __init__(self, data: str | None, eval_batch: int):
        self.data, self.eval_batch, self._cache = data, eval_batch, {}

    def get(self, ckpt_dir: str | None, pre: dict, classes: list) -> dict:
        from vitc.data import eval_tensors, load_source
        from vitc.inspect import gflops
        from vitc.models import load_checkpoint_model
        from vitc.validate import reference_logits

        key = (ckpt_dir, json.dumps(pre, sort_keys=True))
        if key in self._cache:
            return self._cache[key]
        model, meta = (load_checkpoint_model(ckpt_dir) if ckpt_dir and ckpt.is_checkpoint_dir(ckpt_dir) else (None, {}))
        data = self.data or meta.get("config", {}).get("data") or "digits"
        src = load_source(data, pre["input_size"][-1])
        if src.classes != list(classes):
            raise VitcError(f"--data {data} has other classes than the artifact", "pass the dataset it was trained on with --data")
        X, Y = eval_tensors(src.val, pre)
        s = {"X": X.numpy(), "Y": Y.numpy(), "data": data,
             "ref": reference_logits(model, X) if model is not None else None,
             "gflops": gflops(model, pre["input_size"]) if model is not None else None}
        self._cache[key] = s
        return s


def _load(item: Item, threads: int):
    """-> (fn, preprocess, classes, source checkpoint dir)."""
    from vitc import export

    if item.kind == "checkpoint":
        from vitc.inspect import runner

        fn, pre, classes = runner(item.path, threads)
        meta = ckpt.load_meta(item.path)
        src = (meta.get("inputs") or {}).get("checkpoint") or {}  # a quantized checkpoint names its fp32 source
        return fn, pre, classes, (src.get("path") if ckpt.is_checkpoint_dir(src.get("path") or "") else str(item.path))
    m = item.manifest
    return export.get(item.target).load(item.path, threads), m["preprocess"], m["classes"], m["source"].get("checkpoint")


def _size(item: Item) -> float | None:
    if item.kind == "artifact":
        return item.manifest["size_bytes"] / 1e6
    if item.kind == "checkpoint":
        return (item.path / ckpt.WEIGHTS).stat().st_size / 1e6
    return None


def _batch(X: np.ndarray, b: int) -> np.ndarray:
    """The first b val images (repeated when the split is smaller than b), contiguous."""
    return np.ascontiguousarray(np.repeat(X, -(-b // len(X)), 0)[:b])


def bench_item(item: Item, cfg: BenchConfig, sources: _Sources, peaks: dict) -> dict:
    from vitc import export
    from vitc.export.stage import TOLERANCE
    from vitc.validate import compare, run_artifact

    row = {"artifact": item.name, "target": item.target, "precision": item.precision, "path": str(item.path) if item.path else None,
           "status": "", "size_mb": _size(item), "threads": cfg.threads}
    if item.kind == "skipped":
        return {**row, "status": f"skipped: {item.reason}"}
    if item.kind == "artifact":
        why = export.get(item.target).check()
        if why:
            return {**row, "status": f"skipped: {why}"}
    fn, pre, classes, source = _load(item, cfg.threads)
    s = sources.get(source, pre, classes)
    X, Y = s["X"], s["Y"]
    got = run_artifact(fn, torch.from_numpy(X), cfg.eval_batch)
    row["top1"] = 100.0 * float((got.argmax(1) == Y).mean())
    row["data"] = s["data"]
    if s["ref"] is not None:
        v = compare(s["ref"], got, Y, *TOLERANCE["int8" if item.precision == "int8" else item.precision])
        row.update(top1_fp32=v.top1_reference, agreement=100.0 * v.top1_agreement, max_abs_diff=v.max_abs_diff)
        row["status"] = "ok" if v.passed else "validation failed"
    else:
        row["status"] = "ok (no fp32 reference: source checkpoint not found)"
    lat_b, *tp_b = cfg.batch
    timing = dict(warmup=cfg.warmup, warmup_seconds=cfg.warmup_seconds, min_runs=cfg.min_runs, min_seconds=cfg.min_seconds)
    x1 = _batch(X, lat_b)  # real images, prepared outside the timed region
    t = time_calls(fn, x1, **timing)
    row["latency"] = {"batch": lat_b, **t.to_json()}
    row["p50_ms"] = t.p50_ms
    row["throughput"] = {str(lat_b): images_per_second(t, lat_b)}
    for b in tp_b:
        row["throughput"][str(b)] = images_per_second(time_calls(fn, _batch(X, b), **timing), b)
    if s["gflops"]:
        kind = peak.PEAK_FOR.get(item.precision, "fp32")
        achieved = s["gflops"] * lat_b / (t.p50_ms / 1e3)  # GFLOP/s at the latency batch
        row.update(gflops_per_image=s["gflops"], peak_kind=kind, peak_gflops=peaks["gflops"][kind],
                   floor_ms=1e3 * s["gflops"] * lat_b / peaks["gflops"][kind], efficiency=achieved / peaks["gflops"][kind])
    if cfg.crosscheck and item.kind == "artifact":
        c = crosscheck.interleaved(fn, item.target, item.path, x1, cfg.threads, cfg.min_seconds, **timing)
        if c:
            row["crosscheck"] = c
    return row


def environment(cfg: BenchConfig) -> dict:
    from vitc.runtime import machine_info, package_versions

    vers = package_versions(("torch", "torchvision", "timm", "numpy", "onnx", "onnxruntime", "openvino", "nncf", "executorch", "tensorrt"))
    return {**machine_info(), "threads": cfg.threads, "versions": vers, "command": " ".join(["vitc"] + sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "method": (f"per artifact and batch: >= {cfg.warmup} warm-up calls and >= {cfg.warmup_seconds:g} s, then >= {cfg.min_runs} timed calls and >= {cfg.min_seconds:g} s; "
                       f"each call timed alone (perf_counter_ns); p50 quoted; inputs are pre-processed val images prepared "
                       f"before timing, so pre-processing is excluded; {cfg.threads} threads for every runtime; "
                       f"throughput = batch / p50 of that batch")}


def run_bench(paths: list[Path], out: Path, cfg: BenchConfig, console: Console | None = None) -> dict:
    from . import report

    console = console or Console()
    items = discover(paths)
    report.prepare(out)
    torch.set_num_threads(cfg.threads)
    pk = peak.peaks(cfg.threads, cfg.remeasure_peak)
    console.print(f"peaks ({cfg.threads} threads{', cached' if pk.get('cached') else ''}): "
                  + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in pk["gflops"].items()), highlight=False)
    sources = _Sources(cfg.data, cfg.eval_batch)
    rows = []
    for i, item in enumerate(items, 1):
        console.print(f"[{i}/{len(items)}] {item.name}", highlight=False)
        t0 = time.perf_counter()
        try:
            row = bench_item(item, cfg, sources, pk)
        except Exception as e:  # one failure never stops the others: the row carries it
            msg = e.message if isinstance(e, VitcError) else f"{type(e).__name__}: {e}"
            row = {"artifact": item.name, "target": item.target, "precision": item.precision,
                   "path": str(item.path) if item.path else None, "status": f"error: {msg.splitlines()[0][:200]}",
                   "size_mb": None, "threads": cfg.threads}
        row["bench_s"] = time.perf_counter() - t0
        rows.append(row)
        gc.collect()
    result = {"schema": 1, "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
              "environment": environment(cfg), "peaks": pk, "rows": rows}
    report.write_all(result, out)
    console.print(report.rich_table(rows))
    return result
