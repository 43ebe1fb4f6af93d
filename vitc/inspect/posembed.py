"""`vitc posembed`: the learned position embeddings of a ViT checkpoint as in the ViT paper's figure 7:
for each patch, the cosine similarity of its position embedding with every other patch's, drawn
on the patch grid at the checkpoint's own size (class and distillation tokens left out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from ..errors import ModelError


def similarity(model) -> tuple[np.ndarray, tuple[int, int]]:
    """-> (P x P cosine similarities of the patch position embeddings, grid)."""
    import torch

    pe = getattr(model, "pos_embed", None)
    if pe is None or not hasattr(model, "patch_embed"):
        raise ModelError(
            f"{type(model).__name__} has no learned position embedding to show",
            "pass a ViT checkpoint (e.g. the student made by `vitc distill`)",
        )
    gh, gw = (int(g) for g in model.patch_embed.grid_size)
    p = pe.detach()[0]
    if not getattr(model, "no_embed_class", False):
        p = p[int(model.num_prefix_tokens) :]  # the class/distillation tokens' own embeddings
    if p.shape[0] != gh * gw:
        raise ModelError(f"pos_embed holds {p.shape[0]} patch positions but the grid is {gh}x{gw}")
    p = torch.nn.functional.normalize(p.float(), dim=-1)
    return (p @ p.T).numpy(), (gh, gw)


def structure(sim: np.ndarray, grid: tuple[int, int]) -> dict:
    """Mean similarity by relation: the 4 nearest neighbours, the same row, the same column, the rest."""
    gh, gw = grid
    r, c = np.divmod(np.arange(gh * gw), gw)
    same_r, same_c = r[:, None] == r[None], c[:, None] == c[None]
    dist = np.abs(r[:, None] - r[None]) + np.abs(c[:, None] - c[None])
    off = ~np.eye(gh * gw, dtype=bool)
    return {
        "neighbours": float(sim[(dist == 1)].mean()),
        "same_row": float(sim[same_r & off].mean()),
        "same_column": float(sim[same_c & off].mean()),
        "other": float(sim[~same_r & ~same_c].mean()),
        "all_off_diagonal": float(sim[off].mean()),
    }


def run(path: Path, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..handoff import Checkpoint

    c = Checkpoint.open(path)
    model = c.model
    sim, (gh, gw) = similarity(model)
    ckpt.writable_dir(out)
    fig, axes = plt.subplots(gh, gw, figsize=(min(12, 0.75 * gw + 1), min(12, 0.75 * gh + 1)), squeeze=False)
    for i in range(gh * gw):
        ax = axes[i // gw][i % gw]
        im = ax.imshow(sim[i].reshape(gh, gw), cmap="viridis", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{c.name} ({path}): cosine similarity of position embeddings, {gh}x{gw} patches", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.6, label="cosine similarity")
    png = out / "posembed.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    res = {
        "checkpoint": str(path),
        "model": c.name,
        "grid": [gh, gw],
        "png": str(png),
        **structure(sim, (gh, gw)),
    }
    ckpt.write_json(out / "posembed.json", res)
    return res
