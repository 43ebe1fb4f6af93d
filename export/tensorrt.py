"""TensorRT (.engine) from the ONNX export, with the TensorRT Python API (10.x and 11.x).

- fp32: the fp32 ONNX.
- fp16: TensorRT 11 removed BuilderFlag.FP16 (networks are always strongly typed), so the ONNX is
  converted to fp16 first (ONNX Runtime's converter, fp32 I/O kept); on 10.x the builder flag is set.
- int8: explicit quantization only: the Q/DQ ONNX from ONNX Runtime's static quantizer (TensorRT 11
  removed the INT8 flag and calibrators; 10.x also builds Q/DQ networks).
TensorRT installs from NVIDIA's index and needs a CUDA GPU; `check()` says which is missing.
Nothing here pretends an engine was built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitc.errors import ConfigError, VitcError

from ._files import staged

if TYPE_CHECKING:  # torch is imported where it runs: naming a target (a YAML check) loads no torch
    import torch

NAME = "tensorrt"
SUFFIX = ".engine"
PRECISIONS = ("fp32", "fp16", "int8")
EXTRA = "tensorrt"


class EngineBuildError(VitcError):
    """TensorRT could not parse the ONNX or build the engine."""


@dataclass
class Options:
    precision: str = "fp16"
    workspace_gb: float = 2.0
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    calibration: torch.Tensor | None = None  # real images, for the Q/DQ ONNX of int8

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {PRECISIONS}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ConfigError(
                f"batch profile: need 1 <= min ({self.min_batch}) <= opt ({self.opt_batch}) <= max ({self.max_batch})"
            )
        if self.workspace_gb <= 0:
            raise ConfigError("workspace_gb: must be > 0")
        if self.precision == "int8" and self.calibration is None:
            raise ConfigError("tensorrt int8 needs calibration images for its Q/DQ ONNX", "pass --calib digits")


def check() -> str | None:
    import torch

    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        missing.append(
            "the tensorrt package is not installed (it downloads its libraries from NVIDIA's index: "
            "pip install --extra-index-url https://pypi.nvidia.com 'vitc[tensorrt]')"
        )
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU is visible to torch (TensorRT builds and runs engines on NVIDIA GPUs only)")
    return "; ".join(missing) or None


def profile_shapes(opts: Options, chw: tuple[int, int, int]) -> tuple[tuple, tuple, tuple]:
    """(min, opt, max) input shapes of the optimization profile for the dynamic batch axis."""
    return ((opts.min_batch, *chw), (opts.opt_batch, *chw), (opts.max_batch, *chw))


def major_version(trt_module) -> int:
    return int(str(trt_module.__version__).split(".")[0])


def prepare_onnx(model: torch.nn.Module, example: torch.Tensor, folder: Path, opts: Options, trt_major: int) -> Path:
    """The ONNX that TensorRT parses, for this precision and TensorRT major version (no GPU needed)."""
    from . import onnx as onnx_target

    fp16_in_graph = opts.precision == "fp16" and trt_major >= 11
    path = folder / ("model_fp16.onnx" if fp16_in_graph else "model.onnx")
    onnx_target.export(model, example, path, onnx_target.Options(precision="fp16" if fp16_in_graph else "fp32"))
    if opts.precision == "int8":
        from vitc.compress.quantize import ort_static_int8

        qdq = folder / "model_qdq.onnx"
        ort_static_int8(path, qdq, opts.calibration)
        return qdq
    return path


def parser_errors(parser) -> str:
    """Every ONNX parser error, verbatim, one per line."""
    return "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))


def build_engine(onnx_path: Path, opts: Options, chw: tuple[int, int, int]) -> bytes:
    import tensorrt as trt

    major = major_version(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if major == 10 and opts.precision == "fp32":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}:\n{parser_errors(parser)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gb * (1 << 30)))
    if major == 10 and opts.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if major == 10 and opts.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # with Q/DQ nodes: explicit quantization, no calibrator
    profile = builder.create_optimization_profile()
    lo, opt, hi = profile_shapes(opts, chw)
    profile.set_shape(network.get_input(0).name, lo, opt, hi)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    return bytes(engine)


def export(model: torch.nn.Module, example: torch.Tensor, out: Path, opts: Options) -> Path:
    why = check()
    if why:
        raise VitcError(
            f"tensorrt target unavailable: {why}", "export --target onnx here and build the engine on a GPU machine"
        )
    import tensorrt as trt

    with staged(out) as tmp:
        work = tmp.parent / (tmp.name + "-onnx")
        work.mkdir()
        try:
            onnx_path = prepare_onnx(model, example, work, opts, major_version(trt))
            (tmp / out.name).write_bytes(build_engine(onnx_path, opts, tuple(example.shape[1:])))
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return out


def load(path: Path, threads: int | None = None):
    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    ctx = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    outp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    stream = torch.cuda.Stream()

    def run(x: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
        ctx.set_input_shape(inp, tuple(xt.shape))
        y = torch.empty(tuple(ctx.get_tensor_shape(outp)), dtype=torch.float32, device="cuda")
        ctx.set_tensor_address(inp, xt.data_ptr())
        ctx.set_tensor_address(outp, y.data_ptr())
        ctx.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return y.cpu().numpy()

    return run
