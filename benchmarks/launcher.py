"""Start one timing worker (vitc.benchmarks.worker) in a fresh process and read its result.

Written by hand: optimum-benchmark's process launcher does this job, but it brings its own config
system and backends; what vitc needs is one `subprocess.run` with a JSON spec in and out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vitc.errors import VitcError

TIMEOUT_S = 900  # one worker: load, compile, warm up and time every batch; eager 224 px batch 16 needs ~60 s


def loader_for(kind: str, target: str) -> str:
    """The function a worker calls to load the artifact: the target's own `load`, or the eager
    checkpoint runner for a checkpoint dir."""
    if kind == "checkpoint":
        return "vitc.benchmarks.worker:checkpoint"
    from vitc import export

    return f"{export.get(target).__name__}:load"


def write_inputs(X: np.ndarray, batches: tuple[int, ...], folder: Path, stem: str) -> list[list]:
    """The first b val images (repeated when the split is smaller) per batch, saved for the worker."""
    out = []
    for b in batches:
        p = folder / f"{stem}-b{b}.npy"
        if not p.exists():
            # uint8 pixels stay uint8 (an in-graph artifact's input); anything else is the float tensor
            dtype = np.uint8 if X.dtype == np.uint8 else np.float32
            np.save(p, np.ascontiguousarray(np.repeat(X, -(-b // len(X)), 0)[:b], dtype=dtype))
        out.append([b, str(p)])
    return out


def run_worker(loader: str, path: str, threads: int, inputs: list[list], timing: dict, e2e: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="vitc-worker-") as tmp:
        spec = {
            "loader": loader,
            "path": str(path),
            "threads": threads,
            "inputs": inputs,
            "timing": timing,
            "out": str(Path(tmp) / "result.json"),
            "e2e": e2e,
        }
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            spec["spawned_at"] = time.time()  # cold start counts from here: the process is started next
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            p = subprocess.run(
                [sys.executable, "-m", "vitc.benchmarks.worker", str(Path(tmp) / "spec.json")],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise VitcError(
                f"the timing worker for {Path(path).name} ran past {TIMEOUT_S} s",
                "lower --min-seconds / --batch, or bench this artifact alone",
            ) from None
        res = Path(spec["out"])
        if p.returncode != 0 or not res.is_file():
            lines = [ln for ln in (p.stderr or p.stdout or "").strip().splitlines() if ln.strip()]
            raise VitcError(
                f"the timing worker for {Path(path).name} failed (exit {p.returncode}): "
                f"{lines[-1][:200] if lines else 'no output'}",
                "run vitc bench with --no-isolate --debug to see it in-process",
            )
        return json.loads(res.read_text())
