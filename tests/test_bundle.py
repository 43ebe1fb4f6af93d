"""Issue 25: pre-processing inside the artifact, and bundles that run without torch, timm or vitc."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vitc.errors import VitcError
from vitc.export.stage import export_checkpoint

# run a script with torch, timm and vitc unimportable: what a device without the training stack sees
BLOCKER = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, Block())
sys.argv = {argv!r}
{run}
"""


def blocked_run(argv: list[str], blocked: set[str], run: str) -> subprocess.CompletedProcess:
    code = BLOCKER.format(blocked=sorted(blocked), argv=argv, run=run)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """60 val images of digits as JPEG files of another size than the model's (the runner must resize them)."""
    from vitc.data import load_source

    src = load_source("digits", 32)
    d = tmp_path_factory.mktemp("jpg")
    paths = []
    for i in range(60):
        p = d / f"val{i:03d}.jpg"
        src.val.items[i].resize((48, 40), Image.BILINEAR).save(p, quality=90)
        paths.append(p)
    return paths


@pytest.mark.parametrize("target", ["onnx", "openvino", "torchscript-lite", "executorch"])
def test_in_graph_artifact_takes_pixels_and_computes_the_pytorch_function(tiny_ckpt, tmp_path, target):
    m = export_checkpoint(tiny_ckpt, target, "fp32", tmp_path, preprocess="in-graph")
    assert m["artifact"].endswith(f"-{target}-fp32-rgb8" + m["artifact"][m["artifact"].rindex(".") :])
    assert m["input"] == {"preprocess": "in-graph", "dtype": "uint8", "layout": "NHWC", "shape": [-1, 32, 32, 3]}
    v = m["validation"]
    assert m["status"] == "ok" and v["top1_agreement"] == 1.0 and v["max_abs_diff"] < 1e-3


@pytest.mark.parametrize("target, opts", [("onnx", {"int8_mode": "static"}), ("openvino", None), ("executorch", None)])
def test_in_graph_int8_quantizes_as_the_float_input_artifact_does(tiny_ckpt, tmp_path, target, opts):
    # ONNX static QDQ and ExecuTorch's PT2E calibrate the wrapped model on uint8 pixels; NNCF the float IR: the same
    # images either way, so the in-graph int8 artifact must predict as its float-input twin does
    kw = dict(calib_size=64, opts=opts)
    ig = export_checkpoint(tiny_ckpt, target, "int8", tmp_path, preprocess="in-graph", **kw)
    py = export_checkpoint(tiny_ckpt, target, "int8", tmp_path, **kw)
    assert ig["input"]["dtype"] == "uint8" and py["input"]["dtype"] == "float32"
    a, b = ig["validation"], py["validation"]
    assert ig["status"] == py["status"] and abs(a["top1_agreement"] - b["top1_agreement"]) <= 0.01
    assert abs(a["top1_artifact"] - b["top1_artifact"]) <= 1.0 and a["top1_agreement"] >= 0.9


def test_in_graph_refuses_a_target_without_it(tiny_ckpt, tmp_path):
    with pytest.raises(VitcError, match="--preprocess in-graph is not available for tensorrt"):
        export_checkpoint(tiny_ckpt, "tensorrt", "fp32", tmp_path, preprocess="in-graph")
    assert not any(tmp_path.iterdir())


def _top1(stdout: str) -> dict[str, str]:
    """`IMAGE: label p, label p, ...` lines -> {image name: first label}."""
    out = {}
    for line in stdout.splitlines():
        img, _, rest = line.partition(": ")
        if rest:
            out[img.rsplit("/", 1)[-1]] = rest.split(",")[0].rsplit(" ", 1)[0]
    return out


@pytest.mark.parametrize("target, preprocess", [("onnx", "in-graph"), ("openvino", "in-graph"), ("onnx", "python")])
def test_bundle_runs_without_torch_and_agrees_with_vitc_predict(tiny_ckpt, tmp_path, jpegs, target, preprocess):
    from vitc.export.bundle import make

    m = export_checkpoint(tiny_ckpt, target, "fp32", tmp_path / "exp", preprocess=preprocess)
    out = tmp_path / "bundle"
    make(tmp_path / "exp" / m["artifact"], out)
    names = {p.name for p in out.iterdir()}
    assert {m["artifact"], "labels.json", "preprocess.json", "run.py", "requirements.txt", "README.md"} <= names
    assert json.loads((out / "labels.json").read_text()) == m["classes"]
    req = (out / "requirements.txt").read_text()
    assert ("onnxruntime==" if target == "onnx" else "openvino==") in req and "torch" not in req

    files = [str(p) for p in jpegs]
    device = blocked_run(
        [str(out / "run.py"), *files],
        {"torch", "timm", "vitc", "torchvision"},
        f"runpy.run_path({str(out / 'run.py')!r}, run_name='__main__')",
    )
    assert device.returncode == 0, device.stderr[-2000:]
    got = _top1(device.stdout)
    ref = subprocess.run(
        [sys.executable, "-m", "vitc", "predict", str(tiny_ckpt), *files, "--topk", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    want = _top1(ref.stdout)
    assert len(got) == len(want) == len(jpegs)
    agree = np.mean([got[k] == want[k] for k in want])
    assert agree >= 0.995, (agree, got, want)

    # `vitc predict` on the artifact itself takes the same torch-free path
    art = str(tmp_path / "exp" / m["artifact"])
    pred = blocked_run(
        ["vitc", "predict", art, *files[:5]],
        {"torch", "timm", "torchvision"},
        "runpy.run_module('vitc', run_name='__main__')",
    )
    assert pred.returncode == 0, pred.stderr[-2000:]
    rows = _top1(pred.stdout)
    assert len(rows) == 5 and all(rows[k] == got[k] for k in rows)


def test_bundle_refuses_what_cannot_run_without_torch_and_a_full_out(tiny_ckpt, tmp_path):
    from vitc.export.bundle import make

    m = export_checkpoint(tiny_ckpt, "torchscript-lite", "fp32", tmp_path / "exp")
    with pytest.raises(VitcError, match="a bundle runs without torch"):
        make(tmp_path / "exp" / m["artifact"], tmp_path / "b1")
    assert not (tmp_path / "b1").exists()
    m = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path / "exp")
    full = tmp_path / "b2"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(VitcError, match="already holds files"):
        make(tmp_path / "exp" / m["artifact"], full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    before = sorted(p.name for p in (tmp_path / "exp").iterdir())
    with pytest.raises(VitcError, match="holds the artifact; --force would delete it"):
        make(tmp_path / "exp" / m["artifact"], tmp_path / "exp", force=True)
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == before
    make(tmp_path / "exp" / m["artifact"], full, force=True)  # --force replaces a bundle folder, whole
    assert "keep.txt" not in {p.name for p in full.iterdir()} and (full / "run.py").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left aside


def test_the_bench_feeds_an_in_graph_artifact_pixels_and_times_its_serving_path(tiny_ckpt, tmp_path, monkeypatch):
    from vitc.benchmarks import peak
    from vitc.benchmarks.bench import run_bench
    from vitc.config import BenchConfig

    fake = {
        "threads": 1,
        "gflops": {"fp32": 100.0, "bf16": 200.0, "int8": 400.0},
        "method": {"int8": "-", "statistic": "-"},
    }
    monkeypatch.setattr(peak, "peaks", lambda threads, remeasure=False: fake)
    export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path / "exp", preprocess="in-graph")
    export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path / "exp")
    cfg = BenchConfig(
        threads=1, batch=(1,), warmup=1, warmup_seconds=0.0, min_runs=3, min_seconds=0.0, repeats=1, crosscheck=False
    )
    rows = {r["artifact"]: r for r in run_bench([tmp_path / "exp"], tmp_path / "rep", cfg)["rows"]}
    ig, py = rows["tiny-onnx-fp32-rgb8"], rows["tiny-onnx-fp32"]
    assert ig["status"] == "ok" and ig["agreement"] == 100.0 and ig["top1"] == py["top1"]
    assert ig["preprocess"] == "in-graph" and py["preprocess"] == "python"
    assert ig["e2e"]["p50_ms"] > 0 and py["e2e"]["p50_ms"] > 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Serving" in md and "| tiny-onnx-fp32-rgb8 | in-graph |" in md


def test_an_export_stage_writes_both_pre_processings_where_the_target_has_them(tiny_ckpt, tmp_path):
    from vitc import stages
    from vitc.config import ExportConfig

    cfg = ExportConfig(["onnx", "tensorrt"], ["fp32"], preprocess=["python", "in-graph"])
    res = stages.run("export", cfg, stages.Inputs(checkpoint=tiny_ckpt, keep_going=True), tmp_path)
    assert sorted(m["artifact"] for m in res.artifacts) == ["tiny-onnx-fp32-rgb8.onnx", "tiny-onnx-fp32.onnx"]
    assert [s["target"] for s in res.skipped] == ["tensorrt"]  # once, not per pre-processing
    with pytest.raises(VitcError, match="preprocess: must be a non-empty list drawn from python, in-graph"):
        ExportConfig(preprocess=["gpu"])


@pytest.mark.parametrize(
    "size, crop_pct, interp", [(32, 1.0, "bicubic"), (224, 0.875, "bicubic"), (28, 0.9, "bilinear")]
)
def test_the_bundle_runner_resizes_and_crops_as_timm_does(size, crop_pct, interp):
    """export/edge_run.py's Pillow resize + centre crop (written out: the device has no torchvision) gives the same
    pixels as timm's eval transform up to the tensor, for images larger, smaller and of other aspect ratios."""
    from vitc.data import pixel_transform
    from vitc.export.edge_run import resize_crop

    pre = {
        "input_size": [3, size, size],
        "interpolation": interp,
        "crop_pct": crop_pct,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    rng = np.random.default_rng(0)
    for w, h in [(640, 480), (48, 40), (size, size), (97, 301), (13, 17)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ours, timm_px = resize_crop(img, pre), pixel_transform(pre)(img)
        assert ours.shape == timm_px.shape == (size, size, 3) and np.array_equal(ours, timm_px), (w, h)


@pytest.mark.parametrize("target, precision", [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "int8")])
def test_selftest_passes_a_good_bundle_and_catches_perturbed_weights_without_torch(
    tiny_ckpt, tmp_path, target, precision
):
    """Issue 33: `run.py --selftest` on the device, with torch, timm and vitc unimportable: a bundle as exported
    passes (exit 0); the same ONNX bundle with its weights perturbed fails (exit 1), in one line each."""
    import onnx
    from onnx import numpy_helper

    from vitc.export.bundle import make

    kw = {"calib_size": 64} if precision == "int8" else {}
    if target == "onnx" and precision == "int8":
        kw["opts"] = {"int8_mode": "static"}
    m = export_checkpoint(tiny_ckpt, target, precision, tmp_path / "exp", preprocess="in-graph", **kw)
    out = tmp_path / "bundle"
    make(tmp_path / "exp" / m["artifact"], out)
    assert (out / m["selftest"]["file"]).is_file()

    def selftest() -> subprocess.CompletedProcess:
        return blocked_run(
            [str(out / "run.py"), "--selftest"],
            {"torch", "timm", "vitc", "torchvision"},
            f"runpy.run_path({str(out / 'run.py')!r}, run_name='__main__')",
        )

    good = selftest()
    assert good.returncode == 0, good.stdout + good.stderr[-2000:]
    assert good.stdout.strip().startswith("selftest PASS") and "int8 path here" in good.stdout
    if target != "onnx":
        return
    model = onnx.load(str(out / m["artifact"]))
    rng = np.random.default_rng(0)
    for t in model.graph.initializer:  # every weight matrix (float, or int8 in a QDQ model) moved by noise
        w = numpy_helper.to_array(t)
        if w.ndim == 2 and w.size >= 1024:
            if w.dtype == np.int8:
                noisy = np.clip(w.astype(np.int16) + rng.integers(-12, 13, w.shape), -127, 127).astype(np.int8)
            else:
                noisy = (w + rng.normal(0, 0.5 * float(w.std()), w.shape)).astype(w.dtype)
            t.CopyFrom(numpy_helper.from_array(noisy, t.name))
    onnx.save(model, str(out / m["artifact"]))
    bad = selftest()
    assert bad.returncode == 1, bad.stdout + bad.stderr[-2000:]
    line = bad.stdout.strip()
    assert line.startswith("selftest FAIL") and len(line.splitlines()) == 1, line


def test_vitc_predict_selftest_checks_any_artifact_with_a_manifest(tiny_ckpt, tmp_path):
    m = export_checkpoint(tiny_ckpt, "torchscript-lite", "fp32", tmp_path)
    art = str(tmp_path / m["artifact"])
    r = subprocess.run([sys.executable, "-m", "vitc", "predict", art, "--selftest"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("selftest PASS"), r.stdout + r.stderr[-2000:]
    (tmp_path / m["selftest"]["file"]).unlink()
    r = subprocess.run([sys.executable, "-m", "vitc", "predict", art, "--selftest"], capture_output=True, text=True)
    assert r.returncode != 0 and "self-test file" in r.stdout + r.stderr and "missing" in r.stdout + r.stderr
