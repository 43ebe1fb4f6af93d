"""TensorRT without a GPU: what can be checked here is checked; nothing pretends an engine ran."""

import importlib.util

import pytest
import torch

from vitc.errors import ConfigError, VitcError
from vitc.export import tensorrt as trt_target


def test_check_names_what_is_missing():
    why = trt_target.check()
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt package is not installed" in why and "pypi.nvidia.com" in why
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in why
    if why is None:
        pytest.skip("TensorRT and a GPU are present: the engine is tested in test_export")


def test_export_refuses_and_writes_nothing(tmp_path, tiny_ckpt):
    if trt_target.check() is None:
        pytest.skip("TensorRT and a GPU are present")
    from vitc.export.stage import export_checkpoint

    with pytest.raises(VitcError, match="tensorrt target unavailable"):
        export_checkpoint(tiny_ckpt, "tensorrt", "fp16", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"min_batch": 4, "opt_batch": 2}, "min"),
        ({"max_batch": 0}, "min"),
        ({"workspace_gb": 0}, "workspace"),
        ({"precision": "fp8"}, "precision"),
        ({"precision": "int8"}, "calibration"),
    ],
)
def test_option_validation(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        trt_target.Options(**kw)


def test_profile_shapes():
    o = trt_target.Options(min_batch=1, opt_batch=4, max_batch=16)
    assert trt_target.profile_shapes(o, (3, 32, 32)) == ((1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))


def _ops(path):
    import onnx

    m = onnx.load(str(path))
    return m, {n.op_type for n in m.graph.node}


@pytest.mark.parametrize("precision,major", [("fp32", 10), ("fp16", 10), ("fp16", 11), ("int8", 11)])
def test_prepare_onnx(tmp_path, tiny_ckpt, precision, major):
    import onnx

    from vitc.export.stage import calibration_images
    from vitc.models import load_checkpoint_model

    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed: pip install 'vitc[onnx]'")
    model, meta = load_checkpoint_model(tiny_ckpt)
    calib = calibration_images("digits", meta["preprocess"], 32) if precision == "int8" else None
    o = trt_target.Options(precision=precision, calibration=calib)
    path = trt_target.prepare_onnx(model, torch.zeros(2, 3, 32, 32), tmp_path, o, major)
    m, ops = _ops(path)
    f16 = onnx.TensorProto.FLOAT16
    weights_fp16 = any(t.data_type == f16 for t in m.graph.initializer)
    io_fp32 = m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert io_fp32
    # TensorRT 11 has no FP16 flag: the graph itself must be fp16; on 10 the builder flag does it
    assert weights_fp16 == (precision == "fp16" and major >= 11)
    assert ("QuantizeLinear" in ops and "DequantizeLinear" in ops) == (precision == "int8")


def test_parser_errors_are_printed_verbatim():
    class Parser:  # the two members of trt.OnnxParser that parser_errors reads
        num_errors = 2

        def get_error(self, i):
            return ["In node 3 (Gelu): UNSUPPORTED_NODE", "In node 7: INVALID_GRAPH"][i]

    assert trt_target.parser_errors(Parser()) == "In node 3 (Gelu): UNSUPPORTED_NODE\nIn node 7: INVALID_GRAPH"
