"""Every user mistake in the table gets: a non-zero exit, one or two lines naming the problem and
the fix, no traceback (without --debug), and nothing written or overwritten.

The same table is in the README (test_readme keeps the case names in step). The CLI runs in
process (vitc.cli.main) so the 20 cases cost seconds, not 20 interpreter start-ups."""

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from vitc import checkpoint as ckpt_mod
from vitc.cli import main


@dataclass
class Case:
    name: str  # the README's wording
    args: Callable[[dict], list]  # fixture paths -> CLI args
    expect: str  # a phrase the message must hold
    code: int = 2


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, image_folder, tiny_ckpt):
    """Everything the cases point at, built once; each case must leave it exactly as it was."""
    w = tmp_path_factory.mktemp("ws")
    d = {"w": w, "ckpt": tiny_ckpt, "folder": image_folder}
    (w / "no_splits" / "stuff").mkdir(parents=True)
    empty = shutil.copytree(image_folder, w / "empty_class")
    (empty / "train" / "digit9").mkdir()
    corrupt = shutil.copytree(image_folder, w / "corrupt")
    (corrupt / "val" / "digit0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    torch.manual_seed(0)
    import timm

    save_file(timm.create_model("resnet18", num_classes=3).state_dict(), str(w / "r18_3cls.safetensors"))
    (w / "busy").mkdir()
    (w / "busy" / "notes.txt").write_text("someone else's run")
    (w / "a_file").write_text("x")
    (w / "bad.yaml").write_text(
        "name: x\ndata: digits\nteacher_checkpoint: nowhere\ndistill:\n  student: {name: deit_tiny}\n  epoch: 3\n"
    )
    from vitc.export.stage import export_checkpoint

    arts = w / "arts"
    export_checkpoint(tiny_ckpt, "onnx", "fp32", arts, threads=1)
    good = next(arts.glob("*.onnx"))
    trunc = w / "trunc" / "model-onnx-fp32.onnx"
    trunc.parent.mkdir()
    trunc.write_bytes(good.read_bytes()[:200])
    shutil.copy(str(good) + ".json", str(trunc) + ".json")
    (w / "text.png").write_text("hello")
    from vitc.data import load_source
    from vitc.models import create_model, data_config

    cnn, spec = create_model("resnet18", 10, 32)
    ckpt_mod.save_checkpoint(
        w / "cnn",
        cnn.eval(),
        {
            "stage": "teacher",
            "model": spec.to_json(),
            "classes": load_source("digits", 32).classes,
            "preprocess": data_config(cnn, 32, 1.0),
            "config": {"data": "digits"},
        },
    )
    cnn_onnx = export_checkpoint(w / "cnn", "onnx", "fp32", w / "cnn_onnx", threads=1)["artifact"]
    d.update(trunc=trunc, good=good, cnn=w / "cnn", cnn_onnx=w / "cnn_onnx" / cnn_onnx)
    return d


CASES = [
    Case(
        "dataset path missing",
        lambda d: ["teacher", "--data", d["w"] / "nope", "--out", d["w"] / "o1"],
        "does not exist",
    ),
    Case(
        "ImageFolder without train/ or val/",
        lambda d: ["teacher", "--data", d["w"] / "no_splits", "--out", d["w"] / "o2"],
        "needs train/ and val/",
    ),
    Case(
        "a class folder with no images",
        lambda d: ["teacher", "--data", d["w"] / "empty_class", "--out", d["w"] / "o3"],
        "holds no images",
    ),
    Case(
        "a corrupt image in the dataset (stops, naming the file)",
        lambda d: [
            "teacher",
            "--data",
            d["w"] / "corrupt",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--out",
            d["w"] / "o4",
        ],
        "broken.png is not a readable image",
    ),
    Case("unknown model name", lambda d: ["teacher", "--model", "resnet181", "--out", d["w"] / "o6"], "resnet18"),
    Case(
        "non-distilled student with --distillation hard",
        lambda d: [
            "distill",
            "--student",
            "deit_tiny_nodist",
            "--teacher-checkpoint",
            d["ckpt"],
            "--out",
            d["w"] / "o7",
        ],
        "no distillation token",
    ),
    Case(
        "teacher checkpoint of another architecture",
        lambda d: [
            "distill",
            "--teacher",
            "resnet34",
            "--teacher-checkpoint",
            d["w"] / "r18_3cls.safetensors",
            "--out",
            d["w"] / "o8",
        ],
        "does not fit",
    ),
    Case(
        "teacher checkpoint with another class count",
        lambda d: [
            "distill",
            "--teacher",
            "resnet18",
            "--teacher-checkpoint",
            d["w"] / "r18_3cls.safetensors",
            "--out",
            d["w"] / "o8b",
        ],
        "(3, 512)",
    ),
    Case(
        "--pretrained offline",
        lambda d: ["teacher", "--model", "resnet18", "--pretrained", "--out", d["w"] / "o9"],
        "--teacher-checkpoint",
    ),
    Case(
        "image size not divisible by patch size",
        lambda d: [
            "distill",
            "--img-size",
            "30",
            "--patch-size",
            "8",
            "--teacher-checkpoint",
            d["ckpt"],
            "--out",
            d["w"] / "o10",
        ],
        "not divisible by patch size 8",
    ),
    Case(
        "zero epochs",
        lambda d: ["teacher", "--epochs", "0", "--out", d["w"] / "o11"],
        "epochs: must be an integer >= 1",
    ),
    Case(
        "negative batch size",
        lambda d: ["teacher", "--batch-size", "-4", "--out", d["w"] / "o11b"],
        "--batch-size: must be an integer >= 1",
    ),
    Case(
        "unknown export target",
        lambda d: ["export", d["ckpt"], "--target", "onnxx", "--out", d["w"] / "o12"],
        "did you mean 'onnx'",
    ),
    Case(
        "optional runtime not installed",
        lambda d: ["export", d["ckpt"], "--target", "openvino", "--out", d["w"] / "o13"],
        "pip install 'vitc[openvino]'",
    ),
    Case(
        "TensorRT without a GPU",
        lambda d: ["export", d["ckpt"], "--target", "tensorrt", "--out", d["w"] / "o14"],
        "tensorrt",
    ),
    Case(
        "distill with a teacher name and --no-auto-teacher",
        lambda d: ["distill", "--teacher", "resnet18", "--no-auto-teacher", "--out", d["w"] / "o21"],
        "--teacher-pretrained",
    ),
    Case("output dir holds another run", lambda d: ["teacher", "--out", d["w"] / "busy"], "--force"),
    Case("unwritable output dir", lambda d: ["teacher", "--out", d["w"] / "a_file" / "sub"], "cannot write"),
    Case(
        "invalid pipeline YAML", lambda d: ["pipeline", d["w"] / "bad.yaml"], "bad.yaml:6: distill.epoch: unknown key"
    ),
    Case(
        "truncated ONNX given to predict",
        lambda d: ["predict", d["trunc"], d["w"] / "text.png"],
        "not a readable ONNX model",
    ),
    Case(
        "truncated ONNX given to bench",
        lambda d: ["bench", d["trunc"], "--out", d["w"] / "o18"],
        "could not be benchmarked",
    ),
    Case(
        "non-ONNX file given to bench",
        lambda d: ["bench", d["w"] / "a_file", "--out", d["w"] / "o18b"],
        "not an artifact vitc knows",
    ),
    Case("predict on a missing image", lambda d: ["predict", d["ckpt"], d["w"] / "nope.png"], "does not exist"),
    Case(
        "predict on a file that is not an image",
        lambda d: ["predict", d["ckpt"], d["w"] / "text.png"],
        "not a readable image",
    ),
    Case(
        "calibration set smaller than the calibration batch",
        lambda d: [
            "quantize",
            d["ckpt"],
            "--backend",
            "onnxruntime",
            "--ort-mode",
            "static",
            "--calib",
            "digits",
            "--calib-size",
            "4",
            "--out",
            d["w"] / "o20",
        ],
        "fewer than the calibration batch",
    ),
    Case(
        "prune a CNN",
        lambda d: ["prune", d["cnn"], "--teacher-checkpoint", d["ckpt"], "--out", d["w"] / "o21"],
        "is not a ViT with attention blocks",
    ),
    Case(
        "prune ratio out of range",
        lambda d: ["prune", d["ckpt"], "--ratio", "1.5", "--out", d["w"] / "o22"],
        "ratio: must be in (0, 1)",
    ),
    Case(
        "prune --head-ratio that removes every head",
        lambda d: [
            "prune",
            d["ckpt"],
            "--teacher-checkpoint",
            d["ckpt"],
            "--head-ratio",
            "0.7",
            "--out",
            d["w"] / "o23",
        ],
        "would remove all 3 heads of block 0",
    ),
    Case(
        "attention of a CNN", lambda d: ["attention", "--model", d["cnn"], "--out", d["w"] / "o25"], "is a CNN (ResNet)"
    ),
    Case(
        "attention of a CNN's ONNX export",
        lambda d: ["attention", "--model", d["ckpt"], "--compare", d["cnn_onnx"], "--out", d["w"] / "o26"],
        "is a CNN (ResNet)",
    ),
    Case(
        "probe on a file that is not a features file",
        lambda d: ["probe", d["w"] / "a_file"],
        "is not a features file written by `vitc features`",
    ),
    Case(
        "prune a student whose teacher is gone",
        lambda d: ["prune", d["ckpt"], "--out", d["w"] / "o24"],
        "does not name a teacher checkpoint that still exists",
    ),
]


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, ws, capsys, monkeypatch):
    if "runtime not installed" in case.name:
        monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError, as if not installed
    before = {k: v for k, v in _snapshot(ws["w"]).items() if "/o18" not in k}
    code, out, err = run_cli(case.args(ws), capsys)
    assert code == case.code, (code, out, err)
    assert case.expect in " ".join(err.split()), err
    assert "Traceback" not in err + out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if os.environ.get(
        "VITC_PRINT_MESSAGES"
    ):  # regenerates the README table: VITC_PRINT_MESSAGES=1 pytest -s -k test_bad_input
        print(
            f"\n| {case.name} | `{' '.join(lines[0].split()[1:])}`"
            + (f" ({' '.join(lines[1].split()[1:])})" if len(lines) > 1 else "")
            + " |"
        )
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error:"), err
    # nothing written or overwritten: no new files, no changed files in the workspace (bench reports aside)
    after = {k: v for k, v in _snapshot(ws["w"]).items() if "/o18" not in k}
    assert after == before, set(after) ^ set(before)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_odd_png_modes_are_converted(mode, ws, tmp_path, capsys):
    """Case 5 of the table: grayscale, RGBA, 16-bit and palette PNGs must work, not fail."""
    from sklearn.datasets import load_digits

    a = (load_digits().images[7] * (255 / 16)).astype(np.uint8)
    img = Image.fromarray(a.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(a).convert(mode)
    p = tmp_path / f"digit-{mode.replace(';', '')}.png"
    img.save(p)
    code, out, err = run_cli(["predict", ws["ckpt"], p, "--topk", "1"], capsys)
    assert code == 0 and p.name in out, err


def test_debug_shows_the_traceback(ws):
    from vitc.errors import DataError

    with pytest.raises(DataError, match="does not exist"):  # --debug re-raises: the traceback is shown
        main(["--debug", "teacher", "--data", str(ws["w"] / "nope"), "--out", str(ws["w"] / "o99")])


def test_a_failed_run_leaves_no_trace_and_the_corrected_rerun_needs_no_force(tmp_path, image_folder, capsys):
    """More batch than images fails before training: --out is not left behind, so the corrected
    rerun starts without --force."""
    out = tmp_path / "runs" / "teacher"
    code, _, err = run_cli(
        ["teacher", "--data", image_folder, "--batch-size", "999", "--epochs", "1", "--threads", "1", "--out", out],
        capsys,
    )
    assert code == 2 and "larger than the" in err
    assert not (tmp_path / "runs").exists()  # nor the parent it created
    code, _, err = run_cli(
        ["teacher", "--data", image_folder, "--batch-size", "8", "--epochs", "1", "--threads", "1", "--out", out],
        capsys,
    )
    assert code == 0 and ckpt_mod.load_meta(out)["stage"] == "teacher", err
