"""vitc pipeline: YAML validation (key and line), the tiny end-to-end run, stage skipping, --from."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitc import checkpoint as ckpt
from vitc.errors import ConfigError
from vitc.pipeline_config import load

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
# one timing round per bench in the end-to-end runs: what they check is which stages run, not the timing
ONE_ROUND = ("crosscheck: false}}", "crosscheck: false, repeats: 1}}")

TINY = """\
name: tiny
data: {data}
runs: {runs}
teacher:
  model: {{name: resnet18, img_size: 32}}
  train: {{epochs: 1, batch_size: 16, lr: 1.0e-3, warmup_epochs: 0.0, threads: 1}}
distill:
  student: {{name: deit_tiny, img_size: 32, patch_size: 8}}
  train: {{epochs: 1, batch_size: 16, lr: 1.0e-3, warmup_epochs: 0.0, threads: 1}}
quantize: {{backends: [onnxruntime], calib_size: 16, max_drop: 100.0}}
export: {{targets: [onnx, tensorrt], precisions: [fp32]}}
bench: {{threads: 1, batch: [1, 2], min_runs: {min_runs}, min_seconds: 0.0, warmup: 1, warmup_seconds: 0.0, crosscheck: false}}
"""


def vitc(*args, check=True):
    p = subprocess.run(
        [sys.executable, "-m", "vitc", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600
    )
    if check and p.returncode != 0:
        raise AssertionError(f"vitc {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t + "colour: blue\n", r"cfg.yaml:13: colour: unknown key"),
        (
            lambda t: t.replace(
                "epochs: 1, batch_size: 16, lr: 1.0e-3, warmup_epochs: 0.0, threads: 1}}\nquantize",
                "epoch: 1}}\nquantize",
            ),
            r"cfg.yaml:9: distill.train.epoch: unknown key",
        ),
        (lambda t: t.replace("patch_size: 8", "patch_size: 7"), r"cfg.yaml:8: .*not divisible by patch size 7"),
        (
            lambda t: t.replace("img_size: 32}}\n  train: {{epochs: 1", "img_size: '32'}}\n  train: {{epochs: 1", 1),
            r"cfg.yaml:5: teacher.model.img_size: expected int, got str '32'",
        ),
        (
            lambda t: t.replace("lr: 1.0e-3", "lr: 1e-3", 1),
            r"cfg.yaml:6: teacher.train.lr: expected float or None, got str '1e-3'",
        ),
        (lambda t: t.replace("targets: [onnx,", "targets: [onxx,"), r"unknown export target 'onxx'"),
        (lambda t: t.replace("name: tiny\n", ""), r"name: missing"),
        (lambda t: t.replace("quantize: {{", "quantize: {{{{"), r"cfg.yaml:\d+: not valid YAML"),
    ],
)
def test_yaml_errors_name_the_key_and_line(tmp_path, edit, message):
    text = edit(TINY).format(data="digits", runs=tmp_path / "runs", min_runs=2)
    with pytest.raises(ConfigError, match=message):
        load(_write(tmp_path, text))


def test_lr_without_a_dot_gets_a_hint(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(_write(tmp_path, TINY.replace("lr: 1.0e-3", "lr: 1e-3", 1).format(data="digits", runs="r", min_runs=2)))
    assert "write it with a dot" in e.value.hint


def test_bad_yaml_through_the_cli_is_one_line(tmp_path):
    p = vitc("pipeline", _write(tmp_path, "name: x\nnonsense: 1\n"), check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "cfg.yaml:2: nonsense: unknown key" in p.stderr and not (tmp_path / "runs").exists()


def test_pipeline_end_to_end_skips_and_from(tmp_path, image_folder):
    runs = tmp_path / "runs"
    cfg = _write(tmp_path, TINY.replace(*ONE_ROUND).format(data=image_folder, runs=runs, min_runs=2))
    p = vitc("pipeline", cfg)
    root = runs / "tiny"
    # each stage in the folder `vitc <stage>` writes under runs/ (the stage table's names)
    for stage, folder in (
        ("teacher", "teacher"),
        ("distill", "student"),
        ("quantize", "int8"),
        ("export", "exports"),
        ("bench", "bench"),
    ):
        st = json.loads((root / folder / "stage.json").read_text())
        assert st["status"] == "done" and st["stage"] == stage and len(st["fingerprint"]) == 64, stage
    assert (
        ckpt.load_meta(root / "student")["inputs"]["teacher"]["sha256"]
        == ckpt.load_meta(root / "teacher")["weights_sha256"]
    )
    rows = {r["artifact"]: r for r in json.loads((root / "bench" / "bench.json").read_text())["rows"]}
    assert rows["student-onnx-fp32"]["status"] == "ok" and rows["student-onnx-int8"]["status"] == "ok"
    assert rows["student-pytorch-fp32"]["status"] == "ok"
    assert rows["student-onnx-fp32"]["data"] == str(image_folder) and rows["student-onnx-fp32"]["split"] == "val"
    assert rows["tensorrt-fp32"]["status"].startswith("skipped: ")
    assert f"report: {root / 'bench' / 'report.md'}" in p.stdout and (root / "bench" / "report.md").is_file()

    weights = root / "student" / ckpt.WEIGHTS
    mtime = weights.stat().st_mtime_ns
    p = vitc("pipeline", cfg)  # nothing changed: every stage is skipped, nothing rewritten
    assert p.stdout.count("skipped, inputs and settings unchanged") == 5 and weights.stat().st_mtime_ns == mtime

    onnx = root / "exports" / "student-onnx-fp32.onnx"
    before = onnx.stat().st_mtime_ns
    p = vitc("pipeline", cfg, "--from", "export")
    assert p.stdout.count("skipped, inputs and settings unchanged") == 3  # teacher, distill, quantize
    assert onnx.stat().st_mtime_ns != before and weights.stat().st_mtime_ns == mtime

    cfg.write_text(
        TINY.replace(*ONE_ROUND).format(data=image_folder, runs=runs, min_runs=3)
    )  # a bench setting changed: only bench runs
    p = vitc("pipeline", cfg)
    assert (
        p.stdout.count("skipped, inputs and settings unchanged") == 4
        and "bench: settings or inputs changed" in p.stdout
    )
    assert json.loads((root / "bench" / "stage.json").read_text())["config"]["min_runs"] == 3

    # a stage that failed part-way (its stage.json still says running): the rerun starts there
    st = json.loads((root / "exports" / "stage.json").read_text())
    (root / "exports" / "stage.json").write_text(json.dumps({**st, "status": "running"}))
    p = vitc("pipeline", cfg)
    assert p.stdout.count("skipped, inputs and settings unchanged") == 3 and weights.stat().st_mtime_ns == mtime
    assert json.loads((root / "exports" / "stage.json").read_text())["status"] == "done"

    # an interrupted training stage resumes from its train state instead of starting over
    st = json.loads((root / "student" / "stage.json").read_text())
    (root / "student" / "stage.json").write_text(json.dumps({**st, "status": "running"}))
    p = vitc("pipeline", cfg)
    assert "distill (resuming)" in p.stdout and "resumed from" in p.stdout
    assert ckpt.load_meta(root / "student")["weights_sha256"] == ckpt.sha256_file(weights)


def test_from_needs_the_earlier_stages(tmp_path):
    cfg = _write(tmp_path, TINY.format(data="digits", runs=tmp_path / "runs", min_runs=2))
    p = vitc("pipeline", cfg, "--from", "export", check=False)
    assert p.returncode == 2 and "earlier stage 'teacher' has not finished" in p.stderr
    p = vitc("pipeline", cfg, "--from", "quantise", check=False)
    assert p.returncode == 2 and "not a stage" in p.stderr
