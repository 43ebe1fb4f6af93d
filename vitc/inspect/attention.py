"""Attention probabilities of a ViT from any vitc model: a PyTorch checkpoint (timm's AttentionExtract
with fused attention off, dynamic-int8 checkpoints included), an ONNX artifact (its Softmax outputs
added as graph outputs) or an OpenVINO IR (`Model.add_outputs` on its Softmax ops, or, where OpenVINO
fused attention into its ScaledDotProductAttention op, on that op's query and key inputs, from which
softmax(q k^T * scale) is computed); plus attention rollout and the measures that compare two models' attention.

Each model yields, per block, an array (batch, heads, queries, tokens). An exported graph whose last
block was rewritten to compute only the head tokens (export/head_tokens.py) has 2 queries there,
the class and distillation tokens, which is all the class-token maps and rollout need."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, VitcError
from ..export.onnx import session_options

TOKENS = {"cls": 0, "dist": 1}
REEXPORT = {
    "onnx": "re-export it with `vitc export CKPT --target onnx` (opset 20 writes each block's attention as MatMul + Softmax)",
    "openvino": "re-export it with `vitc export CKPT --target openvino`",
}


@dataclass
class Attn:
    """What one model said about a batch: per-block attention, logits, the patch grid, prefix tokens."""

    name: str
    layers: list[np.ndarray]  # per block: (B, H, Nq, N)
    logits: np.ndarray
    grid: tuple[int, int]
    prefix: int
    notes: list[str] = field(default_factory=list)


def unfuse(model) -> int:
    """Turn timm's fused SDPA off on every attention module (the probabilities exist only unfused)."""
    n = 0
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
            n += 1
    return n


def require_attention(model, name: str) -> None:
    if not (hasattr(model, "blocks") and all(hasattr(b, "attn") for b in model.blocks)):
        raise ModelError(
            f"{name} is a CNN ({type(model).__name__}): it has no attention maps to show",
            "pass a ViT checkpoint or artifact (e.g. the student made by `vitc distill`)",
        )


def _grid(pre: dict, model_or_none=None, patch: int | None = None) -> tuple[int, int]:
    if model_or_none is not None and hasattr(model_or_none, "patch_embed"):
        return tuple(int(g) for g in model_or_none.patch_embed.grid_size)
    s = int(pre["input_size"][-1])
    return (s // patch, s // patch)


def from_torch(model, x: np.ndarray, name: str) -> Attn:
    import torch
    from timm.utils import AttentionExtract

    require_attention(model, name)
    unfuse(model)
    # hooks on each block's attn_drop (identity in eval): its input and output are the probabilities.
    # FX tracing (AttentionExtract's default) cannot trace torch's dynamic-int8 Linear modules.
    ex = AttentionExtract(model.eval(), method="hook")
    with torch.no_grad():
        t = torch.from_numpy(x)
        maps = ex(t)
        logits = model(t).numpy()
    order = sorted(maps, key=lambda k: int(k.split("blocks.")[1].split(".")[0]))
    return Attn(name, [maps[k].float().numpy() for k in order], logits, _grid({}, model), int(model.num_prefix_tokens))


def _io_meta(pre: dict, source_meta: dict | None) -> tuple[int, int]:
    """(patch size, prefix tokens) of an artifact, from its source checkpoint's architecture."""
    ov = (source_meta or {}).get("model", {}).get("overrides", {})
    name = (source_meta or {}).get("model", {}).get("name", "")
    return int(ov.get("patch_size", 16)), 2 if "distilled" in name else 1


def from_onnx(path: Path, x: np.ndarray, patch: int, prefix: int) -> Attn:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m = onnx.load(str(path))
    soft = [n for n in m.graph.node if n.op_type == "Softmax"]
    if not soft:
        raise VitcError(f"{path.name} has no Softmax to tap (its attention is a fused op)", REEXPORT["onnx"])
    half = any(i.data_type == TensorProto.FLOAT16 for i in m.graph.initializer)
    for n in soft:
        m.graph.output.append(
            helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT16 if half else TensorProto.FLOAT, None)
        )
    s = ort.InferenceSession(m.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})
    size = x.shape[-1] // patch
    return Attn(path.name, [o.astype(np.float32) for o in out[1:]], out[0], (size, size), prefix)


def from_openvino(path: Path, x: np.ndarray, patch: int, prefix: int) -> Attn:
    import openvino as ov

    from ..export.openvino import compile_config, runtime_precision

    core = ov.Core()
    m = core.read_model(str(path))
    ops = m.get_ordered_ops()
    soft = [o for o in ops if o.get_type_name() in ("Softmax", "SoftMax")]
    sdpa = [o for o in ops if o.get_type_name() == "ScaledDotProductAttention"]
    if soft:
        taps = [o.output(0) for o in soft]
    elif sdpa:
        # OpenVINO's converter fuses MatMul-Softmax-MatMul into one op (even from an explicit softmax):
        # tap its query and key inputs, as the runtime computes them (int8 matmuls included)
        for o in sdpa:
            if o.get_input_size() > 3 and o.get_input_size() != 5 or o.get_attributes().get("causal"):
                raise VitcError(
                    f"{path.name}: its attention op has a mask or is causal, which vitc cannot recompute",
                    "compare the checkpoint it was exported from",
                )
        taps = [t for o in sdpa for t in (o.input_value(0), o.input_value(1))]
    else:
        raise VitcError(
            f"{path.name} has neither a Softmax nor a ScaledDotProductAttention op to tap", REEXPORT["openvino"]
        )
    m.add_outputs(taps)
    m.reshape({m.input(0).get_any_name(): ov.PartialShape(list(x.shape))})
    c = core.compile_model(m, "CPU", compile_config("LATENCY", None, runtime_precision(m)))
    res = c(np.ascontiguousarray(x, dtype=np.float32))
    outs = [np.asarray(res[o], dtype=np.float64) for o in c.outputs]
    size = x.shape[-1] // patch
    if soft:
        layers = [o.astype(np.float32) for o in outs[1:]]
    else:
        layers = []
        for i, o in enumerate(sdpa):
            q, k = outs[1 + 2 * i], outs[2 + 2 * i]
            scale = (
                float(o.input_value(4).get_node().get_data().reshape(-1)[0])
                if o.get_input_size() == 5
                else q.shape[-1] ** -0.5
            )
            z = q @ np.swapaxes(k, -1, -2) * scale
            z = np.exp(z - z.max(-1, keepdims=True))
            layers.append((z / z.sum(-1, keepdims=True)).astype(np.float32))
    return Attn(path.name, layers, outs[0].astype(np.float32), (size, size), prefix)


def rollout(layers: list[np.ndarray], token: int) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) of one query token: per block, the head-mean attention
    plus the residual identity, A' = 0.5 A + 0.5 I, each row renormalised to sum 1; the product over the
    blocks, last block first. Only the token's row of the last block is needed, so a last block that
    computed only the head tokens' queries gives the same row. -> (B, N)."""
    *full, last = layers
    B, N = last.shape[0], last.shape[-1]
    eye = np.eye(N, dtype=np.float64)
    R = np.broadcast_to(eye, (B, N, N)).copy()
    for a in full:
        a = 0.5 * a.mean(1).astype(np.float64) + 0.5 * eye
        a /= a.sum(-1, keepdims=True)
        R = a @ R
    row = 0.5 * last.mean(1)[:, token].astype(np.float64) + 0.5 * eye[token]
    row /= row.sum(-1, keepdims=True)
    return np.einsum("bn,bnm->bm", row, R)


def patch_map(v: np.ndarray, a: Attn) -> np.ndarray:
    """(B, N) over all tokens -> (B, gh, gw) over the patches, renormalised to sum 1."""
    p = v[:, a.prefix :]
    p = p / p.sum(-1, keepdims=True)
    return p.reshape(p.shape[0], *a.grid)


def _resize(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    if maps.shape[1:] == tuple(grid):
        return maps
    import torch

    t = torch.nn.functional.interpolate(
        torch.from_numpy(maps)[:, None].float(), size=grid, mode="bilinear", align_corners=False
    )
    return t[:, 0].numpy()


def compare(ref: Attn, other: Attn, token: int, top: float = 0.10) -> dict:
    """Per image and averaged: per-layer and per-head Jensen-Shannon distance of the token's attention
    row (same token count only), Pearson r of the rollout maps, IoU of their top-10% patches."""
    from scipy.spatial.distance import jensenshannon

    out: dict = {"reference": ref.name, "compared": other.name}
    if len(ref.layers) == len(other.layers) and ref.layers[0].shape[-1] == other.layers[0].shape[-1]:
        js = np.stack(
            [
                jensenshannon(r[:, :, token].astype(np.float64), o[:, :, token].astype(np.float64), axis=-1, base=2)
                for r, o in zip(ref.layers, other.layers)
            ]
        )  # (L, B, H)
        out["js_per_layer_head"] = js.mean(1).tolist()
        out["js_per_layer"] = js.mean((1, 2)).tolist()
        out["js_per_image"] = js.mean((0, 2)).tolist()
    else:
        out["js_note"] = (
            f"not comparable token by token: {len(ref.layers)} blocks x {ref.layers[0].shape[-1]} tokens vs "
            f"{len(other.layers)} x {other.layers[0].shape[-1]}; rollout maps compared on the reference grid"
        )
    a = patch_map(rollout(ref.layers, token), ref).reshape(len(ref.logits), -1)
    b = _resize(patch_map(rollout(other.layers, token), other), ref.grid).reshape(len(ref.logits), -1)
    r = [float(np.corrcoef(x, y)[0, 1]) for x, y in zip(a, b)]
    k = max(1, int(round(top * a.shape[1])))
    iou = []
    for x, y in zip(a, b):
        sx, sy = set(np.argsort(-x)[:k]), set(np.argsort(-y)[:k])
        iou.append(len(sx & sy) / len(sx | sy))
    out.update(
        rollout_pearson=r,
        top10_iou=iou,
        rollout_pearson_mean=float(np.mean(r)),
        top10_iou_mean=float(np.mean(iou)),
        pred_reference=ref.logits.argmax(1).tolist(),
        pred_compared=other.logits.argmax(1).tolist(),
        agreement=float((ref.logits.argmax(1) == other.logits.argmax(1)).mean()),
    )
    return out
