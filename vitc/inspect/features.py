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

from .. import checkpoint as ckpt
from ..errors import ConfigError, VitcError
from ..feature_tokens import FeatureTokens, PooledFeatures, compare_features  # noqa: F401  (public here too)
from ..handoff import Checkpoint, Preprocess
from . import load_artifact, open_model

TOKENS = ("cls", "dist", "avg")


def pick(tokens: np.ndarray, names: list[str], token: str) -> np.ndarray:
    if names == ["pooled"]:  # a CNN (e.g. the teacher): its one pre-logits vector, whatever --token says
        return tokens[:, 0]
    if token == "avg":
        return tokens[:, : min(2, len(names))].mean(1) if "dist" in names else tokens[:, 0]
    if token not in names:
        raise ConfigError(
            f"--token {token}: this model has no {token} token (it has {', '.join(names)})", "use --token cls or avg"
        )
    return tokens[:, names.index(token)]


def _extractor(path: Path, random_init: bool, threads: int | None):
    """-> (fn(x) -> (B, T, D) tokens, token names, preprocess, classes, description, the handoff)."""
    h = open_model(path)
    if isinstance(h, Checkpoint):
        from ..int8_recipe import apply_recipe
        from ..models import build_from_spec

        model = h.runnable
        if random_init:
            torch.manual_seed(0)
            model = apply_recipe(
                build_from_spec(h.spec).eval(), h.quantization
            )  # the same architecture, timm's initialisation
        ft = (FeatureTokens(model) if hasattr(model, "num_prefix_tokens") else PooledFeatures(model)).eval()

        def fn(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return ft(torch.from_numpy(x)).numpy()

        kind = "random init (seed 0)" if random_init else ("PyTorch dynamic int8" if h.quantization else "PyTorch fp32")
        return fn, ft.token_names, h.pre.to_json(), h.classes, f"{path} ({kind})", h
    if random_init:
        raise ConfigError("--random-init needs a checkpoint dir (it rebuilds the architecture untrained)")
    m = h.manifest
    if m.output != "features":
        raise VitcError(
            f"{path.name} outputs logits, not features",
            f"export a features artifact: vitc export CKPT --target {m.target} --precision {m.precision} --features",
        )
    return (
        load_artifact(h, threads),
        m.tokens,
        h.pre.to_json(),
        h.classes,
        f"{path.name} ({m.target} {m.precision})",
        h,
    )


def extract(
    data: str,
    model: Path,
    token: str,
    out: Path,
    random_init: bool = False,
    threads: int | None = None,
    batch: int = 64,
    train_limit: int | None = None,
) -> dict:
    from ..data import Split, eval_tensors, load_source
    from ..validate import run_artifact

    if token not in TOKENS:
        raise ConfigError(f"--token {token!r} is not one of {', '.join(TOKENS)}")
    fn, names, pre, classes, desc, h = _extractor(Path(model), random_init, threads)
    data = h.data_name(data)
    src = load_source(data, Preprocess.from_json(pre).size)
    if src.classes != list(classes):
        raise ConfigError(
            f"{data} has classes {src.classes[:5]}... but the model has {list(classes)[:5]}...",
            "extract features of the dataset the model was trained on",
        )
    train = src.train
    if train_limit is not None and train_limit < len(train.targets):
        # a fixed, stratified subset: the probes' cost grows with the train features (55k on Fashion-MNIST)
        from sklearn.model_selection import train_test_split

        if train_limit < len(classes):
            raise ConfigError(f"--train-limit {train_limit} is fewer than the {len(classes)} classes")
        keep, _ = train_test_split(
            np.arange(len(train.targets)), train_size=train_limit, random_state=0, stratify=train.targets
        )
        train = Split([train.items[i] for i in keep], [train.targets[i] for i in keep])
    tensors = {}
    for split, s in (("train", train), ("val", src.val)):
        X, Y = eval_tensors(s, pre)
        tensors[f"{split}_features"] = torch.from_numpy(
            np.ascontiguousarray(pick(run_artifact(fn, X, batch), names, token))
        )
        tensors[f"{split}_labels"] = Y.long()
    token = "pooled" if names == ["pooled"] else token
    meta = {
        "model": desc,
        "token": token,
        "tokens_available": json.dumps(names),
        "preprocess": json.dumps(pre),
        "classes": json.dumps(list(classes)),
        "data": json.dumps(src.provenance),
        "format": "vitc-features/1",
    }
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out} must end in .safetensors")
    ckpt.save_weights(out, tensors, metadata=meta)
    return {
        "out": str(out),
        "model": desc,
        "token": token,
        "train": tuple(tensors["train_features"].shape),
        "val": tuple(tensors["val_features"].shape),
    }


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file() or path.suffix != ".safetensors":
        raise VitcError(
            f"{path} is not a features file written by `vitc features` (a .safetensors file)",
            "make one with `vitc features DATA --model CKPT_OR_ARTIFACT --out FILE.safetensors`",
        )
    t = {k: v.numpy() for k, v in ckpt.load_weights(path).items()}
    with safe_open(str(path), "np") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "vitc-features/1" or not {
        "train_features",
        "train_labels",
        "val_features",
        "val_labels",
    } <= set(t):
        raise VitcError(
            f"{path} is not a features file written by `vitc features`",
            "make one with `vitc features DATA --model ...`",
        )
    return t, meta
