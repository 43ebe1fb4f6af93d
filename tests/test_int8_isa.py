"""Issue 33: int8 that holds on every CPU. The int8 path of a CPU, portable recipes that compute the same on a CPU
without VNNI, and the self-test a bundle runs on the device.

A CPU without VNNI is this host when it has none; otherwise QEMU's user-mode emulator runs the device side on a
Haswell (AVX2, no AVX-512, no VNNI), so every runtime's own CPUID dispatch takes its saturating AVX2 kernels. Of
the runtimes only fbgemm has a switch of its own (FBGEMM_ENABLE_INSTRUCTIONS, used natively below); OpenVINO under
ONEDNN_MAX_CPU_ISA=AVX2 fails to compile a model, ONNX Runtime and XNNPACK have none. Without qemu, the emulated
tests skip and say why."""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vitc.export.edge_run import SATURATING, int8_isa
from vitc.export.stage import export_checkpoint

QEMU = shutil.which("qemu-x86_64")
EMULATED = "Haswell"  # AVX2 + FMA, no AVX-512, no VNNI


@functools.lru_cache(maxsize=1)
def _emulated_path() -> str:
    """The int8 path a process sees under QEMU's Haswell: avx2 where QEMU emulates AVX2 (7.2 and later)."""
    code = "from vitc.export.edge_run import int8_isa; print(int8_isa()['path'])"
    r = subprocess.run(
        [QEMU, "-cpu", EMULATED, sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()[-300:]}"


def no_vnni_prefix() -> list[str]:
    """The command prefix that runs a process on a CPU whose int8 products saturate: none on such a host, QEMU on
    an x86 host with VNNI; skip where neither exists."""
    if int8_isa()["saturates"]:
        return []
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"no x86 CPU without VNNI to run on: this host is {platform.machine()}")
    if not QEMU:
        pytest.skip(
            "this CPU has VNNI and qemu-x86_64 is not installed to emulate one without (apt-get install qemu-user)"
        )
    path = _emulated_path()
    if path != "avx2":
        pytest.skip(
            f"qemu-x86_64 -cpu {EMULATED} does not emulate AVX2 here (the process sees {path!r}; QEMU >= 7.2 does)"
        )
    return [QEMU, "-cpu", EMULATED]


@pytest.mark.parametrize(
    "flags, path",
    [
        ({"avx2", "avx512f", "avx512vnni", "amx_int8"}, "amx"),  # Intel Xeon 6/167 here
        ({"avx2", "avx512f", "avx512vnni"}, "avx512-vnni"),  # Zen 4, Zen 5, Cascade Lake
        ({"avx2", "avx_vnni"}, "avx-vnni"),  # Alder Lake cores
        ({"avx2", "avx512f"}, "avx512"),  # Skylake-SP
        ({"avx2", "ssse3"}, "avx2"),  # Zen 3, Haswell
        ({"ssse3"}, "sse"),
        ({"asimd", "asimddp"}, "neon-dotprod"),
        ({"asimd"}, "neon"),
        (set(), "unknown"),
    ],
)
def test_int8_path_of_each_cpu_class(flags, path):
    got = int8_isa(frozenset(flags))
    assert got["path"] == path
    assert got["saturates"] == (path in ("avx512", "avx2", "sse"))


def test_the_int8_path_is_what_cpuid_says_not_the_os():
    """Under an emulator /proc/cpuinfo shows the host's flags; the path must follow CPUID, as the runtimes do."""
    prefix = no_vnni_prefix()
    code = "from vitc.export.edge_run import int8_isa; print(int8_isa()['path'])"
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() in SATURATING


PORTABLE = [  # (target, preprocess, opts): the two tests that failed on an AVX2 host, and the rest of the int8 paths
    ("onnx", "in-graph", {"int8_mode": "static"}),
    ("onnx", "python", {"int8_mode": "dynamic"}),
    ("openvino", "python", None),
    ("executorch", "python", None),
]


@pytest.fixture(scope="module")
def exported(tiny_ckpt, tmp_path_factory):
    """The tiny model's int8 artifacts, portable and VNNI-only, exported (and validated) on this host."""
    root = tmp_path_factory.mktemp("isa")
    out = {}
    items = [(t, p, o, "portable") for t, p, o in PORTABLE] + [("onnx", "in-graph", {"int8_mode": "static"}, "vnni")]
    for target, pre, opts, isa in items:
        folder = root / f"{target}-{pre}-{isa}"
        m = export_checkpoint(tiny_ckpt, target, "int8", folder, calib_size=64, opts=opts, preprocess=pre, int8_isa=isa)
        out[(target, pre, isa)] = (m, folder / m["artifact"])
    return out


def run_selftest(bundle, prefix: list[str]) -> subprocess.CompletedProcess:
    """The bundle's own runner on the device: `python run.py --selftest`."""
    return subprocess.run(
        [*prefix, sys.executable, str(bundle / "run.py"), "--selftest"], capture_output=True, text=True, timeout=900
    )


def predict_selftest(artifact, prefix: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "vitc", "predict", str(artifact), "--selftest"],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.parametrize("target, pre, opts", PORTABLE, ids=[f"{t}-{p}" for t, p, _ in PORTABLE])
def test_portable_int8_computes_on_a_cpu_without_vnni_what_was_validated(exported, target, pre, opts):
    """The device's self-test (the reference images' logits within the exporter's gate, and within drift_atol of
    the exporting host's own logits) passes on a CPU without VNNI. ExecuTorch's int8 of this 2-block, 60-step model
    misses the 97% agreement gate on every CPU (96.4% here); the self-test then asks for what it reached here."""
    m, art = exported[(target, pre, "portable")]
    assert m["isa"]["int8_isa"] == "portable" and m["isa"]["validated_on"]["path"] == int8_isa()["path"]
    r = predict_selftest(art, no_vnni_prefix())
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    line = r.stdout.strip().splitlines()[-1]
    here = int8_isa()["path"] if int8_isa()["saturates"] else "avx2"
    assert line.startswith("selftest PASS") and f"int8 path here {here}, validated on {int8_isa()['path']}" in line


@pytest.mark.slow
def test_the_vnni_recipe_is_caught_on_a_cpu_without_vnni(exported, tmp_path):
    """The recipe the issue saw fail on an AVX2 host (ONNX static QDQ, pixels in): full 8-bit weights saturate there,
    and the device's self-test says so; the same artifact passes on the exporting host when that has VNNI."""
    from vitc.export.bundle import make

    if int8_isa()["saturates"]:
        pytest.skip(
            f"needs an exporting CPU whose int8 does not saturate (this one is {int8_isa()['path']}): here the "
            "VNNI-only artifact is validated on the very CPU it would fail on"
        )
    m, art = exported[("onnx", "in-graph", "vnni")]
    assert m["isa"]["int8_isa"] == "vnni"
    b = tmp_path / "bundle"
    make(art, b)
    r = run_selftest(b, no_vnni_prefix())
    assert r.returncode == 1, r.stdout + r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1].startswith("selftest FAIL")
    here = run_selftest(b, [])
    assert here.returncode == 0 and "selftest PASS" in here.stdout, here.stdout + here.stderr[-2000:]


def test_int8_isa_is_recorded_and_auto_follows_this_cpu(tiny_ckpt, tmp_path):
    m = export_checkpoint(tiny_ckpt, "onnx", "int8", tmp_path, opts={"int8_mode": "dynamic"}, int8_isa="auto")
    want = "portable" if int8_isa()["saturates"] else "vnni"
    assert m["options"]["int8_isa"] == m["isa"]["int8_isa"] == want
    assert m["isa"]["validated_on"] == int8_isa()
    fp32 = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path)
    assert fp32["isa"]["int8_isa"] is None and fp32["selftest"]["drift_atol"] < m["selftest"]["drift_atol"]


def test_portable_weights_keep_to_seven_bits(tiny_ckpt, tmp_path):
    """What makes the portable ONNX artifact safe: |w| <= 64 in every int8 weight; the VNNI-only one uses 127."""
    import onnx
    from onnx import numpy_helper

    def widest(isa: str) -> int:
        m = export_checkpoint(
            tiny_ckpt, "onnx", "int8", tmp_path / isa, opts={"int8_mode": "static"}, int8_isa=isa, calib_size=64
        )
        g = onnx.load(str(tmp_path / isa / m["artifact"])).graph
        ws = [numpy_helper.to_array(t) for t in g.initializer if t.data_type == onnx.TensorProto.INT8]
        return max(int(np.abs(w.astype(np.int16)).max()) for w in ws if w.size > 64)

    assert widest("portable") <= 64 < widest("vnni")


def test_unknown_int8_isa_is_one_sentence(tiny_ckpt, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitc",
            "export",
            str(tiny_ckpt),
            "--precision",
            "int8",
            "--int8-isa",
            "avx9",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0 and "--int8-isa: 'avx9' is not one of portable, vnni, auto" in r.stdout + r.stderr
    assert not (tmp_path / "x").exists()


def test_manifest_selftest_file_holds_what_the_runner_needs(tiny_ckpt, tmp_path):
    m = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path)
    spec = m["selftest"]
    with np.load(tmp_path / spec["file"], allow_pickle=False) as z:
        assert z["pixels"].dtype == np.uint8 and z["pixels"].shape[0] == spec["images"] >= 8
        assert z["reference"].shape == z["validated"].shape == (spec["images"], len(m["classes"]))
        assert float(np.abs(z["reference"] - z["validated"]).max()) <= spec["atol"]
    assert json.loads((tmp_path / (m["artifact"] + ".json")).read_text())["selftest"] == spec


@pytest.mark.slow
def test_pytorch_dynamic_int8_computes_the_same_on_fbgemms_avx2_path(tiny_ckpt, tmp_path):
    """fbgemm (PyTorch's dynamic int8, TorchScript-lite) honours FBGEMM_ENABLE_INSTRUCTIONS: its AVX2 kernels run
    natively on any x86 host, and the artifact passes its self-test there (reduce_range keeps products in int16)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"fbgemm's x86 kernels: this host is {platform.machine()}")
    m = export_checkpoint(tiny_ckpt, "torchscript-lite", "int8", tmp_path)
    env = {**os.environ, "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}
    r = subprocess.run(
        [sys.executable, "-m", "vitc", "predict", str(tmp_path / m["artifact"]), "--selftest"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0 and r.stdout.startswith("selftest PASS"), r.stdout + r.stderr[-2000:]
