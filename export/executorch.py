"""ExecuTorch (.pte): torch.export -> edge dialect -> XNNPACK delegate -> ExecuTorch program, run
through the executorch runtime. The maintained successor of TorchScript-lite for phones.
int8: the XNNPACK quantizer (torchao PT2E flow, symmetric per-channel int8 on nn.Linear, real
calibration images)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitc.errors import ConfigError

from ._files import staged

if TYPE_CHECKING:  # torch is imported where it runs: naming a target (a YAML check) loads no torch
    import torch

NAME = "executorch"
SUFFIX = ".pte"
PRECISIONS = ("fp32", "int8")
EXTRA = "mobile"


@dataclass
class Options:
    precision: str = "fp32"
    max_batch: int = 64  # upper bound of the dynamic batch dimension
    calibration: torch.Tensor | None = None  # real images for int8
    # recorded only: XNNPACK's int8 kernels sum products in 32 bits on every ISA (AVX2: sign-extend + VPMADDWD), so
    # the same program is right on every CPU (measured under emulation: results/int8-isa)
    int8_isa: str = "portable"

    def __post_init__(self):
        from vitc.isa import resolve

        self.int8_isa = resolve(self.int8_isa)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {PRECISIONS}")
        if self.precision == "int8" and self.calibration is None:
            raise ConfigError("executorch int8 needs calibration images", "pass --calib digits (or an ImageFolder)")
        if self.max_batch < 1:
            raise ConfigError("max_batch: must be >= 1")


def check() -> str | None:
    try:
        import executorch  # noqa: F401
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
    except ImportError:
        return "executorch is not installed: pip install 'vitc[mobile]'"
    return None


def _dynamic(max_batch: int):
    import torch

    return ({0: torch.export.Dim("batch", min=1, max=max_batch)},)


def _quantize(model: torch.nn.Module, example: torch.Tensor, calib: torch.Tensor, max_batch: int) -> torch.nn.Module:
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    # Linear layers only (as with ONNX Runtime): the global config also quantizes the residual adds
    # and attention inputs, which on the tiny test ViT dropped min cosine to 0.16 vs 0.94 (measured).
    q = XNNPACKQuantizer().set_module_type(torch.nn.Linear, get_symmetric_quantization_config(is_per_channel=True))
    gm = torch.export.export(model, (example,), dynamic_shapes=_dynamic(max_batch)).module()
    prepared = prepare_pt2e(gm, q)
    with torch.no_grad():
        for i in range(0, len(calib), 16):
            prepared(calib[i : i + 16])
    return convert_pt2e(prepared)


@contextmanager
def _explicit_attention(model: torch.nn.Module):
    """timm's attention as matmul -> softmax -> matmul while exporting, then as it was. The fused form lowers to
    SDPA, whose decomposition XNNPACK leaves largely outside its delegate; at 224 px the explicit form measured
    1.47x OpenVINO fp32 against 2.09x (results/executorch-ab). The same function: timm computes both."""
    mods = [m for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    before = [m.fused_attn for m in mods]
    for m in mods:
        m.fused_attn = False
    try:
        yield model
    finally:
        for m, f in zip(mods, before):
            m.fused_attn = f


def export(model: torch.nn.Module, example: torch.Tensor, out: Path, opts: Options) -> Path:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with _explicit_attention(model.eval()) as model:
        if opts.precision == "int8":
            model = _quantize(model, example, opts.calibration, opts.max_batch)
        ep = torch.export.export(model, (example,), dynamic_shapes=_dynamic(opts.max_batch))
    program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    with staged(out) as tmp:
        (tmp / out.name).write_bytes(program.buffer)
    return out


def load(path: Path, threads: int | None = None):
    import torch

    try:
        # The pybindings' compiled module: the same functions `portable_lib` (and executorch.runtime,
        # built on it) re-export, without portable_lib's import of executorch.exir (the whole export
        # stack, ~3 s of a 4.4 s load in each bench worker); calls measured ~2% faster than
        # Runtime.load_program(...).load_method("forward").execute, outputs identical.
        from executorch.extension.pybindings import _C as lib
    except ImportError:  # a build that moved it: the documented module
        from executorch.extension.pybindings import portable_lib as lib

    if threads:
        lib._unsafe_reset_threadpool(int(threads))
    module = lib._load_for_executorch(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.uint8 if x.dtype == np.uint8 else np.float32)  # uint8: in-graph
        return module.forward([torch.from_numpy(x)])[0].numpy()

    return run
