"""`vitc prune`: remove attention heads, head dimensions, MLP channels and embedding width from a
distilled ViT student with torch-pruning, then distill it again from its teacher.

torch-pruning does the dependency tracking (which channels of qkv, proj, fc1/fc2, the norms, the
patch embedding, the class/distillation tokens and pos_embed must go together) and the group
importance; vitc adds what it does not: timm's width attributes after the cut, a pickle-free
checkpoint (vitc.structure), and the re-distillation with vitc's own loss and training loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from vitc import checkpoint as ckpt
from vitc import runtime
from vitc.config import DistillConfig, ModelArgs, PruneConfig, to_dict
from vitc.data import eval_tensors, load_source
from vitc.errors import CheckpointError
from vitc.handoff import Checkpoint
from vitc.models import ModelSpec, build_from_spec, count_params, gflops, is_distilled
from vitc.stages import Inputs, Result
from vitc.structure import read, require_vit, summary

from .distill import train_student
from .stage import prepare_out, training_run
from .trainer import evaluate
from .widths import cut_widths


def prune_model(
    model: nn.Module,
    cfg: PruneConfig,
    example: torch.Tensor,
    grad_batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict:
    """Prune `model` in place with torch-pruning's BasePruner. -> its new structure (vitc.structure.read)."""
    return cut_widths(model, cfg.ratio, cfg.head_ratio, cfg.importance, cfg.round_to, example, grad_batches)


def _teacher_of(c: Checkpoint) -> str:
    t = c.teacher_path
    if not t or not ckpt.is_checkpoint_dir(t):
        raise CheckpointError(
            f"{c.path} does not name a teacher checkpoint that still exists ({t or 'none recorded'})",
            "pass --teacher-checkpoint DIR (e.g. runs/teacher)",
        )
    return str(t)


def _stats(model: nn.Module, pre: dict, X: torch.Tensor, Y: torch.Tensor) -> dict:
    return {
        "params": count_params(model),
        "gflops": gflops(model, pre["input_size"]),
        "top1": evaluate(model, X, Y)["top1"],
    }


def run_prune(cfg: PruneConfig, out: Path, inputs: Inputs | None = None) -> dict:
    resume = bool(inputs and inputs.resume)
    with training_run(out, cfg.train.threads, inputs, prepare=False) as (d, console):
        src_dir = Path(cfg.checkpoint)
        student = Checkpoint.open(src_dir)
        ckpt.verify_weights(src_dir, student.meta)
        data = student.data_name(cfg.data)
        # the data the student was trained on, and its augmentation preset where none was named (issue 35)
        cfg = dataclasses.replace(cfg, data=data)
        teacher = None if cfg.distillation == "none" else cfg.teacher_checkpoint or _teacher_of(student)
        if d.main:
            prepare_out(out, resume, bool(inputs and inputs.force))
        pre = student.pre.to_json()
        src = load_source(data, pre["input_size"][-1])
        if len(src.classes) != len(student.classes):
            raise CheckpointError(
                f"{src_dir} predicts {len(student.classes)} classes but {data} has {len(src.classes)}",
                "prune on the dataset the student was distilled on",
            )
        # the student's architecture, with this run's stochastic depth for the re-distillation
        arch = {
            **student.spec,
            "overrides": {**student.spec.get("overrides", {}), "drop_path_rate": cfg.train.drop_path},
        }
        runtime.seed_all(cfg.train.seed)
        dcfg = _distill_config(cfg, arch, pre, teacher, data)
        if resume:  # the pruned structure and input size are in the run's own vitc.json; fit() loads the weights
            own = Checkpoint.open(out)
            pruning, pre = own.pruning, own.pre.to_json()
            arch = {**arch, "overrides": {**own.spec["overrides"], "drop_path_rate": cfg.train.drop_path}}
            model = build_from_spec({**arch, "structure": own.spec["structure"]})
        else:
            model = build_from_spec(arch)
            ckpt.load_into(model, ckpt.load_weights(src_dir / ckpt.WEIGHTS), str(src_dir))
            require_vit(model, student.name)
            Xv, Yv = eval_tensors(src.val, pre)
            was = _stats(model, pre, Xv, Yv)
            if cfg.latency:
                from .prune_latency import choose

                model, how, img = choose(model, student.spec, pre, src, cfg, dcfg, console)
                if img != int(pre["input_size"][-1]):  # fewer tokens: the input size, and with it the data, change
                    pre = {**pre, "input_size": [3, img, img]}
                    arch = {**arch, "overrides": {**arch["overrides"], "img_size": img}}
                    src = load_source(data, img)
                    Xv, Yv = eval_tensors(src.val, pre)
                    dcfg = _distill_config(cfg, arch, pre, teacher, data)
            else:
                grads = None
                if cfg.importance == "taylor":
                    Xt, Yt = eval_tensors(src.train, pre)
                    g = torch.Generator().manual_seed(cfg.train.seed)
                    idx = torch.randperm(len(Yt), generator=g)[: cfg.taylor_batches * 32].split(32)
                    grads = [(Xt[i], Yt[i]) for i in idx]
                prune_model(model, cfg, Xv[:1], grads)
                how = {"ratio": cfg.ratio, "head_ratio": cfg.head_ratio, "importance": cfg.importance}
            now = _stats(model, pre, Xv, Yv)
            pruning = {
                **how,
                "round_to": cfg.round_to,
                "source": {"path": str(src_dir), "sha256": student.sha256},
                "before": was,
                "after_pruning": now,
            }
            if d.main:
                console.print(
                    f"pruned {src_dir}: {was['gflops']:.2f} -> {now['gflops']:.2f} GFLOPs "
                    f"({now['gflops'] / was['gflops']:.2f}x), {was['params'] / 1e6:.2f}M -> {now['params'] / 1e6:.2f}M params, "
                    f"top-1 {was['top1']:.2f}% -> {now['top1']:.2f}% before re-distillation",
                    highlight=False,
                )
                console.print(f"widths: {summary(read(model))}", highlight=False)
        if is_distilled(model):
            model.set_distilled_training(True)
        spec = ModelSpec(
            arch["name"], arch["overrides"], arch.get("pretrained_tag"), structure=read(model), stem=arch.get("stem")
        )
        extra = {"pruning": pruning, "prune_config": to_dict(cfg)}
        m = train_student(
            model,
            spec,
            dcfg,
            src,
            pre,
            out,
            {"data": src.provenance, "pruned_from": pruning["source"]},
            stage="prune",
            resume=resume,
            d=d,
            console=console,
            extra_meta=extra,
        )
        return {
            **m,
            "gflops": pruning["after_pruning"]["gflops"],
            "gflops_unpruned": pruning["before"]["gflops"],
            "top1_unpruned": pruning["before"]["top1"],
            "top1_after_pruning": pruning["after_pruning"]["top1"],
        }


def _distill_config(cfg: PruneConfig, arch: dict, pre: dict, teacher: str | None, data: str) -> DistillConfig:
    """The re-distillation's settings: the prune stage's loss and training over the (pruned) student's shape."""
    return DistillConfig(
        ModelArgs(arch["name"], int(pre["input_size"][-1]), arch["overrides"].get("patch_size")),
        teacher_checkpoint=teacher,
        data=data,
        train=cfg.train,
        **cfg.loss(),
    )


def run(cfg: PruneConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry: the student (and the teacher, when named) come from the inputs."""
    cfg = dataclasses.replace(
        cfg,
        checkpoint=str(inputs.checkpoint or cfg.checkpoint),
        teacher_checkpoint=str(inputs.teacher) if inputs.teacher else cfg.teacher_checkpoint,
    )
    m = run_prune(cfg, out, inputs)
    if "top1" not in m:
        return Result("", m)
    return Result(
        f"top-1 {m['top1']:.2f}% (unpruned {m['top1_unpruned']:.2f}%), "
        f"{m['gflops']:.2f} GFLOPs (unpruned {m['gflops_unpruned']:.2f})",
        m,
    )
