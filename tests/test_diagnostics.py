"""vitc attention / posembed / features / probe: rollout maths, attention and features read from
exported artifacts equal PyTorch's, and the probe's floor and ceiling."""

import json

import numpy as np
import pytest
import torch

from vitc import export
from vitc.inspect import attention as A


def test_rollout_equals_the_hand_computed_product():
    rng = np.random.default_rng(0)

    def probs(h, nq, n):
        a = rng.random((1, h, nq, n)) + 0.1
        return a / a.sum(-1, keepdims=True)

    l1, l2 = probs(2, 3, 3), probs(2, 3, 3)
    eye = np.eye(3)

    def step(a):
        m = 0.5 * a[0].mean(0) + 0.5 * eye
        return m / m.sum(-1, keepdims=True)

    want = (step(l2) @ step(l1))[1]  # token 1's row of A'_2 A'_1
    assert np.allclose(A.rollout([l1, l2], token=1)[0], want)
    # a last block that computed only the first two queries (head tokens only) gives the same row
    assert np.allclose(A.rollout([l1, l2[:, :, :2]], token=1)[0], want)
    assert np.isclose(A.rollout([l1, l2], token=0)[0].sum(), 1.0)


@pytest.fixture(scope="module")
def val_batch(tiny_ckpt):
    from vitc.data import eval_tensors, load_source
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    X, _ = eval_tensors(load_source("digits", 32).val, meta["preprocess"])
    return model, meta, X[:8].numpy()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_attention_from_an_fp32_artifact_equals_pytorch(tmp_path, tiny_ckpt, val_batch, target):
    from vitc.export.stage import export_checkpoint
    from vitc.inspect.attention_run import open_source

    if export.get(target).check():
        pytest.skip(export.get(target).check())
    model, meta, x = val_batch
    m = export_checkpoint(tiny_ckpt, target, "fp32", tmp_path, threads=1)
    ref = A.from_torch(model, x, "torch")
    got = open_source(tmp_path / m["artifact"]).get(x)
    assert len(got.layers) == len(ref.layers) == 2 and got.grid == ref.grid == (4, 4) and got.prefix == 2
    for r, g in zip(ref.layers[:-1], got.layers[:-1]):
        assert np.allclose(r, g, atol=1e-4)
    # the export's last block computes only the head tokens' queries: rows 0-1 of PyTorch's
    assert got.layers[-1].shape[2] == 2 and np.allclose(ref.layers[-1][:, :, :2], got.layers[-1], atol=1e-4)
    c = A.compare(ref, got, token=0)
    assert max(c["js_per_layer"]) < 1e-3 and c["rollout_pearson_mean"] > 0.9999 and c["agreement"] == 1.0


def test_openvino_fuses_attention_and_vitc_taps_its_query_and_key(tmp_path, tiny_ckpt):
    """OpenVINO's converter turns each block's attention into one ScaledDotProductAttention op; the
    probabilities are recomputed from that op's own query and key inputs (compared with PyTorch above)."""
    import openvino as ov

    from vitc.export.stage import export_checkpoint

    if export.get("openvino").check():
        pytest.skip(export.get("openvino").check())
    m = export_checkpoint(tiny_ckpt, "openvino", "fp32", tmp_path, threads=1)
    ops = [o.get_type_name() for o in ov.Core().read_model(str(tmp_path / m["artifact"])).get_ordered_ops()]
    assert ops.count("ScaledDotProductAttention") == 2 and "Softmax" not in ops


def test_attention_command_writes_pngs_and_measures(tmp_path, tiny_ckpt):
    from vitc.inspect.attention_run import run

    res = run(tiny_ckpt, [tiny_ckpt], tmp_path, data="digits", pngs=2, limit=30)
    c = res["compared"][0]
    assert (
        res["images"] == 30
        and c["images"] == 30
        and len(c["js_per_layer"]) == 2
        and len(c["js_per_layer_head"][0]) == 3
    )
    assert max(c["js_per_layer"]) < 1e-6 and c["rollout_pearson_mean"] > 0.9999 and c["top10_iou_mean"] == 1.0  # itself
    assert (
        len(list(tmp_path.glob("attention-*.png"))) == 2
        and json.loads((tmp_path / "attention.json").read_text())["token"] == "cls"
    )


def test_features_from_an_exported_artifact_equal_pytorchs(tmp_path, tiny_ckpt):
    from safetensors.torch import load_file

    from vitc.export.stage import export_checkpoint
    from vitc.inspect.features import extract

    if export.get("onnx").check():
        pytest.skip(export.get("onnx").check())
    m = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path, threads=1, features=True)
    assert m["status"] == "ok" and m["output"] == "features" and m["tokens"] == ["cls", "dist"]
    for token in ("cls", "avg"):
        extract("digits", tiny_ckpt, token, tmp_path / f"pt-{token}.safetensors")
        extract("digits", tmp_path / m["artifact"], token, tmp_path / f"onnx-{token}.safetensors", threads=1)
        a, b = (
            load_file(str(tmp_path / f"pt-{token}.safetensors")),
            load_file(str(tmp_path / f"onnx-{token}.safetensors")),
        )
        assert a["val_features"].shape == (360, 192) and torch.equal(a["val_labels"], b["val_labels"])
        assert torch.allclose(a["val_features"], b["val_features"], atol=1e-4) and torch.allclose(
            a["train_features"], b["train_features"], atol=1e-4
        )
    # avg is what timm's forward_head(pre_logits=True) returns for a distilled DeiT
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    from vitc.data import eval_tensors, load_source

    X, _ = eval_tensors(load_source("digits", 32).val, meta["preprocess"])
    with torch.no_grad():
        want = model.forward_head(model.forward_features(X[:16]), pre_logits=True)
    assert torch.allclose(load_file(str(tmp_path / "pt-avg.safetensors"))["val_features"][:16], want, atol=1e-5)


def test_probe_beats_chance_and_falls_to_chance_on_shuffled_labels(tmp_path, tiny_ckpt):
    from vitc.inspect.features import extract
    from vitc.inspect.probe import probe

    f = tmp_path / "f.safetensors"
    extract("digits", tiny_ckpt, "cls", f)
    real, shuffled = probe(f), probe(f, shuffle_labels=True)
    assert real["chance"] < 12
    assert real["logreg"]["top1"] > 4 * real["chance"] and real["knn"]["top1"] > 4 * real["chance"]
    assert shuffled["logreg"]["top1"] < real["chance"] + 15 and shuffled["knn"]["top1"] < real["chance"] + 15


def test_posembed_similarity_grid(tmp_path, tiny_ckpt):
    from vitc.inspect.posembed import run, similarity
    from vitc.models import load_checkpoint_model

    model, _ = load_checkpoint_model(tiny_ckpt)
    sim, grid = similarity(model)
    assert grid == (4, 4) and sim.shape == (16, 16) and np.allclose(np.diag(sim), 1.0, atol=1e-5)
    # the class and distillation tokens are left out: row 0 is patch (0, 0)'s embedding
    p = torch.nn.functional.normalize(model.pos_embed[0, 2:].detach(), dim=-1)
    assert np.allclose(sim[0], (p @ p[0]).numpy(), atol=1e-5)
    r = run(tiny_ckpt, tmp_path)
    assert (tmp_path / "posembed.png").stat().st_size > 1000 and r["grid"] == [4, 4]
