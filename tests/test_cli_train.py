"""The real CLI, in subprocesses: teacher -> distill, resume after kill -9, torchrun DDP, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from vitc import checkpoint as ckpt

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
FAST = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--warmup-epochs", "0", "--threads", "1"]


def vitc(*args, check=True, timeout=300):
    p = subprocess.run(
        [sys.executable, "-m", "vitc", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout
    )
    if check and p.returncode != 0:
        raise AssertionError(f"vitc {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def folder(image_folder):
    return image_folder


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, folder):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    vitc("teacher", "--model", "resnet18", "--data", folder, "--out", out, *FAST, "--epochs", "2")
    return out


def test_teacher_then_distill_end_to_end(tmp_path, folder, teacher_dir):
    t = time.perf_counter()
    meta_t = ckpt.load_meta(teacher_dir)
    assert meta_t["stage"] == "teacher" and meta_t["classes"] == ["digit0", "digit1", "digit2"]
    assert meta_t["preprocess"]["input_size"] == [3, 32, 32]
    out = tmp_path / "student"
    p = vitc(
        "distill",
        "--teacher-checkpoint",
        teacher_dir,
        "--student",
        "deit_tiny",
        "--patch-size",
        "8",
        "--data",
        folder,
        "--out",
        out,
        "--distillation",
        "hard",
        *FAST,
    )
    assert time.perf_counter() - t < 60
    meta = ckpt.load_meta(out)
    assert meta["inputs"]["teacher"]["sha256"] == ckpt.sha256_file(teacher_dir / ckpt.WEIGHTS)
    assert meta["model"]["overrides"]["patch_size"] == 8 and meta["config"]["distillation"] == "hard"
    for k in ("top1_cls", "top1_dist", "top1_avg", "top5_avg", "teacher_top1"):
        assert 0.0 <= meta["metrics"][k] <= 100.0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["images_per_s"] > 0 and 0 < rows[0]["teacher_share"] < 1
    assert (out / "best" / ckpt.META).is_file() and "done" in p.stdout


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    args = [
        "distill",
        "--distillation",
        "none",
        "--patch-size",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--lr",
        "1e-3",
        "--warmup-epochs",
        "1",
        "--threads",
        "2",
        "--seed",
        "3",
    ]
    vitc(*args, "--out", tmp_path / "a")
    b = tmp_path / "b"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitc", *args, "--out", str(b)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (b / "metrics.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2: epoch 1 is saved, epoch 2 is lost
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len((b / "metrics.jsonl").read_text().splitlines()) == 1
    p = vitc(*args, "--out", b, "--resume")
    assert "resumed" in p.stdout
    wa, wb = load_file(tmp_path / "a" / ckpt.WEIGHTS), load_file(b / ckpt.WEIGHTS)
    assert wa.keys() == wb.keys()
    diff = [k for k in wa if not (wa[k] == wb[k]).all()]
    assert not diff, f"weights differ after resume: {diff[:3]}"


def test_ddp_two_cpu_processes(tmp_path, folder, teacher_dir):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "vitc",
        "distill",
        "--teacher-checkpoint",
        str(teacher_dir),
        "--patch-size",
        "8",
        "--data",
        str(folder),
        "--out",
        str(out),
        *FAST,
        "--epochs",
        "2",
    ]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # rank 0 alone wrote, once per epoch
    st = ckpt.load_train_state(out / ckpt.TRAIN_STATE)
    # 2 processes x batch 8: each optimiser step consumed 16 images, so the step count halves
    assert json.loads(st["config"])["batch_size"] == 8
    steps = st["optimizer"]["state"][0]["step"].item()
    from vitc.data import load_source

    n = len(load_source(str(folder), 32).train.targets)
    assert steps == 2 * ((n // 2) // 8)


def test_errors_are_one_clear_sentence(tmp_path, teacher_dir):
    p = vitc("distill", "--teacher", "resnet18", "--teacher-pretrained", "--out", tmp_path / "x", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--teacher-checkpoint" in p.stderr and "vitc teacher" in p.stderr
    p = vitc(
        "distill",
        "--student",
        "deit_tiny_nodist",
        "--teacher-checkpoint",
        teacher_dir,
        "--out",
        tmp_path / "y",
        check=False,
    )
    assert p.returncode == 2 and "distillation token" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())
    p = vitc("teacher", "--model", "resnet18", "--epochs", "0", "--out", tmp_path / "z", check=False)
    assert p.returncode == 2 and "epochs" in p.stderr
    p = vitc("distill", "--teacher-checkpoint", teacher_dir, "--out", teacher_dir, check=False)
    assert p.returncode == 2 and "--force" in p.stderr


def test_ema_weights_are_what_gets_deployed(tmp_path, folder):
    out = tmp_path / "ema"
    vitc("teacher", "--model", "resnet18", "--data", folder, "--out", out, *FAST, "--epochs", "2", "--ema", "0.5")
    deployed = load_file(out / ckpt.WEIGHTS)
    raw = ckpt.load_train_state(out / ckpt.TRAIN_STATE)["model"]
    ema = ckpt.load_train_state(out / ckpt.TRAIN_STATE)["ema"]
    k = "fc.weight"
    assert (deployed[k] == ema[k]).all() and not (deployed[k] == raw[k]).all()
