"""Which CPUs an int8 artifact is built for (`--int8-isa`), and what this machine's int8 path is.

portable (the default): right on every CPU. Where a runtime's int8 GEMM saturates on x86 without VNNI (ONNX Runtime's
  MLAS, OpenVINO's oneDNN: u8 x s8 pairs added in int16 by VPMADDUBSW), weights keep to 7 bits (ORT reduce_range,
  NNCF OverflowFix.ENABLE). XNNPACK (ExecuTorch) and fbgemm's dynamic linear (PyTorch, TorchScript-lite) do not
  saturate, so their recipe is the same either way.
vnni: full 8-bit weights, for devices whose int8 products do not saturate (VNNI, AMX, ARM); elsewhere the artifact
  computes other answers than the ones vitc validated (`run.py --selftest` says so on the device).
auto: vnni when this machine's int8 path does not saturate, else portable: an artifact for CPUs like this one.

The choice between portable and vnni comes from measurements: results/int8-isa."""

from __future__ import annotations

from vitc.config import INT8_ISAS, _choice
from vitc.export.edge_run import int8_isa


def check(value: str) -> str:
    _choice(value, INT8_ISAS, "int8_isa")  # the stage configs' own check: valid values, closest as the hint
    return value


def resolve(value: str) -> str:
    """portable | vnni: what `auto` means on this machine."""
    if check(value) != "auto":
        return value
    return "portable" if int8_isa()["saturates"] else "vnni"


def here() -> dict:
    """This machine's int8 path for manifests and bench rows: {"path", "saturates", "machine"}."""
    return int8_isa()
