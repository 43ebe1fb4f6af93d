"""quantize / export / predict / info through the real CLI."""

import json
import os
import subprocess
import sys

import pytest

from vitc import checkpoint as ckpt

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def vitc(*args, check=True):
    p = subprocess.run(
        [sys.executable, "-m", "vitc", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600
    )
    if check and p.returncode != 0:
        raise AssertionError(f"vitc {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def test_quantize_torch_dynamic_int8(tmp_path, tiny_ckpt, digit_png):
    out = tmp_path / "int8"
    p = vitc("quantize", tiny_ckpt, "--backend", "torch", "--out", out, "--threads", "1")
    meta = ckpt.load_meta(out)
    assert meta["quantization"]["method"] == "torch.ao.quantization.quantize_dynamic"
    # the quantized checkpoint is the fp32 safetensors + the recipe (no pickles)
    assert meta["weights_sha256"] == ckpt.sha256_file(tiny_ckpt / ckpt.WEIGHTS)
    assert abs(meta["metrics"]["top1_drop"]) <= 1.0 and meta["metrics"]["status"] == "ok"
    ptl = out / "tiny-torchscript-lite-int8.ptl"  # named for the checkpoint's folder, from the CLI and a pipeline alike
    man = json.loads((out / (ptl.name + ".json")).read_text())
    assert man["precision"] == "int8" and "XNNPACK" in p.stdout + json.dumps(man["notes"])
    p = vitc("export", out, "--target", "onnx", "--out", tmp_path / "x", check=False)
    assert p.returncode == 2 and "--precision int8" in p.stderr
    info = json.loads(vitc("info", out).stdout)
    assert info["layers"].get("DynamicQuantizedLinear", 0) > 0 and info["layers"].get("Linear", 0) == 0
    r = vitc("predict", ptl, digit_png, "--topk", "2")
    assert "seven.png:" in r.stdout and r.stdout.count(" 0.") + r.stdout.count(" 1.0") >= 2


def test_info_reports_params_and_gflops(tiny_ckpt):
    info = json.loads(vitc("info", tiny_ckpt).stdout)
    # deit tiny, depth 2, patch 8, 10 classes: counted here independently of vitc.inspect
    import timm

    m = timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10)
    assert info["params"] == sum(p.numel() for p in m.parameters())
    # 2 blocks x 18 tokens: qkv/proj/mlp matmuls 12*d^2 MACs per token, plus attention and the embedding
    d, n = 192, 18
    approx = 2 * (2 * n * 12 * d * d + 2 * 2 * n * n * d) + 2 * 16 * (3 * 64 * d)
    assert 0.9 * approx / 1e9 < info["gflops_per_image"] < 1.2 * approx / 1e9
    assert info["input"]["input_size"] == [3, 32, 32] and info["layers"]["Linear"] >= 8


def test_export_list_and_unknown_target(tiny_ckpt, tmp_path):
    p = vitc("export", "--list")
    for name in ("onnx", "openvino", "tensorrt", "torchscript-lite", "executorch"):
        assert name in p.stdout
    p = vitc("export", tiny_ckpt, "--target", "onxx", "--out", tmp_path, check=False)
    assert p.returncode == 2 and "'onnx'" in p.stderr and "Traceback" not in p.stderr
    p = vitc("export", tiny_ckpt, "--target", "tensorrt", "--out", tmp_path, check=False)
    assert p.returncode == 2 and "GPU" in p.stderr and not any(tmp_path.iterdir())


def test_accuracy_gate_marks_failed_and_exits_3(tmp_path, tiny_ckpt, monkeypatch):
    """The gate's logic, on a real export whose measured top-1 is shifted by 5 points."""
    from vitc.errors import AccuracyGateError
    from vitc.export import stage

    real = stage.compare

    def worse(*a, **k):
        v = real(*a, **k)
        v.top1_artifact -= 5.0
        return v

    monkeypatch.setattr(stage, "compare", worse)
    with pytest.raises(AccuracyGateError) as e:
        stage.export_checkpoint(tiny_ckpt, "torchscript-lite", "int8", tmp_path, max_drop=1.0, threads=1)
    assert e.value.exit_code == 3 and "--max-drop 1.0" in e.value.message
    man = json.loads((tmp_path / "tiny-torchscript-lite-int8.ptl.json").read_text())
    assert man["status"] == "failed: accuracy gate" and (tmp_path / "tiny-torchscript-lite-int8.ptl").is_file()
