"""The widths of a structurally pruned ViT: read from a model, written to `vitc.json`, and applied to
a freshly built timm model so that a pruned checkpoint loads from `vitc.json` + `model.safetensors`
alone (torch-pruning's own save is `torch.save(model)`, a pickle, which vitc never loads).

Written by hand because no library rebuilds a timm ViT at per-block widths: timm's constructor takes
one `embed_dim`, `num_heads` and `mlp_ratio` for all blocks, and torch-pruning's `load_state_dict`
restores module `__dict__`s from a pickle."""

from __future__ import annotations

import torch
from torch import nn

from .errors import ModelError


def head_names(model: nn.Module) -> tuple[str, ...]:
    """The classifier modules, as timm records them (pretrained_cfg["classifier"]: ("head", "head_dist") for a
    distilled DeiT), those the model has."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier", "head")
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n for n in names if isinstance(getattr(model, n, None), nn.Module))


STRUCTURE_FORMAT = "vitc-vit-widths/2"  # /2: the block list may be shorter than the architecture's (depth pruned)
READS = ("vitc-vit-widths/1", STRUCTURE_FORMAT)  # /1: one entry per block of the architecture


def is_prunable_vit(model: nn.Module) -> bool:
    blocks = getattr(model, "blocks", None)
    return (
        blocks is not None
        and hasattr(model, "patch_embed")
        and hasattr(model, "pos_embed")
        and all(
            hasattr(b, "attn") and hasattr(b.attn, "qkv") and hasattr(b, "mlp") and hasattr(b.mlp, "fc1")
            for b in blocks
        )
    )


def require_vit(model: nn.Module, name: str) -> None:
    if not is_prunable_vit(model):
        raise ModelError(
            f"{name} is not a ViT with attention blocks, so vitc cannot prune its heads and channels",
            "prune a distilled ViT student (e.g. one made by `vitc distill --student deit_tiny`)",
        )
    for b in model.blocks:
        extra = [
            n for n in ("q_norm", "k_norm", "norm") if not isinstance(getattr(b.attn, n, nn.Identity()), nn.Identity)
        ]
        if (
            extra
            or getattr(b.attn, "gate", None) is not None
            or not isinstance(getattr(b, "ls1", nn.Identity()), nn.Identity)
        ):
            raise ModelError(
                f"{name} has attention or layer-scale parts vitc's pruned format does not describe "
                f"({', '.join(extra) or 'gate/layer scale'})",
                "prune a DeiT/ViT student without qk-norm or layer scale",
            )


def embed_width(model: nn.Module) -> int:
    return int(model.pos_embed.shape[-1])


def read(model: nn.Module) -> dict:
    """-> {"format", "embed_dim", "blocks": [{"heads", "head_dim", "mlp_hidden"}, ...]} of a ViT; the kept
    blocks are listed in order, so a depth-pruned model has fewer entries than its architecture's depth."""
    return {
        "format": STRUCTURE_FORMAT,
        "embed_dim": embed_width(model),
        "blocks": [
            {
                "heads": int(b.attn.num_heads),
                "head_dim": int(b.attn.head_dim),
                "mlp_hidden": int(b.mlp.fc1.out_features),
            }
            for b in model.blocks
        ],
    }


def keep_blocks(model: nn.Module, keep: list[int]) -> None:
    """Depth pruning: keep only these blocks (in their order); the residual stream skips the others."""
    n = len(model.blocks)
    if not keep or sorted(set(keep)) != sorted(keep) or not all(0 <= i < n for i in keep):
        raise ModelError(f"cannot keep blocks {keep} of a model with {n} blocks")
    model.blocks = nn.Sequential(*(model.blocks[i] for i in sorted(keep)))
    if hasattr(model, "feature_info"):  # timm's forward_intermediates reads one entry per block
        model.feature_info = [dict(f, module=f"blocks.{i}") for i, f in enumerate(model.feature_info[: len(keep)])]


def sync_after_pruning(model: nn.Module, heads: dict[nn.Module, int]) -> None:
    """torch-pruning cuts the tensors; timm's modules keep their old width attributes, which forward()
    uses (Attention reshapes by num_heads/head_dim/attn_dim). Set them from the pruned tensors."""
    for b in model.blocks:
        a = b.attn
        attn_dim = a.qkv.out_features // 3
        a.num_heads = int(heads.get(a.qkv, a.num_heads))
        if attn_dim % a.num_heads:
            raise ModelError(f"pruning left a qkv of {attn_dim} channels that {a.num_heads} heads cannot share")
        a.head_dim = attn_dim // a.num_heads
        a.attn_dim = attn_dim
        a.scale = a.head_dim**-0.5
    _set_model_width(model, embed_width(model))


def _set_model_width(model: nn.Module, width: int) -> None:
    for attr in ("embed_dim", "num_features", "head_hidden_size"):
        if hasattr(model, attr):
            setattr(model, attr, width)


def _linear(old: nn.Linear, n_in: int, n_out: int) -> nn.Linear:
    return nn.Linear(n_in, n_out, bias=old.bias is not None)


def _norm(old: nn.Module, width: int) -> nn.Module:
    if isinstance(old, nn.Identity):
        return old
    if not getattr(old, "elementwise_affine", True):
        raise ModelError(f"{type(old).__name__} without affine weights is not in vitc's pruned format")
    return type(old)(width, eps=old.eps)  # nn.LayerNorm and timm's LayerNorm both take (width, eps=)


def _param(old: nn.Parameter | None, width: int) -> nn.Parameter | None:
    if old is None:
        return None
    return nn.Parameter(torch.zeros(*old.shape[:-1], width), requires_grad=old.requires_grad)


def apply(model: nn.Module, structure: dict) -> nn.Module:
    """Re-shape a freshly built timm ViT to `structure` (weights are placeholders until loaded)."""
    if structure.get("format") not in READS:
        raise ModelError(
            f"unknown pruned-structure format {structure.get('format')!r} (this vitc reads {', '.join(READS)})",
            "re-run `vitc prune` with this version",
        )
    require_vit(model, type(model).__name__)
    blocks = structure["blocks"]
    fewer = structure["format"] != READS[0] and 0 < len(blocks) < len(model.blocks)
    if len(blocks) != len(model.blocks) and not fewer:
        raise ModelError(f"the pruned structure has {len(blocks)} blocks but the architecture has {len(model.blocks)}")
    if fewer:  # the weights name the kept blocks 0..k-1, in order
        keep_blocks(model, list(range(len(blocks))))
    E = int(structure["embed_dim"])
    pe = model.patch_embed.proj
    model.patch_embed.proj = nn.Conv2d(
        pe.in_channels, E, pe.kernel_size, pe.stride, pe.padding, bias=pe.bias is not None
    )
    model.patch_embed.norm = _norm(model.patch_embed.norm, E)
    for name in ("cls_token", "dist_token", "reg_token", "pos_embed"):
        if getattr(model, name, None) is not None:
            setattr(model, name, _param(getattr(model, name), E))
    for b, s in zip(model.blocks, blocks):
        a, A, M = b.attn, int(s["heads"]) * int(s["head_dim"]), int(s["mlp_hidden"])
        b.norm1, b.norm2 = _norm(b.norm1, E), _norm(b.norm2, E)
        a.qkv, a.proj = _linear(a.qkv, E, 3 * A), _linear(a.proj, A, E)
        a.num_heads, a.head_dim, a.attn_dim, a.scale = (
            int(s["heads"]),
            int(s["head_dim"]),
            A,
            int(s["head_dim"]) ** -0.5,
        )
        b.mlp.fc1, b.mlp.fc2 = _linear(b.mlp.fc1, E, M), _linear(b.mlp.fc2, M, E)
        b.mlp.norm = _norm(getattr(b.mlp, "norm", nn.Identity()), M)
    for name in ("norm_pre", "norm", "fc_norm"):
        if hasattr(model, name):
            setattr(model, name, _norm(getattr(model, name), E))
    for name in head_names(model):
        h = getattr(model, name, None)
        if isinstance(h, nn.Linear):
            setattr(model, name, _linear(h, E, h.out_features))
    _set_model_width(model, E)
    return model


def summary(structure: dict) -> str:
    """One line: embed width, heads x head dim and MLP width per block (runs collapsed)."""
    parts = [f"{s['heads']}x{s['head_dim']}/{s['mlp_hidden']}" for s in structure["blocks"]]
    runs: list[list] = []
    for p in parts:
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    body = ", ".join(f"{p}" + (f" (x{n})" if n > 1 else "") for p, n in runs)
    return (
        f"embed {structure['embed_dim']}; {len(structure['blocks'])} blocks; per block heads x head-dim / MLP: {body}"
    )
