"""OpenVINO IR (.xml + .bin) through `openvino.convert_model`; fp32, fp16-compressed weights, and
int8 through NNCF post-training quantization (`vitc quantize --backend openvino`). No torch at import:
`load` runs in the bench's timing worker, which must not load torch beside OpenVINO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitc.errors import ConfigError

from ._files import staged

if TYPE_CHECKING:
    import torch

NAME = "openvino"
SUFFIX = ".xml"
PRECISIONS = ("fp32", "fp16", "int8")
EXTRA = "openvino"
INFERENCE_PRECISIONS = ("f32", "bf16", "f16", "default")
_RT_KEY = ["vitc", "inference_precision"]
_NNCF_KEY = ["vitc", "nncf"]  # which NNCF settings made an int8 IR (compress.quantize.nncf_int8)


@dataclass
class Options:
    precision: str = "fp32"  # fp32 | fp16 (weights stored fp16) | int8 (needs calibration)
    dynamic_batch: bool = True
    calibration: torch.Tensor | None = None  # real, preprocessed images for int8
    # Precision of the ops the IR leaves in float. The CPU plugin's default is bf16 on CPUs with
    # BF16 (this one). None = f32 for fp32/fp16 IRs (so an fp32 artifact really computes in fp32)
    # and the plugin's default for int8 (its matmuls are int8 either way; measured on deit_tiny 224:
    # results/latency-ab). Stored in the IR's rt_info, so every loader runs it the same way.
    inference_precision: str | None = None
    # int8: NNCF settings, auto | defaults | transformer (compress.quantize.nncf_int8); after
    # export, nncf_result says which one ran and the agreement that chose it
    nncf: str = "auto"
    nncf_result: dict | None = None
    # int8: portable (NNCF OverflowFix.ENABLE: 7-bit weights, and attention's Q and K left float: no int16
    # saturation on x86 without VNNI) | vnni (OverflowFix.DISABLE, int8 attention) | auto (vnni if this CPU's int8
    # path does not saturate); resolved here (vitc/isa.py)
    int8_isa: str = "portable"
    # --preprocess in-graph: {"mean": [...], "std": [...]}; the IR then takes uint8 NHWC pixels and its
    # PrePostProcessor casts, normalizes and transposes (added after NNCF, which calibrates the float model)
    in_graph: dict | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {PRECISIONS}")
        if self.precision == "int8" and self.calibration is None:
            raise ConfigError("openvino int8 needs calibration images", "pass --calib digits (or an ImageFolder)")
        if self.inference_precision is None:
            self.inference_precision = "default" if self.precision == "int8" else "f32"
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"inference_precision: {self.inference_precision!r} is not one of {INFERENCE_PRECISIONS}")
        from vitc.config import NNCF_SCHEMES

        if self.nncf not in NNCF_SCHEMES:
            raise ConfigError(f"nncf: {self.nncf!r} is not one of {NNCF_SCHEMES}")
        from vitc.isa import resolve

        self.int8_isa = resolve(self.int8_isa)


def check() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "openvino is not installed: pip install 'vitc[openvino]'"
    return None


def convert(model: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool = True):
    import warnings

    import openvino as ov

    shape = [-1 if dynamic_batch else example.shape[0], *example.shape[1:]]
    with warnings.catch_warnings():  # convert_model traces with torch.jit, which now warns it is deprecated
        warnings.simplefilter("ignore")
        return ov.convert_model(model.eval(), example_input=example, input=[ov.PartialShape(shape)])


def export(model: torch.nn.Module, example: torch.Tensor, out: Path, opts: Options) -> Path:
    import openvino as ov

    ov_model = convert(model, example, opts.dynamic_batch)
    if opts.precision == "int8":
        from vitc.compress.quantize import nncf_int8

        portable = opts.int8_isa == "portable"
        ov_model, opts.nncf_result = nncf_int8(
            ov_model,
            opts.calibration,
            opts.nncf,
            overflow_fix="enable" if portable else "disable",
            float_attention=portable,
        )
        ov_model.set_rt_info(opts.nncf_result["scheme"], _NNCF_KEY)
    if opts.in_graph:
        ov_model = add_preprocessing(ov_model, opts.in_graph["mean"], opts.in_graph["std"])
    mark_inference_precision(ov_model, opts.inference_precision)
    with staged(out) as tmp:
        # save_model compresses weights to fp16 unless told otherwise: only do it when asked
        ov.save_model(ov_model, str(tmp / out.name), compress_to_fp16=opts.precision == "fp16")
    return out


def add_preprocessing(ov_model, mean: list[float], std: list[float]):
    """OpenVINO's PrePostProcessor: uint8 NHWC in; cast, /255, -mean, /std (torchvision's ToTensor + Normalize,
    in that order), NHWC -> NCHW inside the IR."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    inp.model().set_layout(ov.Layout("NCHW"))
    inp.preprocess().convert_element_type(ov.Type.f32).scale(255.0).mean(list(mean)).scale(list(std))
    return ppp.build()


def mark_inference_precision(ov_model, value: str) -> None:
    ov_model.set_rt_info(value, _RT_KEY)


def runtime_precision(ov_model) -> str:
    """The IR's own setting (written by vitc), else f32 (IRs from before it was recorded)."""
    return ov_model.get_rt_info(_RT_KEY).astype(str) if ov_model.has_rt_info(_RT_KEY) else "f32"


def compile_config(hint: str, threads: int | None, precision: str) -> dict:
    cfg = {"PERFORMANCE_HINT": hint}
    if precision != "default":  # "default": the CPU plugin's own choice (bf16 on BF16 CPUs)
        cfg["INFERENCE_PRECISION_HINT"] = precision
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    return cfg


def load(path: Path, threads: int | None = None, inference_precision: str | None = None, static_shapes: bool = True):
    """-> fn(x) -> logits. With static_shapes, each new input shape gets the IR reshaped to that
    exact shape and compiled once (a few per session: the latency batch, the throughput batch, the
    validation batches): measured on the digits student, a static batch-1 model ran 20% faster
    than the dynamic-batch one (p50 1.54 vs 1.94 ms, medians of 4 interleaved rounds), and it is
    what `benchmark_app -shape` runs."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    cfg = compile_config("LATENCY", threads, inference_precision or runtime_precision(model))
    dtype = np.uint8 if model.input(0).get_element_type() == ov.Type.u8 else np.float32  # in-graph: pixels
    requests: dict[tuple, object] = {}

    def request(shape: tuple):
        if shape not in requests:
            if len(requests) >= 8:  # bounded: each compiled model holds its own weights
                requests.pop(next(iter(requests)))
            m = model
            if static_shapes:
                m = model.clone()
                m.reshape({m.input(0).get_any_name(): ov.PartialShape(list(shape))})
            # one request per shape, reused: CompiledModel.__call__ adds a dict copy per call
            requests[shape] = core.compile_model(m, "CPU", cfg).create_infer_request()
        return requests[shape]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=dtype)
        req = request(x.shape)
        if static_shapes:
            # Write into the request's own input buffer and infer with no arguments: handing the array
            # to infer() (share_inputs True or False) sets a new input tensor every call, 1.04-1.07x the
            # bare request at digits batch 1, 1.01-1.02x at 224 px; this way 1.004-1.008x (calls
            # alternated with the bare request: results/latency-ab/9-ov-input-tensor).
            req.get_input_tensor(0).data[...] = x
            req.infer()
        else:  # a dynamic shape has no fixed buffer to write into
            req.infer({0: x}, share_inputs=True)
        return req.get_output_tensor(0).data.copy()  # the request's buffer is reused by the next call

    return run
