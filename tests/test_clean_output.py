"""Issue 36: other libraries' warnings and log lines (torch's UserWarnings, ExecuTorch's C++ cpuinfo lines) go to
the run's log file, not between vitc's own lines; under --debug they reach the terminal (vitc/runlog.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

FOREIGN = ("Warning", "[cpuinfo_utils.cpp", "warnings.warn", "INFO:nncf", "Statistics collection")
GLOG = re.compile(r"^[WEI]\d{4} \d\d:\d\d")  # torch's glog-style lines: W1206 16:47:49.706000 ...


def _vitc(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vitc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def _foreign(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if any(f in ln for f in FOREIGN) or GLOG.match(ln)]


@pytest.mark.parametrize(
    "backend, marker",
    [("torch", "quantize_per_tensor"), ("executorch", "cpuinfo_utils"), ("openvino", "Statistics collection")],
)
def test_quantize_output_has_only_vitcs_lines_and_the_log_has_the_rest(tiny_ckpt, tmp_path, backend, marker):
    out = tmp_path / "q"
    p = _vitc("quantize", tiny_ckpt, "--out", out, "--backend", backend, "--calib-size", "64", "--threads", "1")
    assert p.returncode in (0, 3), p.stderr[-2000:]
    assert not _foreign(p.stdout + p.stderr), _foreign(p.stdout + p.stderr)
    assert marker in (out / "vitc.log").read_text()  # captured, not lost
    if backend == "torch":  # the deprecation that matters is said once, in vitc's words
        said = " ".join((p.stdout + p.stderr).split())
        assert said.count("deprecated upstream in favour of ExecuTorch") == 1, said


def test_debug_shows_other_libraries_messages(tiny_ckpt, tmp_path):
    out = tmp_path / "q"
    p = _vitc("--debug", "quantize", tiny_ckpt, "--out", out, "--backend", "torch", "--threads", "1")
    assert p.returncode in (0, 3), p.stderr[-2000:]
    assert "quantize_per_tensor" in p.stderr and not (out / "vitc.log").exists()
