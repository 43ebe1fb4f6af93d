"""What the training stages share: the output dir contract and the checkpoint metadata."""
from __future__ import annotations

import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from vitc import __version__, checkpoint as ckpt
from vitc.data import DIGITS
from vitc.errors import OutputError

RUN_FILES = (ckpt.META, ckpt.WEIGHTS, ckpt.TRAIN_STATE, "metrics.jsonl", "config.json")


def prepare_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse to mix two runs in one dir: resume needs a previous run, a fresh run needs an empty
    dir or --force (which then removes only the files a run writes)."""
    if resume:
        if not (out / ckpt.TRAIN_STATE).is_file():
            raise OutputError(f"--resume: {out} holds no {ckpt.TRAIN_STATE} to resume from", "run without --resume to start fresh")
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a directory", "pass a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputError(f"--out {out} already holds files (another run?)",
                              "pass --resume to continue it, --force to replace it, or another --out")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "best", ignore_errors=True)
    ckpt.writable_dir(out)


def versions() -> dict:
    import timm
    import torch

    return {"vitc": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def default_crop_pct(data: str, crop_pct: float | None) -> float | None:
    # digits are already tight 8x8 crops: a centre crop would cut strokes, so keep the full image
    return 1.0 if (crop_pct is None and data == DIGITS) else crop_pct


def checkpoint_meta(*, stage: str, spec, classes, pre, config: dict, metrics: dict, inputs: dict) -> dict:
    return {"stage": stage, "model": spec.to_json(), "classes": list(classes), "preprocess": pre,
            "metrics": metrics, "config": config, "inputs": inputs, "versions": versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
