"""Faults while writing (disk full, kill between write and rename), the checkpoint pair's
consistency, and a source scan for shell=True. Pickle refusal and ONNX path traversal are in
test_checkpoint.py and test_export.py; kill -9 + --resume in test_cli_train.py."""

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitc import checkpoint as ckpt
from vitc.errors import CheckpointError, OutputError
from vitc.models import load_checkpoint_model

ROOT = Path(__file__).resolve().parents[1]


def _files(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


@pytest.fixture
def saved(tmp_path, tiny_ckpt):
    """A good checkpoint dir, then the model perturbed: the next save would change the weights."""
    model, meta = load_checkpoint_model(tiny_ckpt)
    out = tmp_path / "ck"
    ckpt.save_checkpoint(out, model, {k: v for k, v in meta.items() if k not in ("weights_sha256", "format")})
    with torch.no_grad():
        model.head.weight.mul_(2)
    return out, model, meta


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_weights_keeps_the_previous_checkpoint(saved, monkeypatch):
    out, model, meta = saved
    before = _files(out)

    def half_then_full(state, path, metadata=None):
        Path(path).write_bytes(b"\0" * 1000)  # some bytes land, then the disk is full
        _enospc()

    monkeypatch.setattr(ckpt, "save_file", half_then_full)
    with pytest.raises(OutputError, match="No space left on device") as e:
        ckpt.save_checkpoint(out, model, {"stage": "x", "model": meta["model"]})
    assert "previous file is intact" in e.value.hint
    assert _files(out) == before  # same names, same bytes: no temp file left, nothing replaced
    load_checkpoint_model(out)


def test_failed_metadata_write_keeps_the_previous_checkpoint(saved, monkeypatch):
    out, model, meta = saved
    before = _files(out)
    monkeypatch.setattr(ckpt.json, "dumps", _enospc)
    with pytest.raises(OutputError, match="No space left"):
        ckpt.save_checkpoint(out, model, {"stage": "x", "model": meta["model"]})
    assert _files(out) == before


def test_crash_between_the_two_renames_is_caught_on_load(saved, monkeypatch):
    out, model, meta = saved
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == ckpt.META:
            raise OSError(errno.EIO, "power cut")  # the weights were renamed, vitc.json was not
        real(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(OutputError):
        ckpt.save_checkpoint(out, model, {"stage": "x", "model": meta["model"]})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint_model(out)


KILLED = """
import sys, time
from pathlib import Path
from vitc import checkpoint as ckpt
with ckpt.atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"new but incomplete")
    Path(sys.argv[2]).touch()          # tell the test we are between write and rename
    time.sleep(60)
"""


def test_kill_between_write_and_rename_leaves_the_old_file(tmp_path):
    final, ready = tmp_path / "model.safetensors", tmp_path / "ready"
    final.write_bytes(b"old and complete")
    p = subprocess.Popen([sys.executable, "-c", KILLED, str(final), str(ready)])
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the writer never got between write and rename"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert final.read_bytes() == b"old and complete"
    # the orphaned temp file is hidden and never carries the final name
    assert all(
        f.name.startswith(".model.safetensors.")
        for f in tmp_path.iterdir()
        if f.name not in ("model.safetensors", "ready")
    )


def test_disk_full_during_export_is_one_line_and_leaves_no_artifact(tmp_path, tiny_ckpt, monkeypatch, capsys):
    from vitc.cli import main
    from vitc.export import _files as staged_files

    monkeypatch.setattr(staged_files.os, "replace", _enospc)
    with pytest.raises(SystemExit) as e:
        main(["export", str(tiny_ckpt), "--target", "onnx", "--out", str(tmp_path / "x"), "--threads", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "No space left on device" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())  # no artifact, no staging dir


def test_no_shell_true_anywhere():
    """User strings reach subprocesses only as argv lists; no shell ever parses them."""
    bad = []
    for folder in ("vitc", "compress", "export", "benchmarks"):
        for f in (ROOT / folder).rglob("*.py"):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput\(", line):
                    bad.append(f"{f.relative_to(ROOT)}:{i}")
    assert not bad, bad
    # and the scan itself can fail: it finds the pattern in a line that has it
    assert re.search(r"shell\s*=\s*True", "subprocess.run(cmd, shell=True)")
