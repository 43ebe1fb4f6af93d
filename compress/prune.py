"""`vitc prune`: remove attention heads, head dimensions, MLP channels and embedding width from a
distilled ViT student with torch-pruning, then distill it again from its teacher.

torch-pruning does the dependency tracking (which channels of qkv, proj, fc1/fc2, the norms, the
patch embedding, the class/distillation tokens and pos_embed must go together) and the group
importance; vitc adds what it does not: timm's width attributes after the cut, a pickle-free
checkpoint (vitc.structure), and the re-distillation with vitc's own loss and training loop."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from vitc import checkpoint as ckpt
from vitc import runtime
from vitc.config import DistillConfig, ModelArgs, PruneConfig, to_dict
from vitc.data import eval_tensors, load_source
from vitc.errors import CheckpointError, ConfigError
from vitc.handoff import recorded_data, resolve_data
from vitc.models import ModelSpec, build_from_spec, count_params, gflops, is_distilled
from vitc.stages import Inputs, Result
from vitc.structure import read, require_vit, summary, sync_after_pruning

from .distill import train_student
from .stage import prepare_out, training_run
from .trainer import evaluate


def _importance(kind: str):
    import torch_pruning as tp

    # DeiT/ViT pruning in torch-pruning's own examples: group L2 magnitude, or first-order Taylor
    # (|w * dL/dw| summed over a group) from a few batches of gradients.
    return tp.importance.GroupMagnitudeImportance(p=2) if kind == "magnitude" else tp.importance.GroupTaylorImportance()


def prune_model(
    model: nn.Module,
    cfg: PruneConfig,
    example: torch.Tensor,
    grad_batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict:
    """Prune `model` in place with torch-pruning's BasePruner. -> its new structure (vitc.structure.read)."""
    import torch_pruning as tp

    require_vit(model, type(model).__name__)
    model.eval()
    heads = {b.attn.qkv: b.attn.num_heads for b in model.blocks}
    for i, h in enumerate(heads.values()):
        # torch-pruning removes ceil(head_ratio x heads) heads per block (local pruning)
        if math.ceil(cfg.head_ratio * h) >= h:
            raise ConfigError(
                f"head_ratio: {cfg.head_ratio:g} would remove all {h} heads of block {i} "
                f"(torch-pruning removes ceil({cfg.head_ratio:g} x {h}) = {math.ceil(cfg.head_ratio * h)})",
                f"use a head ratio below {(h - 1) / h:.2f}",
            )
    # the classifier heads keep their class count: both must be ignored, or the distillation head is cut
    ignored = [m for m in (getattr(model, "head", None), getattr(model, "head_dist", None)) if isinstance(m, nn.Linear)]
    # the tokens and pos_embed are bare Parameters: cut along their last (embedding) dim
    unwrapped = [
        (p, p.dim() - 1)
        for p in (getattr(model, n, None) for n in ("cls_token", "dist_token", "reg_token", "pos_embed"))
        if isinstance(p, nn.Parameter)
    ]
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=_importance(cfg.importance),
        pruning_ratio=cfg.ratio,
        ignored_layers=ignored,
        round_to=cfg.round_to,
        num_heads=heads,
        prune_num_heads=cfg.head_ratio > 0,
        prune_head_dims=True,
        head_pruning_ratio=cfg.head_ratio,
        unwrapped_parameters=unwrapped,
    )
    if cfg.importance == "taylor":
        if not grad_batches:
            raise ConfigError(
                "importance: taylor needs training images for its gradients", "use --importance magnitude"
            )
        model.zero_grad()
        for x, y in grad_batches:
            nn.functional.cross_entropy(model(x), y).backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    sync_after_pruning(model, pruner.num_heads)
    return read(model)


def _teacher_of(meta: dict, path: Path) -> str:
    t = meta.get("inputs", {}).get("teacher", {}).get("path")
    if not t or not ckpt.is_checkpoint_dir(t):
        raise CheckpointError(
            f"{path} does not name a teacher checkpoint that still exists ({t or 'none recorded'})",
            "pass --teacher-checkpoint DIR (e.g. runs/teacher)",
        )
    return str(t)


def _stats(model: nn.Module, pre: dict, X: torch.Tensor, Y: torch.Tensor) -> dict:
    return {
        "params": count_params(model),
        "gflops": gflops(model, pre["input_size"]),
        "top1": evaluate(model, X, Y)["top1"],
    }


def run_prune(
    cfg: PruneConfig,
    out: Path,
    resume: bool = False,
    force: bool = False,
    console: Console | None = None,
    default_batch_size: bool = False,
) -> dict:
    console = console or Console()
    with training_run(out, cfg.train.threads) as d:
        src_dir = Path(cfg.checkpoint)
        smeta = ckpt.load_meta(src_dir)
        ckpt.verify_weights(src_dir, smeta)
        data = resolve_data(recorded_data(smeta), cfg.data, f"checkpoint {src_dir}")
        teacher = cfg.teacher_checkpoint or _teacher_of(smeta, src_dir)
        if d.main:
            prepare_out(out, resume, force)
        pre = smeta["preprocess"]
        src = load_source(data, pre["input_size"][-1])
        if len(src.classes) != len(smeta["classes"]):
            raise CheckpointError(
                f"{src_dir} predicts {len(smeta['classes'])} classes but {data} has {len(src.classes)}",
                "prune on the dataset the student was distilled on",
            )
        # the student's architecture, with this run's stochastic depth for the re-distillation
        arch = {
            **smeta["model"],
            "overrides": {**smeta["model"].get("overrides", {}), "drop_path_rate": cfg.train.drop_path},
        }
        runtime.seed_all(cfg.train.seed)
        if resume:  # the pruned widths are in the run's own vitc.json; fit() loads the weights
            pruning = ckpt.load_meta(out)["pruning"]
            model = build_from_spec({**arch, "structure": ckpt.load_meta(out)["model"]["structure"]})
        else:
            model = build_from_spec(arch)
            ckpt.load_into(model, ckpt.load_weights(src_dir / ckpt.WEIGHTS), str(src_dir))
            require_vit(model, smeta["model"]["name"])
            Xv, Yv = eval_tensors(src.val, pre)
            was = _stats(model, pre, Xv, Yv)
            grads = None
            if cfg.importance == "taylor":
                Xt, Yt = eval_tensors(src.train, pre)
                g = torch.Generator().manual_seed(cfg.train.seed)
                idx = torch.randperm(len(Yt), generator=g)[: cfg.taylor_batches * 32].split(32)
                grads = [(Xt[i], Yt[i]) for i in idx]
            structure = prune_model(model, cfg, Xv[:1], grads)
            now = _stats(model, pre, Xv, Yv)
            pruning = {
                "ratio": cfg.ratio,
                "head_ratio": cfg.head_ratio,
                "importance": cfg.importance,
                "round_to": cfg.round_to,
                "source": {"path": str(src_dir), "sha256": smeta["weights_sha256"]},
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
                console.print(f"widths: {summary(structure)}", highlight=False)
        if is_distilled(model):
            model.set_distilled_training(True)
        spec = ModelSpec(arch["name"], arch["overrides"], arch.get("pretrained_tag"), structure=read(model))
        ov = arch["overrides"]
        dcfg = DistillConfig(
            ModelArgs(arch["name"], int(pre["input_size"][-1]), ov.get("patch_size")),
            None,
            teacher,
            False,
            data,
            cfg.distillation,
            cfg.alpha,
            cfg.tau,
            cfg.teacher_amp,
            None,
            cfg.train,
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
            default_batch_size=default_batch_size,
            extra_meta=extra,
        )
        return {
            **m,
            "gflops": pruning["after_pruning"]["gflops"],
            "gflops_unpruned": pruning["before"]["gflops"],
            "top1_unpruned": pruning["before"]["top1"],
            "top1_after_pruning": pruning["after_pruning"]["top1"],
        }


def run(cfg: PruneConfig, inputs: Inputs, out: Path) -> Result:
    """The stage table's entry: the student (and the teacher, when named) come from the inputs."""
    cfg = dataclasses.replace(
        cfg,
        checkpoint=str(inputs.checkpoint or cfg.checkpoint),
        teacher_checkpoint=str(inputs.teacher) if inputs.teacher else cfg.teacher_checkpoint,
    )
    m = run_prune(
        cfg,
        out,
        **inputs.training(),
    )
    if "top1" not in m:
        return Result("", m)
    return Result(
        f"top-1 {m['top1']:.2f}% (unpruned {m['top1_unpruned']:.2f}%), "
        f"{m['gflops']:.2f} GFLOPs (unpruned {m['gflops_unpruned']:.2f})",
        m,
    )
