"""`vitc distill`: DeiT token distillation of a frozen teacher into a `*_distilled_*` student."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from rich.console import Console

from vitc import checkpoint as ckpt
from vitc import runtime
from vitc.config import DistillConfig, to_dict
from vitc.data import load_source
from vitc.errors import CheckpointError, ModelError
from vitc.handoff import Checkpoint
from vitc.models import (
    create_model,
    data_config,
    init_from_checkpoint,
    is_distilled,
    resolve_name,
)
from vitc.stages import Inputs, Result

from .losses import DistillationLoss, TeacherAdapter, base_criterion
from .stage import default_crop_pct, stage_model, training_run
from .trainer import SplitEvaluator, train_recorded


def load_teacher(cfg: DistillConfig, classes: list[str], img_size: int) -> tuple[torch.nn.Module, dict, dict]:
    """-> (teacher model, its preprocessing, provenance). From a vitc dir, a .safetensors file
    (architecture from --teacher), or the hub (--pretrained; online only)."""
    path = Path(cfg.teacher_checkpoint) if cfg.teacher_checkpoint else None
    if path is not None and path.is_dir():
        c = Checkpoint.open(path)
        if cfg.teacher and resolve_name(cfg.teacher)[0] != c.name:
            raise CheckpointError(
                f"--teacher {cfg.teacher} does not match the checkpoint in {path}, which holds a {c.name}",
                "drop --teacher or pass the matching checkpoint",
            )
        if len(c.classes) != len(classes):
            raise CheckpointError(
                f"teacher {path} predicts {len(c.classes)} classes but the data has {len(classes)}",
                "train a teacher on this dataset with `vitc teacher`",
            )
        return c.model, c.pre.to_json(), {"path": str(path), "sha256": c.sha256, "name": c.name}
    if not cfg.teacher:
        raise ModelError(
            "--teacher NAME is needed to build the architecture for this teacher checkpoint",
            "pass --teacher (e.g. regnety_16gf), or a vitc checkpoint dir as --teacher-checkpoint",
        )
    if path is not None:
        model, spec = create_model(cfg.teacher, len(classes), img_size)
        ckpt.load_into(model, ckpt.load_weights(path), str(path))
        prov = {"path": str(path), "sha256": ckpt.sha256_file(path), "name": spec.name}
    else:
        model, spec = create_model(cfg.teacher, 1000, img_size, pretrained=True)
        if len(classes) != 1000:
            raise ModelError(
                f"the hub teacher {spec.name} predicts 1000 ImageNet classes, the data has {len(classes)}",
                f"fine-tune it first: `vitc teacher --model {cfg.teacher} --pretrained --data ...`, "
                "then pass --teacher-checkpoint",
            )
        prov = {"hub": f"{spec.name}.{spec.pretrained_tag or 'default'}", "name": spec.name}
    return model.eval(), data_config(model, img_size), prov


def run(cfg: DistillConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry: the teacher checkpoint comes from the inputs when they name one."""
    if inputs.teacher:
        cfg = dataclasses.replace(cfg, teacher_checkpoint=str(inputs.teacher))
    m = run_distill(cfg, out, inputs)
    if not m:
        return Result("", m)
    teacher = f" (teacher {m['teacher_top1']:.2f}%)" if "teacher_top1" in m else ""
    return Result(f"top-1 {m['top1']:.2f}%{teacher}", m)


def run_distill(cfg: DistillConfig, out: Path, inputs: Inputs | None = None) -> dict:
    with training_run(out, cfg.train.threads, inputs) as (d, console):
        s = cfg.student
        src = load_source(cfg.data, s.img_size)
        runtime.seed_all(cfg.train.seed)  # the initial weights are a function of the seed
        student, spec = stage_model(s, len(src.classes), cfg.train.drop_path)
        if not is_distilled(student):
            if cfg.distillation != "none":
                raise ModelError(
                    f"student {spec.name} has no distillation token, so --distillation {cfg.distillation} cannot train it",
                    "use a *_distilled_* student (deit_tiny, deit_small) or --distillation none",
                )
        else:
            student.set_distilled_training(True)  # two heads in training, their average in eval
        init = init_from_checkpoint(student, cfg.init_checkpoint) if cfg.init_checkpoint else None
        pre = data_config(student, s.img_size, default_crop_pct(cfg.data, s.crop_pct))

        lineage = {"data": src.provenance, **({"init": init} if init else {})}
        return train_student(
            student,
            spec,
            cfg,
            src,
            pre,
            out,
            lineage,
            stage="distill",
            resume=bool(inputs and inputs.resume),
            d=d,
            console=console,
        )


def train_student(
    student: torch.nn.Module,
    spec,
    cfg: DistillConfig,
    src,
    pre: dict,
    out: Path,
    inputs: dict,
    *,
    stage: str,
    resume: bool,
    d,
    console: Console,
    extra_meta: dict | None = None,
) -> dict:
    """DeiT distillation of `student` (fresh, or pruned by `vitc prune`) from cfg's teacher into `out`:
    the loss, the training loop, checkpoints, best/ and --resume that `vitc distill` and `vitc prune` share."""
    evaluate_fn = SplitEvaluator(src, pre)
    Xv, Yv = evaluate_fn.val
    adapter, teacher_top1 = None, None
    inputs = dict(inputs)
    if cfg.distillation != "none":
        teacher, tpre, inputs["teacher"] = load_teacher(cfg, src.classes, cfg.student.img_size)
        teacher.to(d.device)
        adapter = TeacherAdapter(teacher, pre, tpre, runtime.use_bf16(cfg.teacher_amp, d.device)).to(d.device)
        with torch.no_grad():  # the teacher's accuracy on the same split, through the same adapter
            teacher_top1 = 100.0 * (adapter(Xv.to(d.device)).argmax(1).cpu() == Yv).float().mean().item()
        adapter.seconds = 0.0
        if d.main:
            console.print(
                f"teacher {inputs['teacher'].get('name')}: top-1 {teacher_top1:.2f}% on val "
                f"({'bf16' if adapter.bf16 else 'fp32'}, inference mode)"
            )
    crit = DistillationLoss(
        base_criterion(cfg.train.aug.smoothing, cfg.train.aug.mixing), adapter, cfg.distillation, cfg.alpha, cfg.tau
    )
    return train_recorded(
        stage=stage,
        model=student,
        spec=spec,
        criterion=crit,
        src=src,
        pre=pre,
        cfg=cfg.train,
        config=to_dict(cfg),
        inputs=inputs,
        out=out,
        resume=resume,
        d=d,
        console=console,
        evaluator=evaluate_fn,
        eval_extra={"teacher_top1": teacher_top1} if teacher_top1 is not None else None,
        teacher_clock=(lambda: adapter.seconds) if adapter is not None else None,
        extra_meta=extra_meta,
    )
