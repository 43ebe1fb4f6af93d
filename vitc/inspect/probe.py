"""`vitc probe`: how much of the labels a frozen model's features encode, scikit-learn only.

- Linear probe: standardised features, multinomial logistic regression; C chosen on a stratified
  20% split of the train set, then refit on all of train; val top-1.
- k-NN (DINO's evaluation): cosine similarity, k=20, votes weighted by exp(similarity / 0.07)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from .features import load

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
K, T = 20, 0.07
SEED = 0


def _dino_weights(dist: np.ndarray) -> np.ndarray:
    return np.exp((1.0 - dist) / T)  # cosine distance -> similarity -> DINO's temperature-weighted vote


def linear_probe(Xtr, ytr, Xva, yva) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(C, X, y):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(X, y)

    strat = ytr if np.bincount(ytr).min() >= 2 else None
    a, b, ya, yb = train_test_split(Xtr, ytr, test_size=0.2, random_state=SEED, stratify=strat)
    scores = {C: float(fit(C, a, ya).score(b, yb)) for C in C_GRID}
    best = max(scores, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    top1 = 100.0 * float(fit(best, Xtr, ytr).score(Xva, yva))
    return {"top1": top1, "C": best, "split_scores": {str(k): v for k, v in scores.items()}}


def knn_probe(Xtr, ytr, Xva, yva, k: int = K) -> dict:
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(ytr)), metric="cosine", weights=_dino_weights, algorithm="brute")
    return {"top1": 100.0 * float(clf.fit(Xtr, ytr).score(Xva, yva)), "k": min(k, len(ytr)), "T": T}


def probe(path: Path, shuffle_labels: bool = False) -> dict:
    t, meta = load(path)
    Xtr, ytr, Xva, yva = t["train_features"], t["train_labels"], t["val_features"], t["val_labels"]
    if shuffle_labels:  # the control: features that predict shuffled labels would mean the probe leaks
        ytr = np.random.default_rng(SEED).permutation(ytr)
    n_cls = int(max(ytr.max(), yva.max()) + 1)
    return {
        "file": str(path),
        "model": meta.get("model"),
        "token": meta.get("token"),
        "dim": int(Xtr.shape[1]),
        "n_train": int(len(ytr)),
        "n_val": int(len(yva)),
        "chance": 100.0 * float(np.bincount(yva, minlength=n_cls).max() / len(yva)),
        "shuffled_labels": shuffle_labels,
        "logreg": linear_probe(Xtr, ytr, Xva, yva),
        "knn": knn_probe(Xtr, ytr, Xva, yva),
    }


def run(paths: list[Path], out: Path | None = None, shuffle_labels: bool = False) -> list[dict]:
    rows = [probe(Path(p), shuffle_labels) for p in paths]
    if out is not None:
        ckpt.write_json(out, rows)
    return rows
