"""`vitc features`: the pre-logits features of every train and val image, from a checkpoint or from an
artifact exported with `--features`, written to safetensors with their labels and metadata.

Tokens: `cls` (the class token after the final norm), `dist` (the distillation token), `avg` (their
mean: what timm's `forward_head(pre_logits=True)` returns for a distilled DeiT, and what its two
heads read). A features export outputs the prefix tokens (batch, tokens, width), so any of the three
can be taken from one artifact."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from ..errors import ConfigError, VitcError

TOKENS = ("cls", "dist", "avg")
# features of an artifact vs PyTorch's: minimum cosine per image, and max |diff| for fp32
FEATURE_TOLERANCE = {"fp32": (1e-3, 0.9999), "fp16": (5e-2, 0.999), "int8": (None, 0.9)}


class FeatureTokens(nn.Module):
    """A ViT's prefix tokens after the final norm: (batch, tokens, width). What `--features` exports."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, "forward_features") or not hasattr(model, "num_prefix_tokens"):
            raise ConfigError(f"{type(model).__name__} has no class token: features export supports ViT students",
                              "use `vitc features` with the checkpoint itself")
        self.model, self.n = model, int(model.num_prefix_tokens)
        self.token_names = ["cls", "dist"][: self.n] if hasattr(model, "dist_token") else ["cls"] + [f"reg{i}" for i in range(self.n - 1)]

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


def pick(tokens: np.ndarray, names: list[str], token: str) -> np.ndarray:
    if names == ["pooled"]:  # a CNN (e.g. the teacher): its one pre-logits vector, whatever --token says
        return tokens[:, 0]
    if token == "avg":
        return tokens[:, : min(2, len(names))].mean(1) if "dist" in names else tokens[:, 0]
    if token not in names:
        raise ConfigError(f"--token {token}: this model has no {token} token (it has {', '.join(names)})", "use --token cls or avg")
    return tokens[:, names.index(token)]


def compare_features(ref: np.ndarray, got: np.ndarray, precision: str) -> dict:
    if ref.shape != got.shape:
        raise VitcError(f"features export output shape {got.shape} differs from PyTorch's {ref.shape}")
    r, g = ref.reshape(-1, ref.shape[-1]).astype(np.float64), got.reshape(-1, got.shape[-1]).astype(np.float64)
    cos = (r * g).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1) + 1e-12)
    atol, min_cos = FEATURE_TOLERANCE[precision]
    d = np.abs(r - g)
    v = {"n": int(ref.shape[0]), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()), "cosine_min": float(cos.min()),
         "cosine_mean": float(cos.mean()), "atol": atol, "min_cosine": min_cos}
    v["passed"] = bool(cos.min() >= min_cos and (atol is None or d.max() <= atol))
    return v


def _extractor(path: Path, random_init: bool, threads: int | None):
    """-> (fn(x) -> (B, T, D) tokens, token names, preprocess, classes, description)."""
    from ..export.stage import read_manifest

    if ckpt.is_checkpoint_dir(path):
        from ..compress.quantize import apply_recipe
        from ..models import build_from_spec, load_checkpoint_model

        model, meta = load_checkpoint_model(path)
        if random_init:
            torch.manual_seed(0)
            model = build_from_spec(meta["model"]).eval()  # the same architecture, timm's initialisation
        model = apply_recipe(model, meta.get("quantization"))
        ft = (FeatureTokens(model) if hasattr(model, "num_prefix_tokens") else PooledFeatures(model)).eval()

        def fn(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return ft(torch.from_numpy(x)).numpy()
        kind = "random init (seed 0)" if random_init else ("PyTorch dynamic int8" if meta.get("quantization") else "PyTorch fp32")
        return fn, ft.token_names, meta["preprocess"], meta["classes"], f"{path} ({kind})"
    if random_init:
        raise ConfigError("--random-init needs a checkpoint dir (it rebuilds the architecture untrained)")
    from .. import export

    m = read_manifest(path)
    if m.get("output") != "features":
        raise VitcError(f"{path.name} outputs logits, not features",
                        f"export a features artifact: vitc export CKPT --target {m['target']} --precision {m['precision']} --features")
    target = export.by_suffix()[path.suffix]
    return target.load(path, threads), m["tokens"], m["preprocess"], m["classes"], f"{path.name} ({m['target']} {m['precision']})"


def extract(data: str, model: Path, token: str, out: Path, random_init: bool = False, threads: int | None = None,
            batch: int = 64) -> dict:
    from ..data import eval_tensors, load_source
    from ..validate import run_artifact

    if token not in TOKENS:
        raise ConfigError(f"--token {token!r} is not one of {', '.join(TOKENS)}")
    fn, names, pre, classes, desc = _extractor(Path(model), random_init, threads)
    src = load_source(data, pre["input_size"][-1])
    if src.classes != list(classes):
        raise ConfigError(f"{data} has classes {src.classes[:5]}... but the model has {list(classes)[:5]}...",
                          "extract features of the dataset the model was trained on")
    tensors = {}
    for split, s in (("train", src.train), ("val", src.val)):
        X, Y = eval_tensors(s, pre)
        tensors[f"{split}_features"] = torch.from_numpy(np.ascontiguousarray(pick(run_artifact(fn, X, batch), names, token)))
        tensors[f"{split}_labels"] = Y.long()
    token = "pooled" if names == ["pooled"] else token
    meta = {"model": desc, "token": token, "tokens_available": json.dumps(names), "preprocess": json.dumps(pre),
            "classes": json.dumps(list(classes)), "data": json.dumps(src.provenance), "format": "vitc-features/1"}
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out} must end in .safetensors")
    ckpt.save_weights(out, tensors, metadata=meta)
    return {"out": str(out), "model": desc, "token": token, "train": tuple(tensors["train_features"].shape),
            "val": tuple(tensors["val_features"].shape)}


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file() or path.suffix != ".safetensors":
        raise VitcError(f"{path} is not a features file written by `vitc features` (a .safetensors file)",
                        "make one with `vitc features DATA --model CKPT_OR_ARTIFACT --out FILE.safetensors`")
    t = {k: v.numpy() for k, v in ckpt.load_weights(path).items()}
    with safe_open(str(path), "np") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "vitc-features/1" or not {"train_features", "train_labels", "val_features", "val_labels"} <= set(t):
        raise VitcError(f"{path} is not a features file written by `vitc features`", "make one with `vitc features DATA --model ...`")
    return t, meta
