"""vitc prune: torch-pruning on a timm DeiT, the pickle-free pruned checkpoint, and everything downstream."""

import json
import zipfile

import pytest
import torch
from test_pipeline import ONE_ROUND, TINY, _write, vitc

from vitc import checkpoint as ckpt
from vitc.config import PruneConfig
from vitc.errors import ConfigError


def _pruned_in_memory(tiny_ckpt, **kw):
    from vitc.compress.prune import prune_model
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    x = torch.randn(1, *meta["preprocess"]["input_size"])
    structure = prune_model(model, PruneConfig(str(tiny_ckpt), **kw), x)
    return model, meta, structure


def test_prune_cuts_every_width_and_keeps_the_heads(tiny_ckpt):
    from vitc.models import load_checkpoint_model

    model, meta, s = _pruned_in_memory(tiny_ckpt, ratio=0.5, round_to=16)
    assert s["embed_dim"] == 96  # 192 * 0.5
    for b, w in zip(model.blocks, s["blocks"]):
        assert w == {"heads": 3, "head_dim": 32, "mlp_hidden": 384}
        # timm's attributes were synced with the cut tensors (forward reshapes by them)
        assert b.attn.attn_dim == 96 and b.attn.scale == pytest.approx(32**-0.5)
    assert model.cls_token.shape[-1] == model.dist_token.shape[-1] == model.pos_embed.shape[-1] == 96
    assert model.num_features == model.embed_dim == 96
    assert model.head.out_features == model.head_dist.out_features == 10  # both heads ignored
    unpruned, _ = load_checkpoint_model(tiny_ckpt)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == unpruned(x).shape and not torch.allclose(model(x), unpruned(x))


def test_head_ratio_removes_whole_heads(tiny_ckpt):
    model, _, s = _pruned_in_memory(tiny_ckpt, ratio=0.25, head_ratio=0.3, round_to=None)
    assert all(
        b["heads"] == 2 and b["head_dim"] == 48 for b in s["blocks"]
    )  # ceil(0.3 x 3) = 1 head gone, dims cut 25%
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ConfigError, match="would remove all 3 heads of block 0"):
        _pruned_in_memory(tiny_ckpt, ratio=0.25, head_ratio=0.67)


def test_prune_save_load_same_logits_without_pickle(tmp_path, tiny_ckpt, monkeypatch):
    from vitc.models import ModelSpec, load_checkpoint_model

    model, meta, s = _pruned_in_memory(tiny_ckpt, ratio=0.4)
    m = meta["model"]
    spec = ModelSpec(m["name"], m["overrides"], structure=s)
    ckpt.save_checkpoint(tmp_path / "p", model.eval(), {**meta, "stage": "prune", "model": spec.to_json()})
    assert json.loads((tmp_path / "p" / ckpt.META).read_text())["model"]["structure"] == s
    for f in (tmp_path / "p").iterdir():  # safetensors + JSON: no zip/pickle container anywhere
        assert not zipfile.is_zipfile(f) and not f.read_bytes()[:2] == b"\x80\x02", f

    def no_unpickling(*a, **k):
        raise AssertionError("a pruned checkpoint must load without torch.load")

    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded, _ = load_checkpoint_model(tmp_path / "p")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory, tiny_ckpt):
    """`vitc prune` end to end on the tiny student: 1 epoch of re-distillation from a ViT teacher."""
    out = tmp_path_factory.mktemp("prune") / "pruned"
    p = vitc(
        "prune",
        tiny_ckpt,
        "--teacher-checkpoint",
        tiny_ckpt,
        "--ratio",
        "0.5",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--out",
        out,
    )
    return out, p


def test_cli_prune_writes_a_pruned_student(pruned_run, tiny_ckpt):
    out, p = pruned_run
    assert "embed 96; 2 blocks;" in p.stdout and "done" in p.stdout  # the widths line names the depth (issue 26)
    meta = ckpt.load_meta(out)
    assert meta["stage"] == "prune" and meta["model"]["structure"]["embed_dim"] == 96
    pr = meta["pruning"]
    assert pr["source"]["sha256"] == ckpt.load_meta(tiny_ckpt)["weights_sha256"]
    assert (
        pr["after_pruning"]["gflops"] < 0.5 * pr["before"]["gflops"]
        and pr["after_pruning"]["params"] < pr["before"]["params"]
    )
    assert {f.name for f in (out / "best").iterdir()} == {ckpt.META, ckpt.WEIGHTS}


def test_info_shows_the_pruned_widths(pruned_run):
    out, _ = pruned_run
    p = vitc("info", out)
    info = json.loads(p.stdout)
    assert info["structure"]["embed_dim"] == 96 and info["structure"]["blocks"][0]["head_dim"] == 32
    assert info["widths"].startswith("embed 96; 2 blocks; per block heads x head-dim / MLP: 3x32/384 (x2)")
    assert info["pruning"]["ratio"] == 0.5 and info["gflops_per_image"] < info["pruning"]["before"]["gflops"]


@pytest.mark.parametrize(
    "target, precision",
    [
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
        ("torchscript-lite", "fp32"),
        ("executorch", "fp32"),
    ],
)
def test_pruned_student_exports_and_validates(tmp_path, pruned_run, target, precision):
    from vitc import export
    from vitc.export.stage import export_checkpoint

    if export.get(target).check():
        pytest.skip(export.get(target).check())
    out, _ = pruned_run
    m = export_checkpoint(
        out, target, precision, tmp_path, threads=1, calib="digits" if precision == "int8" else None, calib_size=32
    )
    assert m["status"] == "ok", m
    v = m["validation"]
    assert v["top1_agreement"] >= (0.99 if precision == "fp32" else 0.9)
    if precision == "fp32":
        assert v["max_abs_diff"] < 1e-3


def test_pipeline_reruns_from_prune_when_its_ratio_changes(tmp_path, image_folder):
    runs = tmp_path / "runs"
    text = TINY.replace(
        "quantize:",
        "prune: {{ratio: {ratio}, train: {{epochs: 1, batch_size: 16, warmup_epochs: 0.0, threads: 1}}}}\nquantize:",
    )
    text = text.replace("targets: [onnx, tensorrt]", "targets: [onnx]").replace(*ONE_ROUND)
    cfg = _write(tmp_path, text.format(data=image_folder, runs=runs, min_runs=2, ratio=0.5))
    vitc("pipeline", cfg)
    root = runs / "tiny"
    assert ckpt.load_meta(root / "pruned")["model"]["structure"]["embed_dim"] == 96
    art = json.loads((root / "exports" / "pruned-onnx-fp32.onnx.json").read_text())
    assert (
        art["source"]["weights_sha256"] == ckpt.load_meta(root / "pruned")["weights_sha256"]
    )  # the pruned student is exported
    rows = {r["artifact"]: r for r in json.loads((root / "bench" / "bench.json").read_text())["rows"]}
    assert rows["pruned-pytorch-fp32"]["status"] == "ok" and rows["student-pytorch-fp32"]["status"] == "ok"
    distilled = ckpt.load_meta(root / "student")["weights_sha256"]

    cfg.write_text(text.format(data=image_folder, runs=runs, min_runs=2, ratio=0.25))
    p = vitc("pipeline", cfg)
    assert p.stdout.count("skipped, inputs and settings unchanged") == 2  # teacher, distill
    assert "prune: settings or inputs changed" in p.stdout
    assert ckpt.load_meta(root / "student")["weights_sha256"] == distilled
    assert ckpt.load_meta(root / "pruned")["model"]["structure"]["embed_dim"] == 144
    for folder in ("int8", "exports", "bench"):
        assert json.loads((root / folder / "stage.json").read_text())["status"] == "done"


def test_prune_resume_rebuilds_the_pruned_shape(tmp_path, tiny_ckpt):
    out = tmp_path / "p"
    args = [
        "prune",
        tiny_ckpt,
        "--teacher-checkpoint",
        tiny_ckpt,
        "--ratio",
        "0.25",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--out",
        out,
    ]
    vitc(*args)
    # as if interrupted after epoch 1: the train state goes back one epoch
    st = ckpt.load_train_state(out / ckpt.TRAIN_STATE)
    st.update(epoch=1, history=st["history"][:1])
    ckpt.save_train_state(out / ckpt.TRAIN_STATE, st)
    text = " ".join(vitc(*args, "--resume").stdout.split())
    assert (
        "resumed from" in text and "after epoch 1/2" in text and "before re-distillation" not in text
    )  # no second cut
    meta = ckpt.load_meta(out)
    assert meta["model"]["structure"]["embed_dim"] == 144 and len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_pruned_student_quantizes_with_torch_and_predicts(tmp_path, pruned_run, digit_png):
    from vitc.compress.quantize import quantize_checkpoint
    from vitc.inspect import predict

    out, _ = pruned_run
    m = quantize_checkpoint(out, tmp_path / "int8", max_drop=None)
    assert m["status"] == "ok" and ckpt.load_meta(tmp_path / "int8")["model"]["structure"]["embed_dim"] == 96
    for path in (out, tmp_path / "int8"):
        top = predict(path, [digit_png], topk=3)[0]["top"]
        assert len(top) == 3 and top[0]["prob"] >= top[1]["prob"]


def test_taylor_importance_uses_gradients_and_needs_images(tiny_ckpt):
    from vitc.compress.prune import prune_model
    from vitc.data import eval_tensors, load_source
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    X, Y = eval_tensors(load_source("digits", 32).train, meta["preprocess"])
    cfg = PruneConfig(str(tiny_ckpt), ratio=0.5, importance="taylor")
    with pytest.raises(ConfigError, match="taylor needs training images"):
        prune_model(model, cfg, X[:1])
    s = prune_model(model, cfg, X[:1], [(X[:32], Y[:32]), (X[32:64], Y[32:64])])
    assert s["embed_dim"] == 96 and all(p.grad is None for p in model.parameters())
    magnitude, _ = load_checkpoint_model(tiny_ckpt)
    prune_model(magnitude, PruneConfig(str(tiny_ckpt), ratio=0.5), X[:1])
    assert not torch.equal(model.blocks[0].mlp.fc1.weight, magnitude.blocks[0].mlp.fc1.weight)  # other channels kept
