"""ONNX: torch.onnx's dynamo exporter (torch.export + onnxscript), dynamic batch axis, metadata,
checked with onnx.checker, run with ONNX Runtime. torch is imported inside export() only: `load` runs
in the bench's timing worker, which must not load torch beside ONNX Runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitc.cores import usable_cores
from vitc.errors import CheckpointError, ConfigError

from ._files import staged

if TYPE_CHECKING:
    import torch

NAME = "onnx"
SUFFIX = ".onnx"
PRECISIONS = ("fp32", "fp16", "int8")
EXTRA = "onnx"
INPUT, OUTPUT = "input", "logits"


@dataclass
class Options:
    # 20: GELU is one Gelu op (18 spells it Erf + Mul + Add). A/B on deit_tiny 224, ORT, batch 1:
    # fp32 11.06 -> 10.67 ms, dynamic int8 12.48 -> 11.60 ms (results/latency-ab/4-onnx-opset.md).
    # 23 adds one Attention op per block, but ORT ran it slower (10.12 -> 11.02 ms) and its
    # quantizer cannot process it. TensorRT's opset guide: parser backward compatible to 9, 11.x up to 25.
    opset: int = 20
    dynamic_batch: bool = True
    precision: str = "fp32"  # int8: ONNX Runtime static QDQ quantization (compress/quantize.py)
    metadata: dict | None = None  # class names, preprocessing, source hash -> metadata_props
    calibration: torch.Tensor | None = None  # real images for int8 (static)
    # int8: static (QDQ, calibrated on real images) | dynamic (int8 weights, activations quantized
    # per call) | auto: dynamic for models with attention, static otherwise. ONNX Runtime's own
    # advice (dynamic for transformers, static for CNNs) and measured on deit_tiny 224: static QDQ
    # p50 9.7 ms, dynamic 6.5 ms, agreement with fp32 99.4% vs 99.7% (results/latency-ab).
    int8_mode: str = "auto"
    # int8: portable (7-bit weights, reduce_range: MLAS's U8S8 kernels saturate on x86 without VNNI) | vnni (full
    # 8-bit weights) | auto (vnni if this CPU's int8 path does not saturate); resolved here (vitc/isa.py)
    int8_isa: str = "portable"

    def __post_init__(self):
        from vitc.isa import resolve

        self.int8_isa = resolve(self.int8_isa)
        if self.opset < 17:
            raise ConfigError(f"opset: {self.opset} is too old; LayerNormalization needs opset >= 17")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {PRECISIONS}")
        if self.int8_mode not in ("auto", "static", "dynamic"):
            raise ConfigError(f"int8_mode: {self.int8_mode!r} is not auto, static or dynamic")
        if self.precision == "int8" and self.calibration is None and self.int8_mode != "dynamic":
            raise ConfigError("onnx int8 needs calibration images", "pass --calib digits (or an ImageFolder)")


def check() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed: pip install 'vitc[onnx]'"
    return None


def export(model: torch.nn.Module, example: torch.Tensor, out: Path, opts: Options) -> Path:
    import onnx
    import torch

    model = model.eval()
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},) if opts.dynamic_batch else None
    with staged(out) as tmp:
        path = tmp / out.name
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opts.opset,
            dynamic_shapes=dyn,
            input_names=[INPUT],
            output_names=[OUTPUT],
            verbose=False,
        )
        m = onnx.load(str(path))  # also pulls external data (written for models > 2 GB) into memory
        if opts.precision == "fp16":
            # ONNX Runtime's own converter; inputs/outputs stay fp32 so callers need not change
            from onnxruntime.transformers.float16 import convert_float_to_float16

            m = _toposort(convert_float_to_float16(m, keep_io_types=True))
        for k, v in (opts.metadata or {}).items():
            m.metadata_props.add(key=k, value=v if isinstance(v, str) else json.dumps(v))
        for p in tmp.iterdir():
            p.unlink()
        big = m.ByteSize() > 1_800_000_000
        onnx.save_model(
            m, str(path), save_as_external_data=big, all_tensors_to_one_file=True, location=out.name + ".data"
        )
        onnx.checker.check_model(str(path), full_check=True)
        if opts.precision == "int8":
            from vitc.compress.quantize import ort_dynamic_int8, ort_static_int8

            if opts.int8_mode == "auto":
                opts.int8_mode = (
                    "dynamic" if any(type(m).__name__.endswith("Attention") for m in model.modules()) else "static"
                )
            fp32 = path.rename(tmp / ("fp32-" + out.name))
            portable = opts.int8_isa == "portable"
            if opts.int8_mode == "static":
                ort_static_int8(fp32, path, opts.calibration, reduce_range=portable)
            else:
                ort_dynamic_int8(fp32, path, reduce_range=portable)
                opts.calibration = None  # not used: the manifest must not claim a calibration set
            fp32.unlink()
            onnx.checker.check_model(str(path))
    return out


def _toposort(m):
    # ORT's converter appends the fp32->fp16 input Casts after their consumers; onnx_ir's pass
    # restores the topological order that onnx.checker (and every runtime) requires.
    import onnx_ir as ir
    from onnx_ir.passes.common import TopologicalSortPass

    model = ir.serde.deserialize_model(m)
    TopologicalSortPass()(model)
    return ir.serde.serialize_model(model)


def check_external_data(path: Path) -> None:
    """Refuse external-data locations that escape the model's folder (path traversal)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise CheckpointError(
            f"{path} is not a readable ONNX model ({type(e).__name__})", "pass a .onnx file written by `vitc export`"
        ) from e
    root = path.parent.resolve()
    for t in _get_all_tensors(m):
        if uses_external_data(t):
            loc = ExternalDataInfo(t).location
            target = (root / loc).resolve()
            if Path(loc).is_absolute() or root not in target.parents:
                raise CheckpointError(
                    f"{path}: tensor {t.name} points its data outside the model folder ({loc})",
                    "refusing to read it; re-export the model",
                )


def session_options(threads: int | None = None):
    """ORT options for vitc's sessions. Always an explicit thread count (the asked one, else the usable cores): left
    at 0, ORT starts a thread per physical core and pins them, ignoring taskset."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads or usable_cores(), 1
    return so


def load(path: Path, threads: int | None = None):
    import onnxruntime as ort

    path = Path(path)
    check_external_data(path)
    sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    dtype = np.uint8 if sess.get_inputs()[0].type == "tensor(uint8)" else np.float32  # in-graph: pixels

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x.astype(dtype, copy=False)})[0]

    run.session, run.input_name = sess, name  # for the bench's bare-loop cross-check on this very session
    return run


def metadata(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}
