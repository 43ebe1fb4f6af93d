"""`vitc attention`: one PNG per image (the image, the last block's per-head maps, the rollout, and the
same for each compared model with its difference) and attention.json (per-layer and per-head
Jensen-Shannon distance, rollout Pearson r, top-10% IoU, predictions) over the images or a whole val split."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import checkpoint as ckpt
from ..errors import VitcError
from ..handoff import Artifact, Checkpoint, Preprocess
from . import attention as A
from . import open_model

BATCH = 24  # attention arrays are blocks x heads x tokens^2 per image: 5.6 MB each for deit_tiny at 224


@dataclass
class Source:
    name: str
    get: Callable[[np.ndarray], A.Attn]
    pre: dict
    classes: list
    handoff: Checkpoint | Artifact


def open_source(path: Path) -> Source:
    h = open_model(path)
    if isinstance(h, Checkpoint):
        A.require_attention(h.model, f"{path} ({h.name})")
        model = h.runnable
        name = f"{Path(path).name} (PyTorch {'dynamic int8' if h.quantization else 'fp32'})"
        return Source(name, lambda x: A.from_torch(model, x, name), h.pre.to_json(), h.classes, h)
    src = h.checkpoint()
    if src is None:
        raise VitcError(
            f"{h.path.name}: its source checkpoint {h.manifest.source_checkpoint} is gone, so its patch grid is unknown",
            "keep the checkpoint the artifact was exported from",
        )
    A.require_attention(src.model, f"{h.path.name} (exported from {src.name})")
    pre = h.pre.to_json()
    patch, prefix = A._io_meta(pre, src.meta)
    p = h.path
    if p.suffix == ".onnx":
        return Source(p.name, lambda x: A.from_onnx(p, x, patch, prefix), pre, h.classes, h)
    if p.suffix == ".xml":
        return Source(p.name, lambda x: A.from_openvino(p, x, patch, prefix), pre, h.classes, h)
    raise VitcError(
        f"{p.name}: attention can be read from checkpoints, ONNX and OpenVINO artifacts, not {p.suffix}",
        "pass the checkpoint it was exported from, or an ONNX/OpenVINO export of it",
    )


def _inputs(
    src: Source, images: list[Path] | None, data: str | None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    import torch

    from ..data import build_transform, eval_tensors, load_image, load_source

    if images:
        tf = build_transform(src.pre, train=False)
        return torch.stack([tf(load_image(p)) for p in images]).numpy(), None, [Path(p).name for p in images]
    s = load_source(data, Preprocess.from_json(src.pre).size)
    X, Y = eval_tensors(s.val, src.pre)
    return X.numpy(), Y.numpy(), [f"val[{i}]" for i in range(len(Y))]


def run(
    model: Path,
    compare: list[Path],
    out: Path,
    images: list[Path] | None = None,
    data: str | None = None,
    token: str = "cls",
    pngs: int = 4,
    limit: int | None = None,
) -> dict:
    t = A.TOKENS[token]
    ref = open_source(model)
    others = [open_source(c) for c in compare]
    ckpt.writable_dir(out)
    data = None if images else ref.handoff.data_name(data)  # the reference's data, for every model compared
    ins = [_inputs(s, images, data) for s in [ref, *others]]
    n = len(ins[0][0]) if limit is None else min(limit, len(ins[0][0]))
    labels, y = ins[0][2], ins[0][1]
    acc: list[list[dict]] = [[] for _ in others]
    shown = 0
    for i in range(0, n, BATCH):
        sl = slice(i, min(n, i + BATCH))
        a_ref = ref.get(ins[0][0][sl])
        a_oth = [s.get(x[0][sl]) for s, x in zip(others, ins[1:])]
        for k, a in enumerate(a_oth):
            acc[k].append(A.compare(a_ref, a, t))
        while shown < min(pngs, n) and shown < sl.stop:
            j = shown - i
            _png(
                out / f"attention-{shown:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '', Path(labels[shown]).stem)}.png",
                ins[0][0][shown],
                ref,
                a_ref,
                others,
                a_oth,
                j,
                t,
                labels[shown],
                None if y is None else ref.classes[int(y[shown])],
            )
            shown += 1
    res = {
        "model": ref.name,
        "token": token,
        "images": n,
        "source": "images" if images else f"val split of {data}",
        "compared": [_merge(parts, ref, y[:n] if y is not None else None) for parts in acc],
    }
    ckpt.write_json(out / "attention.json", res)
    return res


def _merge(parts: list[dict], ref: Source, y) -> dict:
    """Batch results -> image-weighted means over everything seen."""
    w = np.array([len(p["rollout_pearson"]) for p in parts], dtype=float)
    m: dict = {"reference": parts[0]["reference"], "compared": parts[0]["compared"]}
    if "js_per_layer" in parts[0]:
        m["js_per_layer"] = np.average([p["js_per_layer"] for p in parts], axis=0, weights=w).tolist()
        m["js_per_layer_head"] = np.average([p["js_per_layer_head"] for p in parts], axis=0, weights=w).tolist()
        m["most_changed_layer"] = int(np.argmax(m["js_per_layer"]))
    else:
        m["js_note"] = parts[0]["js_note"]
    r = sum((p["rollout_pearson"] for p in parts), [])
    iou = sum((p["top10_iou"] for p in parts), [])
    pr, pc = sum((p["pred_reference"] for p in parts), []), sum((p["pred_compared"] for p in parts), [])
    m.update(
        rollout_pearson_mean=float(np.mean(r)),
        top10_iou_mean=float(np.mean(iou)),
        agreement=float(np.mean(np.array(pr) == np.array(pc))),
        images=len(r),
    )
    if y is not None:
        m.update(
            top1_reference=float(100 * np.mean(np.array(pr) == y)),
            top1_compared=float(100 * np.mean(np.array(pc) == y)),
        )
    if len(r) <= 16:  # a handful of named images: keep each one's numbers and predictions
        m.update(
            rollout_pearson=r,
            top10_iou=iou,
            pred_reference=[ref.classes[i] for i in pr],
            pred_compared=[ref.classes[i] for i in pc],
        )
    return m


def _png(
    path: Path,
    x: np.ndarray,
    ref: Source,
    a_ref: A.Attn,
    others: list[Source],
    a_oth: list[A.Attn],
    j: int,
    token: int,
    label: str,
    truth: str | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(ref, a_ref)] + list(zip(others, a_oth))
    heads = max(a.layers[-1].shape[1] for _, a in rows)
    cols = 1 + heads + 2
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.0 * len(rows)), squeeze=False)
    img = x.transpose(1, 2, 0)
    img = (img - img.min()) / max(1e-8, float(img.max() - img.min()))
    r_ref = A.patch_map(A.rollout([l[j : j + 1] for l in a_ref.layers], token), a_ref)[0]
    for r, (s, a) in enumerate(rows):
        ax = axes[r]
        ax[0].imshow(img)
        pred = s.classes[int(a.logits[j].argmax())]
        title = s.name[:40].replace(" (", "\n(")
        ax[0].set_title(
            f"{title}\npred {pred}" + (f" (true {truth})" if truth is not None and r == 0 else ""), fontsize=6
        )
        last = a.layers[-1][j]  # (H, Nq, N)
        for h in range(heads):
            if h < last.shape[0]:
                v = last[h, token, a.prefix :]
                ax[1 + h].imshow((v / v.sum()).reshape(a.grid), cmap="viridis")
                ax[1 + h].set_title(f"last block, head {h}", fontsize=6)
        ro = A.patch_map(A.rollout([l[j : j + 1] for l in a.layers], token), a)[0]
        ax[1 + heads].imshow(ro, cmap="inferno")
        ax[1 + heads].set_title("rollout", fontsize=6)
        if r > 0:
            d = A._resize(ro[None], a_ref.grid)[0] - r_ref
            lim = float(np.abs(d).max()) or 1.0
            ax[2 + heads].imshow(d, cmap="coolwarm", vmin=-lim, vmax=lim)
            ax[2 + heads].set_title(f"rollout - reference\n(max |d| {lim:.1e})", fontsize=6)
        for a_ in ax:
            a_.axis("off")
    fig.suptitle(f"{label}: {['class', 'distillation'][token]}-token attention", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
