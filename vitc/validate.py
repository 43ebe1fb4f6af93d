"""Prove an artifact computes the same function as the PyTorch model, on real val images.

Typed errors as in Optimum's validate_model_outputs: a shape mismatch is fatal (ShapeError);
a tolerance miss is recorded with its numbers and reported, not raised, so the artifact and its
manifest survive for inspection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from .errors import VitcError


class ShapeError(VitcError):
    """The artifact's output shape differs from the PyTorch model's."""


@dataclass
class Validation:
    n: int
    max_abs_diff: float
    mean_abs_diff: float
    cosine_min: float
    top1_agreement: float  # fraction of images where the artifact's argmax equals PyTorch's
    top1_artifact: float  # accuracy of the artifact on the labels (percent)
    top1_reference: float  # accuracy of the PyTorch model (percent)
    atol: float
    min_agreement: float
    passed: bool

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"max|diff| {self.max_abs_diff:.2e} (atol {self.atol:g}), min cosine {self.cosine_min:.6f}, "
            f"top-1 agreement {100 * self.top1_agreement:.2f}% (need {100 * self.min_agreement:.1f}%), "
            f"top-1 {self.top1_artifact:.2f}% vs PyTorch {self.top1_reference:.2f}%"
        )


def reference_logits(model: torch.nn.Module, X: torch.Tensor, batch: int = 128) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(X[i : i + batch]) for i in range(0, len(X), batch)]).float().numpy()


def run_artifact(fn: Callable[[np.ndarray], np.ndarray], X: torch.Tensor, batch: int) -> np.ndarray:
    from .progress import track

    outs = [
        np.asarray(fn(np.ascontiguousarray(X[i : i + batch].numpy())))
        for i in track(range(0, len(X), batch), "run on val images", -(-len(X) // batch), unit="batch")
    ]
    return np.concatenate(outs).astype(np.float32)


def compare(ref: np.ndarray, got: np.ndarray, labels: np.ndarray, atol: float, min_agreement: float) -> Validation:
    if ref.shape != got.shape:
        raise ShapeError(
            f"artifact output shape {got.shape} differs from PyTorch's {ref.shape}",
            "the export changed the model's interface; rerun with --debug and report it",
        )
    diff = np.abs(ref.astype(np.float64) - got)
    num = (ref * got).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    v = Validation(
        n=len(ref),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        cosine_min=float((num / den).min()),
        top1_agreement=agree,
        top1_artifact=100.0 * float((got.argmax(1) == labels).mean()),
        top1_reference=100.0 * float((ref.argmax(1) == labels).mean()),
        atol=atol,
        min_agreement=min_agreement,
        passed=False,
    )
    v.passed = bool(v.max_abs_diff <= atol and agree >= min_agreement)
    return v
