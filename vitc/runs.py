"""The run-folder convention: every stage run with no path reads the previous stage's folder under
runs/ and writes its own, and says which one it used.

    vitc teacher  -> runs/teacher          vitc quantize  runs/student -> runs/int8
    vitc distill  -> runs/student          vitc export    runs/student -> runs/exports
    vitc prune    runs/student -> runs/pruned          vitc bench  runs/* -> runs/bench
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

from . import checkpoint as ckpt
from . import stages
from .errors import VitcError

RUNS = Path("runs")
FOLDERS = {f: RUNS / f for f in stages.FOLDERS}  # the stage table's folder names, under runs/
MAKERS = {f: s.makes for f, s in stages.FOLDERS.items()}
BENCHED = stages.BENCHED


def _age(meta: dict, path: Path) -> str:
    try:
        t = datetime.fromisoformat(meta["created"]).timestamp()
    except (KeyError, TypeError, ValueError):
        t = path.stat().st_mtime
    s = max(0, int(time.time() - t))
    return (
        f"{s} s"
        if s < 120
        else f"{s // 60} min"
        if s < 7200
        else f"{s // 3600} h"
        if s < 172800
        else f"{s // 86400} days"
    )


def describe(path: Path) -> str:
    """'runs/student (made by vitc distill 3 min ago)'"""
    if ckpt.is_checkpoint_dir(path):
        meta = ckpt.load_meta(path)
        made = f"vitc {meta['stage']}" if meta.get("stage") else "vitc"
        return f"{path} (made by {made} {_age(meta, path / ckpt.META)} ago)"
    return f"{path} (modified {_age({}, path)} ago)"


def default_checkpoint(kind: str, console: Console) -> Path:
    """The conventional checkpoint dir of a stage, announced; missing -> the command that makes it."""
    p = FOLDERS[kind]
    if not ckpt.is_checkpoint_dir(p):
        raise VitcError(
            f"no checkpoint given and {p} holds no {kind} checkpoint",
            f"make it with `{MAKERS[kind]}`, or pass a checkpoint dir",
        )
    console.print(f"using {describe(p)}", highlight=False)
    return p


def default_out(kind: str, console: Console) -> Path:
    p = FOLDERS[kind]
    console.print(f"writing to {p} (the default --out)", highlight=False)
    return p


def benchable(root: Path) -> list[Path]:
    """The stage folders under `root` that hold something to time, in the table's order."""
    return [root / k for k in BENCHED if (root / k).is_dir() and any((root / k).iterdir())]


def bench_inputs(console: Console) -> list[Path]:
    """Everything a stage left under runs/ that the bench can time, announced."""
    found = benchable(RUNS)
    if not found:
        raise VitcError(
            f"nothing to bench: {RUNS}/ holds no student, pruned, int8 or exports folder",
            f"make them with `{MAKERS['student']}`, then `vitc quantize` and `vitc export`; "
            "or pass export dirs, artifacts or checkpoint dirs",
        )
    for p in found:
        console.print(f"benching {describe(p)}", highlight=False)
    return found
