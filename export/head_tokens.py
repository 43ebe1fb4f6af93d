"""Export-time rewrite of a timm ViT: the last block computes only the tokens the head reads.

A token-pooled ViT's head reads the class token (DeiT distilled: also the distillation token)
after the last block. In that block every token still gives keys and values, but the queries,
attention output, proj, LayerNorm and MLP of the other tokens (196 of 198 on deit 224) reach
nothing. Computing those for the head's tokens only gives the same logits up to float rounding
with 6% fewer FLOPs on deit_tiny 224. OpenVINO runs the whole last block (its profile shows
full-size matmuls there), so vitc does this in PyTorch, before any exporter, and every target gets
it. Written by hand because no exporter or timm option does it; the export stage then validates
the artifact against the *unrewritten* model's logits, so the rewrite is checked on every export.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class HeadTokensBlock(nn.Module):
    """timm's `Block` for the last layer: keys and values from all tokens, everything else for the
    first `keep` tokens only. Returns `keep` tokens."""

    def __init__(self, blk: nn.Module, keep: int):
        super().__init__()
        a = blk.attn
        self.keep, self.heads, self.head_dim, self.scale = keep, a.num_heads, a.head_dim, a.scale
        self.norm1, self.norm2, self.mlp, self.ls1, self.ls2 = blk.norm1, blk.norm2, blk.mlp, blk.ls1, blk.ls2
        self.q_norm, self.k_norm, self.proj = a.q_norm, a.k_norm, a.proj
        self.attn_norm = getattr(a, "norm", nn.Identity())  # timm >= 1.0.10: optional norm before proj
        self.fused_attn = bool(getattr(a, "fused_attn", True))  # as timm's: SDPA, or matmul-softmax-matmul
        c, bias = a.num_heads * a.head_dim, a.qkv.bias is not None
        # two real Linear modules, not slices of qkv's weight, so dynamic int8 (TorchScript-lite)
        # and every exporter see ordinary layers
        self.q = nn.Linear(a.qkv.in_features, c, bias=bias)
        self.kv = nn.Linear(a.qkv.in_features, 2 * c, bias=bias)
        with torch.no_grad():
            self.q.weight.copy_(a.qkv.weight[:c])
            self.kv.weight.copy_(a.qkv.weight[c:])
            if bias:
                self.q.bias.copy_(a.qkv.bias[:c])
                self.kv.bias.copy_(a.qkv.bias[c:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        k, h, d = self.keep, self.heads, self.head_dim
        y = self.norm1(x)
        q = self.q(y[:, :k]).reshape(b, k, h, d).transpose(1, 2)
        key, v = self.kv(y).reshape(b, n, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        q, key = self.q_norm(q), self.k_norm(key)
        if self.fused_attn:
            o = F.scaled_dot_product_attention(q, key, v, scale=self.scale)
        else:
            o = ((q * self.scale) @ key.transpose(-2, -1)).softmax(dim=-1) @ v
        o = self.proj(self.attn_norm(o.transpose(1, 2).reshape(b, k, h * d)))
        x = x[:, :k] + self.ls1(o)
        return x + self.ls2(self.mlp(self.norm2(x)))


def head_tokens(model: nn.Module) -> tuple[int | None, str]:
    """(how many leading tokens the head reads, why) or (None, why the rewrite does not apply)."""
    try:
        from timm.layers import Attention
        from timm.models.deit import VisionTransformerDistilled
        from timm.models.vision_transformer import Block, VisionTransformer
    except ImportError:
        return None, "timm is not installed"
    if not isinstance(model, VisionTransformer):
        return None, f"{type(model).__name__} is not a timm VisionTransformer"
    blk = model.blocks[-1] if len(model.blocks) else None
    if type(blk) is not Block or type(blk.attn) is not Attention or getattr(blk.attn, "gate", None) is not None:
        return None, "its last block is not timm's standard Block with plain Attention"
    if not isinstance(model.norm, (nn.LayerNorm, nn.Identity)):
        return None, f"its final norm {type(model.norm).__name__} may mix tokens"
    if isinstance(model, VisionTransformerDistilled):
        return 2, "the heads read the class and distillation tokens"
    if model.global_pool == "token" and model.attn_pool is None and isinstance(model.fc_norm, nn.Identity):
        return 1, "the head reads the class token"
    return None, f"its head pools over all tokens (global_pool={model.global_pool!r})"


def rewrite(model: nn.Module) -> tuple[nn.Module, dict]:
    """-> (model for export, what was done). The input model is left untouched."""
    keep, why = head_tokens(model)
    if keep is None:
        return model, {"head_tokens_only": False, "why": why}
    out = copy.deepcopy(model).eval()
    out.blocks[-1] = HeadTokensBlock(out.blocks[-1], keep)
    return out, {"head_tokens_only": True, "tokens_kept": keep, "why": why}
