"""The design card's commands as a new user types them: in an empty folder, no path arguments, the
run folders under runs/ as the hand-off, every default announced, and a teacher trained when none is
given. Through the real CLI in subprocesses (cwd = an empty temp folder)."""

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from vitc import checkpoint as ckpt

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
TINY = ["--img-size", "32", "--patch-size", "8", "--threads", "1"]  # tiny sizes; no path is given anywhere


def vitc(cwd, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "vitc", *map(str, args)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_card_commands_in_an_empty_folder(tmp_path):
    # 1. distill with only a teacher name: offline, so vitc trains the teacher first and says so
    p = vitc(
        tmp_path,
        "distill",
        "--teacher",
        "resnet18",
        "--student",
        "deit_tiny",
        "--epochs",
        "1",
        "--teacher-epochs",
        "1",
        *TINY,
    )
    assert p.returncode == 0, p.stderr
    out = " ".join(p.stdout.split())
    assert "writing to runs/student (the default --out)" in out
    assert (
        "teacher: no hub weights for resnet18" in out
        and "training resnet18 on digits from scratch into runs/teacher" in out
    )
    assert "--teacher-checkpoint PATH" in out  # how to skip it
    t, s = ckpt.load_meta(tmp_path / "runs/teacher"), ckpt.load_meta(tmp_path / "runs/student")
    assert t["stage"] == "teacher" and t["model"]["name"] == "resnet18"
    assert s["stage"] == "distill" and s["inputs"]["teacher"]["path"] == "runs/teacher"
    # a second distill reuses that teacher instead of training another
    p = vitc(tmp_path, "distill", "--teacher", "resnet18", "--epochs", "1", "--out", "runs/student2", *TINY)
    assert p.returncode == 0 and "teacher: reusing runs/teacher (made by vitc teacher" in " ".join(p.stdout.split()), (
        p.stderr
    )
    # 2. quantize and export read runs/student and say so
    p = vitc(tmp_path, "quantize", "--backend", "torch", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert "using runs/student (made by vitc distill" in " ".join(p.stdout.split()) and ckpt.is_checkpoint_dir(
        tmp_path / "runs/int8"
    )
    p = vitc(tmp_path, "export", "--target", "onnx", "--threads", "1")
    assert p.returncode == 0 and (tmp_path / "runs/exports/student-onnx-fp32.onnx").is_file(), p.stderr
    # 3. TensorRT cannot run here: one sentence, non-zero, nothing written
    before = _files(tmp_path)
    p = vitc(tmp_path, "export", "--target", "tensorrt")
    assert p.returncode != 0 and "tensorrt target unavailable here" in p.stderr and "Traceback" not in p.stderr
    assert _files(tmp_path) == before
    # 4. bench finds everything under runs/ and writes runs/bench/report.md with a row per artifact made
    p = vitc(
        tmp_path,
        "bench",
        "--repeats",
        "1",
        "--min-seconds",
        "0",
        "--min-runs",
        "3",
        "--warmup",
        "1",
        "--batch",
        "1",
        "--threads",
        "1",
    )
    assert p.returncode == 0, p.stderr
    made = [
        a.name[: -len(".json")]
        for d in ("int8", "exports")
        for a in (tmp_path / "runs" / d).glob("*.json")
        if a.name not in ("stage.json", "skipped.json", ckpt.META, "config.json")
    ]
    assert made, _files(tmp_path)
    rows = {r["artifact"]: r for r in json.loads((tmp_path / "runs/bench/bench.json").read_text())["rows"]}
    md = (tmp_path / "runs/bench/report.md").read_text()
    for a in made:
        name = a[:-4] if a.endswith(".xml") else a.rsplit(".", 1)[0]
        assert name in rows and f"| {name} |" in md, (name, list(rows))
    assert {"student-pytorch-fp32", "int8-pytorch-int8"} <= set(rows)  # the checkpoints' eager rows
    assert all(r["status"] == "ok" for r in rows.values()), {k: r["status"] for k, r in rows.items()}


def test_default_inputs_that_are_missing_name_the_command(tmp_path):
    for args, want in (
        (["quantize"], "make it with `vitc distill"),
        (["export", "--target", "onnx"], "make it with `vitc distill"),
        (["bench"], "nothing to bench: runs/ holds no student"),
    ):
        p = vitc(tmp_path, *args)
        assert p.returncode == 2 and want in " ".join(p.stderr.split()) and "Traceback" not in p.stderr, p.stderr
    assert _files(tmp_path) == []


def test_no_auto_teacher_keeps_the_strict_error_with_the_real_option(tmp_path):
    p = vitc(tmp_path, "distill", "--teacher", "resnet18", "--no-auto-teacher")
    msg = " ".join(p.stderr.split())
    assert p.returncode == 2 and "--teacher-pretrained" in msg and "--pretrained when" not in msg, msg
    assert _files(tmp_path) == []


def test_teacher_one_epoch_with_the_default_warmup(tmp_path):
    """The default warm-up (1 epoch) would not fit a 1-epoch run: it is capped, with a note."""
    p = vitc(tmp_path, "teacher", "--epochs", "1", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert "warm-up: 0.2 epochs, a fifth of this 1-epoch run (the default 1-epoch warm-up needs a longer run)" in (
        " ".join(p.stderr.split())
    )
    cfg = json.loads((tmp_path / "runs/teacher/config.json").read_text())
    assert cfg["train"]["warmup_epochs"] == 0.2
    # a warm-up the user sets is never rewritten: too long is an error, not a silent change
    p = vitc(tmp_path, "teacher", "--epochs", "1", "--warmup-epochs", "3", "--out", "runs/t2")
    assert p.returncode == 2 and "--warmup-epochs: 3 must be fewer than epochs (1)" in " ".join(p.stderr.split())


def test_progress_is_plain_lines_off_a_terminal(monkeypatch):
    from vitc import progress

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=False, width=200)
    clock = iter(range(0, 1000, 10))  # every call: 10 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))
    with progress.Steps("epoch 1/3", total=4, console=con, unit="batch", every_s=15.0) as p:
        for _ in range(4):
            p.advance(1, info="loss 0.5")
    lines = buf.getvalue().splitlines()
    assert lines and all(ln.startswith("epoch 1/3: ") for ln in lines)
    assert "batches (" in lines[0] and "batch/s" in lines[0] and "left" in lines[0] and "loss 0.5" in lines[0]
    assert lines[-1].startswith("epoch 1/3: 4/4 batches (100%)")
    quiet = io.StringIO()
    with progress.Steps("x", total=2, console=Console(file=quiet, force_terminal=False), every_s=1e9) as p:
        p.advance(2)
    assert quiet.getvalue() == ""  # a short step prints nothing


@pytest.mark.parametrize(
    "epochs,default,want",
    [(1, 5.0, 0.2), (3, 5.0, 0.6), (5, 5.0, 1.0), (6, 5.0, 5.0), (30, 5.0, 5.0), (10, 1.0, 1.0), (1, 1.0, 0.2)],
)
def test_default_warmup_fits_the_run(epochs, default, want):
    from vitc.config import TrainConfig, default_warmup

    w, note = default_warmup(epochs, default)
    assert w == want and (note is None) == (w == default)
    assert TrainConfig(epochs=epochs).warmup_epochs == default_warmup(epochs, 5.0)[0]  # a config that names none


def test_a_small_dataset_is_valid_with_the_default_batch(tmp_path, image_folder):
    """The default batch (64) is cut to the training images when the user set none; one they set is kept."""
    p = vitc(tmp_path, "teacher", "--data", image_folder, "--epochs", "1", "--threads", "1", "--out", "t")
    assert p.returncode == 0, p.stderr
    assert "batch size: the default 64 is more than the" in " ".join(p.stdout.split())
    rows = [json.loads(x) for x in (tmp_path / "t/metrics.jsonl").read_text().splitlines()]
    assert rows[0]["batch_size"] < 64
    p = vitc(tmp_path, "teacher", "--data", image_folder, "--epochs", "1", "--batch-size", "64", "--out", "t2")
    assert p.returncode == 2 and "--batch-size: 64 per process is larger than the" in " ".join(p.stderr.split())
