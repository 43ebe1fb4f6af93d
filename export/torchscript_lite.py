"""TorchScript for PyTorch Mobile's lite interpreter (.ptl): trace, freeze, optimize_for_mobile,
_save_for_lite_interpreter. fp32, and int8 with dynamic quantization of nn.Linear.

optimize_for_mobile needs XNNPACK, which the PyPI torch build lacks: vitc detects it, saves the
frozen module without the mobile passes and says so (manifest + CLI). ExecuTorch (.pte) is the
maintained successor for phones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitc.errors import ConfigError

from ._files import staged

if TYPE_CHECKING:  # torch is imported where it runs: naming a target (a YAML check) loads no torch
    import torch

NAME = "torchscript-lite"
SUFFIX = ".ptl"
PRECISIONS = ("fp32", "int8")
EXTRA = None
notes: dict = {}  # what the last export did or skipped, for the manifest


@dataclass
class Options:
    precision: str = "fp32"  # int8: torch dynamic quantization of nn.Linear before tracing
    # recorded only: fbgemm's dynamic linear quantizes activations to 7 bits (reduce_range=True), so its u8 x s8
    # pairs never saturate int16: the same model is right on every CPU (vitc/isa.py)
    int8_isa: str = "portable"

    def __post_init__(self):
        from vitc.isa import resolve

        self.int8_isa = resolve(self.int8_isa)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {PRECISIONS}")


def check() -> str | None:
    return None  # ships with torch


def has_xnnpack() -> bool:
    import torch

    return bool(getattr(torch.backends, "xnnpack", None) and torch.backends.xnnpack.enabled)


def export(model: torch.nn.Module, example: torch.Tensor, out: Path, opts: Options) -> Path:
    import warnings

    import torch
    from torch.utils.mobile_optimizer import optimize_for_mobile

    model = model.eval()
    if opts.precision == "int8":
        from vitc.int8_recipe import dynamic_int8

        model = dynamic_int8(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow on constants
        traced = torch.jit.trace(model, example, check_trace=False)
    notes.clear()
    if has_xnnpack():
        mobile = optimize_for_mobile(traced)
        notes["mobile_passes"] = "applied"
    else:
        mobile = torch.jit.freeze(traced)
        notes["mobile_passes"] = (
            "skipped: this torch build has no XNNPACK, so optimize_for_mobile cannot run; saved the frozen module"
        )
    # said once, in vitc's words (torch's own FutureWarnings go to the run's log: vitc/runlog.py)
    notes["deprecated"] = (
        "TorchScript and its lite interpreter are deprecated upstream in favour of ExecuTorch: "
        "for phones, export --target executorch"
    )
    with staged(out) as tmp:
        mobile._save_for_lite_interpreter(str(tmp / out.name))
    return out


def load(path: Path, threads: int | None = None):
    import torch
    from torch.jit.mobile import _load_for_lite_interpreter

    if threads:
        torch.set_num_threads(threads)
    m = _load_for_lite_interpreter(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return m(torch.from_numpy(x)).numpy()

    return run
