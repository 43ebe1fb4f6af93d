"""A model's pre-logits token features as an output: what `vitc export --features` writes and validates,
and what `vitc features` reads. Shared by the export stage and the diagnostics, so neither imports the other."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, VitcError

# features of an artifact vs PyTorch's: minimum cosine per image, and max |diff| for fp32
FEATURE_TOLERANCE = {"fp32": (1e-3, 0.9999), "fp16": (5e-2, 0.999), "int8": (None, 0.9)}


class FeatureTokens(nn.Module):
    """A ViT's prefix tokens after the final norm: (batch, tokens, width). What `--features` exports."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "forward_features") or not hasattr(model, "num_prefix_tokens"):
            raise ConfigError(
                f"{type(model).__name__} has no class token: features export supports ViT students",
                "use `vitc features` with the checkpoint itself",
            )
        self.model, self.n = model, int(model.num_prefix_tokens)
        self.token_names = (
            ["cls", "dist"][: self.n]
            if hasattr(model, "dist_token")
            else ["cls"] + [f"reg{i}" for i in range(self.n - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)[:, : self.n]


class PooledFeatures(nn.Module):
    """A CNN's pre-logits features (timm's forward_head(pre_logits=True): the global pool), as one token."""

    token_names = ["pooled"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)[:, None]


def compare_features(ref: np.ndarray, got: np.ndarray, precision: str) -> dict:
    if ref.shape != got.shape:
        raise VitcError(f"features export output shape {got.shape} differs from PyTorch's {ref.shape}")
    r, g = ref.reshape(-1, ref.shape[-1]).astype(np.float64), got.reshape(-1, got.shape[-1]).astype(np.float64)
    cos = (r * g).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1) + 1e-12)
    atol, min_cos = FEATURE_TOLERANCE[precision]
    d = np.abs(r - g)
    v = {
        "n": int(ref.shape[0]),
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "atol": atol,
        "min_cosine": min_cos,
    }
    v["passed"] = bool(cos.min() >= min_cos and (atol is None or d.max() <= atol))
    return v
