"""What the training stages share: the output dir contract and the checkpoint metadata."""

from __future__ import annotations

import platform
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from vitc import __version__
from vitc import checkpoint as ckpt
from vitc.data import is_builtin
from vitc.errors import OutputError

RUN_FILES = (ckpt.META, ckpt.WEIGHTS, ckpt.TRAIN_STATE, "metrics.jsonl", "config.json", "vitc.log")


def check_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse to mix two runs in one dir: resume needs a previous run, a fresh run needs an empty
    dir or --force. Writes nothing."""
    if resume:
        if not (out / ckpt.TRAIN_STATE).is_file():
            raise OutputError(
                f"--resume: {out} holds no {ckpt.TRAIN_STATE} to resume from", "run without --resume to start fresh"
            )
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a directory", "pass a directory path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(
            f"--out {out} already holds files (another run?)",
            "pass --resume to continue it, --force to replace it, or another --out",
        )


def prepare_out(out: Path, resume: bool, force: bool) -> None:
    """check_out, then --force removes only the files a run writes."""
    check_out(out, resume, force)
    if resume:
        return
    if out.is_dir() and any(out.iterdir()):
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "best", ignore_errors=True)
    ckpt.writable_dir(out)


def snapshot(out: Path) -> tuple[list[Path], set[Path]]:
    """What exists before a run: the dirs it would create, and the files already in --out."""
    missing = [p for p in (out, *out.parents) if not p.exists()]
    return missing, (set(out.iterdir()) if out.is_dir() else set())


def discard_failed_run(out: Path, before: tuple[list[Path], set[Path]]) -> None:
    """A run that failed before its first epoch was saved leaves no trace: the files it wrote and
    the dirs it created go, so the corrected rerun needs no --force. A run with a saved epoch
    keeps everything for --resume."""
    missing, files = before
    if (out / ckpt.TRAIN_STATE).exists() or not out.is_dir():
        return
    for p in set(out.iterdir()) - files:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for d in missing:  # deepest first; only if empty
        try:
            d.rmdir()
        except OSError:
            break


@contextmanager
def training_run(out: Path, threads: int | None, inputs=None, prepare: bool = True):
    """The frame every training stage runs in: yields (the runtime: threads, DDP rank; the console). `out` is made
    ready on rank 0 (prepare_out: replaced with --force, continued with --resume) unless the stage does that
    itself once its inputs are checked (prepare=False); a run that fails before its first saved epoch leaves no
    trace (discard_failed_run); the runtime is shut down either way."""
    from rich.console import Console

    from vitc import runtime

    d = runtime.init(threads)
    before = snapshot(out)
    try:
        if prepare and d.main:
            prepare_out(out, bool(inputs and inputs.resume), bool(inputs and inputs.force))
        yield d, (inputs.console if inputs and inputs.console else Console())
    except BaseException:
        if d.main:
            discard_failed_run(out, before)
        raise
    finally:
        runtime.shutdown(d)


def versions() -> dict:
    import timm
    import torch

    return {
        "vitc": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def stage_model(m, num_classes: int, drop_path: float):
    """The model a training stage builds from its ModelArgs: timm's, with its overrides and stem. -> (model, spec)"""
    import torch

    from vitc.models import create_model, default_patch

    rng = torch.get_rng_state()
    model, spec = create_model(
        m.name, num_classes, m.img_size, m.patch_size, m.pretrained, stem=m.stem, drop_path_rate=drop_path
    )
    pe = getattr(model, "patch_embed", None)
    own = getattr(pe, "patch_size", None)
    if m.patch_size is None and own is not None and default_patch(m.img_size, own[0]) != own[0]:
        # the recipe's patch (recorded in the spec's overrides, rebuilt on load), initialised from the same random
        # state as a model built with that patch named: `--patch-size 8` and the default give the same weights
        torch.set_rng_state(rng)
        return create_model(
            m.name,
            num_classes,
            m.img_size,
            default_patch(m.img_size, own[0]),
            m.pretrained,
            stem=m.stem,
            drop_path_rate=drop_path,
        )
    return model, spec


def default_crop_pct(data: str, crop_pct: float | None) -> float | None:
    # the built-in datasets are already tight crops (digits' 8x8 strokes, Fashion-MNIST's 28x28 products):
    # a centre crop would cut them, so keep the full image
    return 1.0 if (crop_pct is None and is_builtin(data)) else crop_pct


def checkpoint_meta(*, stage: str, spec, classes, pre, config: dict, metrics: dict, inputs: dict) -> dict:
    """vitc.json of a trained checkpoint. `data` names the dataset it was trained on (the val split is what its
    metrics come from): later stages take it from here (vitc.handoff.Checkpoint.data_name)."""
    return {
        "stage": stage,
        "model": spec.to_json(),
        "data": config.get("data"),
        "classes": list(classes),
        "preprocess": pre,
        "metrics": metrics,
        "config": config,
        "inputs": inputs,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
