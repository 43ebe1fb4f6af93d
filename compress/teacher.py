"""`vitc teacher`: train or fine-tune a classifier (any timm model) to serve as the teacher."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vitc import checkpoint as ckpt
from vitc import runtime
from vitc.config import TeacherConfig, to_dict
from vitc.data import load_source
from vitc.models import data_config
from vitc.stages import Inputs, Result

from .losses import base_criterion
from .stage import checkpoint_meta, default_crop_pct, prepare_out, stage_model, training_run
from .trainer import SplitEvaluator, fit


def run_teacher(
    cfg: TeacherConfig,
    out: Path,
    resume: bool = False,
    force: bool = False,
    console: Console | None = None,
) -> dict:
    console = console or Console()
    with training_run(out, cfg.train.threads) as d:
        if d.main:
            prepare_out(out, resume, force)
        src = load_source(cfg.data, cfg.model.img_size)
        m = cfg.model
        runtime.seed_all(cfg.train.seed)  # the initial weights are a function of the seed
        model, spec = stage_model(m, len(src.classes), cfg.train.drop_path)
        pre = data_config(model, m.img_size, default_crop_pct(cfg.data, m.crop_pct))
        evaluate_fn = SplitEvaluator(src, pre)
        config = to_dict(cfg)
        if d.main:
            ckpt.write_json(out / "config.json", {"stage": "teacher", **config})

        def meta(row: dict) -> dict:
            return checkpoint_meta(
                stage="teacher",
                spec=spec,
                classes=src.classes,
                pre=pre,
                config=config,
                metrics=row,
                inputs={"data": src.provenance},
            )

        crit = base_criterion(cfg.train.aug.smoothing, cfg.train.aug.mixing)
        res = fit(
            model=model,
            criterion=lambda x, outputs, y: crit(outputs, y),
            train=src.train,
            pre=pre,
            num_classes=len(src.classes),
            cfg=cfg.train,
            evaluate_fn=evaluate_fn,
            out=out,
            meta_fn=meta,
            resume=resume,
            d=d,
            console=console,
            holdout_fn=evaluate_fn.holdout_top1,
        )
        return res.metrics


def run(cfg: TeacherConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry."""
    m = run_teacher(
        cfg,
        out,
        **inputs.training(),
    )
    return Result(f"top-1 {m['top1']:.2f}%" if m else "", m)
