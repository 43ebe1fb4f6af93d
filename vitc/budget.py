"""A latency budget (`vitc prune --latency 0.33x | 1.2ms`) and the runtimes a latency table is measured on:
parsed and checked when a config is built, without importing torch or a runtime."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

# runtime name -> (export target, precision, the target's options for it)
RUNTIMES: dict[str, tuple[str, str, dict]] = {
    "openvino-int8": ("openvino", "int8", {"nncf": "defaults"}),  # NNCF defaults: the by-hand int8 baseline
    "onnx-int8": ("onnx", "int8", {"int8_mode": "auto"}),  # dynamic for attention models (compress/quantize.py)
    "openvino-fp32": ("openvino", "fp32", {}),
    "onnx-fp32": ("onnx", "fp32", {}),
}


@dataclass(frozen=True)
class Budget:
    value: float
    relative: bool  # True: a share of the unpruned model's latency on the same runtime; False: milliseconds

    @staticmethod
    def parse(text: str) -> Budget:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(x|ms|us)\s*", str(text).lower())
        if not m or float(m.group(1)) <= 0:
            raise ConfigError(
                f"latency budget {text!r} is not a positive number with a unit",
                "give it relative to the unpruned model (0.33x) or absolute (1.2ms, 800us)",
            )
        v, unit = float(m.group(1)), m.group(2)
        return Budget(v, True) if unit == "x" else Budget(v / 1000 if unit == "us" else v, False)

    def ratio(self, ref_ms: float) -> float:
        """The budget as a share of the unpruned model's p50 (ref_ms, from the table)."""
        return self.value if self.relative else self.value / ref_ms

    def __str__(self) -> str:
        return f"{self.value:g}x" if self.relative else f"{self.value:g}ms"
