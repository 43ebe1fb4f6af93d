"""torch-pruning's width cut of a timm ViT: embedding width, head dims, MLP hidden and whole heads, then timm's
width attributes set from the cut tensors (vitc.structure.sync_after_pruning)."""

from __future__ import annotations

import math

import torch
from torch import nn

from vitc.errors import ConfigError
from vitc.structure import head_names, read, require_vit, sync_after_pruning


def _importance(kind: str):
    import torch_pruning as tp

    # DeiT/ViT pruning in torch-pruning's own examples: group L2 magnitude, or first-order Taylor
    # (|w * dL/dw| summed over a group) from a few batches of gradients.
    return tp.importance.GroupMagnitudeImportance(p=2) if kind == "magnitude" else tp.importance.GroupTaylorImportance()


def cut_widths(
    model: nn.Module,
    ratio: float,
    head_ratio: float,
    importance: str,
    round_to: int | None,
    example: torch.Tensor,
    grad_batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict:
    """torch-pruning's BasePruner at one ratio (embedding, head dims, MLP) and head ratio, in place."""
    import torch_pruning as tp

    require_vit(model, type(model).__name__)
    model.eval()
    heads = {b.attn.qkv: b.attn.num_heads for b in model.blocks}
    for i, h in enumerate(heads.values()):
        # torch-pruning removes ceil(head_ratio x heads) heads per block (local pruning)
        if math.ceil(head_ratio * h) >= h:
            raise ConfigError(
                f"head_ratio: {head_ratio:g} would remove all {h} heads of block {i} "
                f"(torch-pruning removes ceil({head_ratio:g} x {h}) = {math.ceil(head_ratio * h)})",
                f"use a head ratio below {(h - 1) / h:.2f}",
            )
    # the classifier heads keep their class count: both must be ignored, or the distillation head is cut
    ignored = [m for m in (getattr(model, n) for n in head_names(model)) if isinstance(m, nn.Linear)]
    # the tokens and pos_embed are bare Parameters: cut along their last (embedding) dim
    unwrapped = [
        (p, p.dim() - 1)
        for p in (getattr(model, n, None) for n in ("cls_token", "dist_token", "reg_token", "pos_embed"))
        if isinstance(p, nn.Parameter)
    ]
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=_importance(importance),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        round_to=round_to,
        num_heads=heads,
        prune_num_heads=head_ratio > 0,
        prune_head_dims=True,
        head_pruning_ratio=head_ratio,
        unwrapped_parameters=unwrapped,
    )
    if importance == "taylor":
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
