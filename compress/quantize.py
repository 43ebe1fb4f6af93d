"""Quantization, each through the runtime's own quantizer, calibrated on real images.

- PyTorch dynamic int8 of nn.Linear: `torch.ao.quantization.quantize_dynamic` (fbgemm kernels,
  VNNI on this CPU). torch.ao.quantization is deprecated in favour of torchao, and we know it:
  torchao's replacement (`quantize_(model, Int8DynamicActivationInt8WeightConfig())`) returns
  tensor subclasses aimed at torch.compile/GPU; they cannot be traced into TorchScript-lite and
  their eager CPU path is slower than fbgemm's quantized::linear_dynamic. So the TorchScript path
  uses torch.ao while it exists; ExecuTorch int8 already uses torchao's PT2E flow. Dynamic int8 is
  a pure function of the fp32 weights, so a quantized checkpoint is the fp32 safetensors plus this
  recipe, re-applied on load: no pickles, reproducible.
- ONNX Runtime int8, ORT's own advice: dynamic for transformers (int8 weights, activations
  quantized per call; 1.5x faster than static QDQ on deit_tiny 224), static for CNNs: quant_pre_process,
  then QDQ with S8 activations and S8 per-channel weights, calibrated on real images; op types that
  hurt ViT accuracy stay float (measured). U8 activations measured no faster (results/latency-ab).
- OpenVINO: NNCF post-training quantization; which NNCF settings, and why: nncf_int8.
- Portable int8 (`int8_isa`, vitc/isa.py): on x86 without VNNI the runtimes' int8 GEMMs add pairs of u8 x s8
  products in saturating int16 (VPMADDUBSW), so full-range int8 weights compute other answers there. "portable"
  keeps weights to 7 bits where the runtime saturates: ORT `reduce_range`, NNCF `overflow_fix`; XNNPACK sums in
  32 bits on every ISA and fbgemm's dynamic linear already quantizes activations to 7 bits (reduce_range), so
  those two recipes are the same either way (measured: results/int8-isa).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch

from vitc import checkpoint as ckpt
from vitc.config import NNCF_SCHEMES
from vitc.errors import ConfigError
from vitc.handoff import VAL_SPLIT, Checkpoint
from vitc.int8_recipe import DYNAMIC_INT8, apply_recipe, dynamic_int8  # noqa: F401  (public here too)
from vitc.isa import here
from vitc.runlog import foreign_stdout

from .stage import prepare_out
from .trainer import evaluate

# ONNX Runtime: quantize the matmuls only. LayerNormalization, Softmax, Gelu/Erf and the residual
# Add stay float: quantizing them costs ViT accuracy and buys little time.
ORT_OPS = ["MatMul", "Gemm", "Conv"]


def check_calibration(calib: torch.Tensor, batch: int) -> None:
    if len(calib) < batch:
        raise ConfigError(
            f"calibration set has {len(calib)} images, fewer than the calibration batch {batch}",
            f"pass --calib-size {batch} or more",
        )


class _Reader:
    """onnxruntime CalibrationDataReader over real, preprocessed images."""

    def __init__(self, calib: torch.Tensor, input_name: str, batch: int):
        self.batches = [calib[i : i + batch].numpy() for i in range(0, len(calib), batch)]
        self.name, self.i = input_name, 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self):
        self.i = 0


def ort_static_int8(
    fp32_onnx: Path,
    out: Path,
    calib: torch.Tensor,
    batch: int = 16,
    op_types: list[str] | None = None,
    activation: str = "s8",
    reduce_range: bool = False,
    weights: str = "s8",
) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_calibration(calib, batch)
    pre = out.with_name(out.stem + ".pre.onnx")
    try:
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=False)
        name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        quantize_static(
            str(pre),
            str(out),
            _Reader(calib, name, batch),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
            per_channel=True,
            reduce_range=reduce_range,  # True: 7-bit weights, no int16 saturation on x86 without VNNI
            op_types_to_quantize=op_types or ORT_OPS,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": activation == "s8"},
        )
    finally:
        pre.unlink(missing_ok=True)
        Path(str(pre) + ".data").unlink(missing_ok=True)
    return out


def ort_dynamic_int8(fp32_onnx: Path, out: Path, reduce_range: bool = False) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_name(out.stem + ".pre.onnx")
    try:  # pre-processing first: quantize_dynamic fails on the raw dynamo export's shape info
        quant_pre_process(str(fp32_onnx), str(pre))
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, reduce_range=reduce_range)
    finally:
        pre.unlink(missing_ok=True)
        Path(str(pre) + ".data").unlink(missing_ok=True)
    return out


NNCF_MIN_AGREEMENT = 0.99


def nncf_int8(
    ov_model,
    calib: torch.Tensor,
    scheme: str = "auto",
    batch: int = 1,
    min_agreement: float = NNCF_MIN_AGREEMENT,
    overflow_fix: str = "first_layer_only",
    float_attention: bool = False,
) -> tuple[object, dict]:
    """NNCF post-training int8 of an OpenVINO model; returns (quantized model, what was done).

    defaults: nncf.quantize's defaults also quantize the residual Adds, the GELU output and the
    attention output, so fewer ops stay float: on deit_tiny 224 it ran 4.13 -> 3.69 ms at batch 1
    (results/latency-ab/2-quantizers.md) with 100% top-1 agreement, but on a small undertrained
    ViT its agreement fell to 88.9% (int8 residuals are ViTs' known weak spot).
    transformer: model_type=TRANSFORMER keeps those in float and adds SmoothQuant: the safe one.
    auto: defaults when their top-1 agreement with the float model on the calibration images is
    >= min_agreement, else transformer. (The check reuses the calibration images, train split,
    so it is optimistic; the export stage's validation on val images is the independent gate.)
    overflow_fix: NNCF's OverflowFix: "enable" (7-bit weights in every MatMul/Conv: right on CPUs without VNNI),
    "disable" (full 8-bit range: right only where int8 products do not saturate), or NNCF's own default
    "first_layer_only" (NNCF's default, and vitc's recipe before portable int8). The helpers default to the
    libraries' own defaults; export/openvino.py and export/onnx.py pass the portable or VNNI-only values.
    float_attention: leave the inputs of ScaledDotProductAttention unquantized. NNCF quantizes Q and K, and the
    CPU plugin then multiplies two int8 activations, which saturates without VNNI as the weights do but which no
    overflow fix covers (measured under emulation: results/int8-isa). Portable int8 keeps attention float.
    """
    import nncf

    if scheme not in NNCF_SCHEMES:
        raise ConfigError(f"nncf scheme {scheme!r} is not one of {NNCF_SCHEMES}")
    check_calibration(calib, batch)
    data = nncf.Dataset([calib[i : i + batch].numpy() for i in range(0, len(calib), batch)])

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix))

    def run(kind: str):
        kw = {"model_type": nncf.ModelType.TRANSFORMER} if kind == "transformer" else {}
        if float_attention:
            kw["ignored_scope"] = nncf.IgnoredScope(types=["ScaledDotProductAttention"], validate=False)
        with foreign_stdout():  # NNCF's INFO lines and progress bars: the run's log, not the terminal
            return nncf.quantize(
                ov_model.clone(), data, subset_size=len(calib) // batch, advanced_parameters=advanced, **kw
            )

    if scheme != "auto":
        return run(scheme), {"scheme": scheme, "overflow_fix": overflow_fix, "float_attention": float_attention}
    q = run("defaults")
    agree = _agreement(ov_model, q, calib)
    info = {
        "tried": "defaults",
        "calibration_agreement": agree,
        "min_agreement": min_agreement,
        "overflow_fix": overflow_fix,
        "float_attention": float_attention,
    }
    if agree >= min_agreement:
        return q, {"scheme": "defaults", **info}
    return run("transformer"), {"scheme": "transformer", **info}


def _agreement(float_model, int8_model, calib: torch.Tensor) -> float:
    """Top-1 agreement of two OpenVINO models on the images (float model in f32)."""
    import openvino as ov

    from vitc.validate import run_artifact

    core = ov.Core()
    fp = core.compile_model(float_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    q = core.compile_model(int8_model, "CPU")
    a, b = (run_artifact(lambda x, m=m: m(x)[0], calib, 16) for m in (fp, q))
    return float((a.argmax(1) == b.argmax(1)).mean())


def quantize_checkpoint(
    source: Path | str | Checkpoint, out: Path, max_drop: float | None, data: str | None = None, force: bool = False
) -> dict:
    """PyTorch dynamic int8: a checkpoint dir = the fp32 safetensors + the recipe, evaluated on the val split
    of the checkpoint's data (or `data`) against the fp32 model: the accuracy gate (status in its metrics)."""
    c = source if isinstance(source, Checkpoint) else Checkpoint.open(source)
    if c.quantization:
        raise ConfigError(f"{c.path} is already quantized ({c.quantization['method']})", "pass the fp32 checkpoint")
    data = c.data_name(data)
    prepare_out(out, resume=False, force=force)  # before the val split is loaded: a refusal costs nothing
    X, Y = c.val(data)
    fp32 = 100.0 * float((c.reference(data).argmax(1) == Y.numpy()).mean())
    int8 = evaluate(dynamic_int8(copy.deepcopy(c.model)), X, Y)["top1"]
    drop = fp32 - int8
    status = "ok" if max_drop is None or drop <= max_drop else "failed: accuracy gate"
    with ckpt.atomic_path(out / ckpt.WEIGHTS) as tmp:
        shutil.copyfile(c.path / ckpt.WEIGHTS, tmp)
    new = {
        **{k: v for k, v in c.meta.items() if k not in ("weights_sha256", "format")},
        "stage": "quantize",
        "data": data,
        "quantization": DYNAMIC_INT8,
        # fbgemm's dynamic linear keeps activations to 7 bits: right on every CPU (vitc/isa.py)
        "isa": {"validated_on": here(), "int8_isa": "portable"},
        "inputs": {"checkpoint": {"path": str(c.path), "sha256": c.sha256}},
        "metrics": {
            **c.metrics,
            "top1_fp32": fp32,
            "top1": int8,
            "top1_drop": drop,
            "data": data,
            "split": VAL_SPLIT,
            "max_drop": max_drop,
            "status": status,
        },
    }
    ckpt.write_json(
        out / ckpt.META, {"format": ckpt.FORMAT, **new, "weights_sha256": ckpt.sha256_file(out / ckpt.WEIGHTS)}
    )
    return new["metrics"]
