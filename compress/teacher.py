"""`vitc teacher`: train or fine-tune a classifier (any timm model) to serve as the teacher."""

from __future__ import annotations

from pathlib import Path

from vitc import runtime
from vitc.config import TeacherConfig, to_dict
from vitc.data import load_source
from vitc.models import data_config
from vitc.stages import Inputs, Result

from .losses import base_criterion
from .stage import default_crop_pct, stage_model, training_run
from .trainer import train_recorded


def run_teacher(cfg: TeacherConfig, out: Path, inputs: Inputs | None = None) -> dict:
    with training_run(out, cfg.train.threads, inputs) as (d, console):
        src = load_source(cfg.data, cfg.model.img_size)
        m = cfg.model
        runtime.seed_all(cfg.train.seed)  # the initial weights are a function of the seed
        model, spec = stage_model(m, len(src.classes), cfg.train.drop_path)
        pre = data_config(model, m.img_size, default_crop_pct(cfg.data, m.crop_pct))
        crit = base_criterion(cfg.train.aug.smoothing, cfg.train.aug.mixing)
        return train_recorded(
            stage="teacher",
            model=model,
            spec=spec,
            criterion=lambda x, outputs, y: crit(outputs, y),
            src=src,
            pre=pre,
            cfg=cfg.train,
            config=to_dict(cfg),
            inputs={"data": src.provenance},
            out=out,
            resume=bool(inputs and inputs.resume),
            d=d,
            console=console,
        )


def run(cfg: TeacherConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry."""
    m = run_teacher(cfg, out, inputs)
    return Result(f"top-1 {m['top1']:.2f}%" if m else "", m)
