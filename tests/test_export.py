"""Every registered target: export a tiny real model -> load back -> compare with PyTorch on real
digits images; predict on a PNG. Skips only with the target's own check() reason."""

import numpy as np
import pytest
import torch

from vitc import export
from vitc.errors import ConfigError
from vitc.export.stage import export_checkpoint
from vitc.manifest import Manifest

# target -> precisions to test here. A registered target missing from this table fails
# test_every_target_has_a_test; tensorrt is tested without a GPU in test_tensorrt.py.
CASES = {
    "onnx": ["fp32", "fp16", "int8"],
    "openvino": ["fp32", "fp16", "int8"],
    "torchscript-lite": ["fp32", "int8"],
    "executorch": ["fp32", "int8"],
    "tensorrt": ["fp32", "fp16", "int8"],
}


def test_every_target_has_a_test():
    assert set(export.names()) == set(CASES)


def test_registry_rejects_duplicates_and_suggests():
    with pytest.raises(ValueError, match="twice"):
        export.register(export.get("onnx"))
    with pytest.raises(ConfigError) as e:
        export.get("onxx")
    assert "'onnx'" in e.value.hint and "openvino" in e.value.message


@pytest.mark.parametrize("target,precision", [(t, p) for t, ps in CASES.items() for p in ps])
def test_export_load_compare(tmp_path, tiny_ckpt, digit_png, target, precision):
    why = export.get(target).check()
    if why:
        pytest.skip(why)
    m = export_checkpoint(tiny_ckpt, target, precision, tmp_path, calib="digits", calib_size=32, threads=1)
    v = m["validation"]
    assert v["n"] == 360 and m["size_bytes"] > 0
    if precision == "fp32":
        assert v["max_abs_diff"] < 1e-3 and v["top1_agreement"] >= 0.999 and m["status"] == "ok"
    elif precision == "fp16":
        assert v["max_abs_diff"] < 5e-2 and v["top1_agreement"] >= 0.98
    else:  # int8: close to, but not equal to, fp32
        assert 0 < v["max_abs_diff"] and v["cosine_min"] > 0.9 and v["top1_agreement"] >= 0.9
    # every target exported the head-tokens-only graph, and the validation above is against the full model
    g = m["graph"]
    assert g["head_tokens_only"] and g["tokens_kept"] == 2 and g["gflops_exported"] < g["gflops_model"]
    path = tmp_path / m["artifact"]
    assert Manifest.read(path).source["weights_sha256"] == m["source"]["weights_sha256"]
    # predict on a PNG agrees with PyTorch run independently on the same file
    from vitc.data import build_transform, load_image
    from vitc.inspect import predict
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    x = build_transform(meta["preprocess"], train=False)(load_image(digit_png))[None]
    with torch.no_grad():
        p_ref = torch.softmax(model(x), 1)[0].numpy()
    r = predict(path, [digit_png], topk=3, threads=1)[0]["top"]
    assert len(r) == 3 and r[0]["prob"] >= r[1]["prob"] >= r[2]["prob"]
    got = np.array([t["prob"] for t in r])
    ref = p_ref[[meta["classes"].index(t["label"]) for t in r]]
    assert np.allclose(got, ref, atol=1e-4 if precision == "fp32" else 0.1)


def test_onnx_metadata_and_dynamic_batch(tmp_path, tiny_ckpt):
    if export.get("onnx").check():
        pytest.skip(export.get("onnx").check())
    import onnx

    m = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path, threads=1)
    p = tmp_path / m["artifact"]
    model = onnx.load(str(p))
    meta = {x.key: x.value for x in model.metadata_props}
    assert '"0"' in meta["vitc.classes"] and "mean" in meta["vitc.preprocess"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) == 20
    ops = {n.op_type for n in model.graph.node}
    assert "Gelu" in ops and "Erf" not in ops  # opset 20's single GELU op, not the opset-18 spelling
    fn = export.get("onnx").load(p, 1)
    assert fn(np.zeros((5, 3, 32, 32), np.float32)).shape == (5, 10)


def test_openvino_ir_carries_its_runtime_precision(tmp_path, tiny_ckpt):
    """fp32 IRs run in f32 (not the plugin's bf16 default); int8 IRs in the plugin's default; the
    setting lives in the IR, so vitc's loader and the benchmark_app cross-check agree on it."""
    if export.get("openvino").check():
        pytest.skip(export.get("openvino").check())
    import openvino as ov

    from vitc.export.openvino import runtime_precision

    got = {}
    for precision in ("fp32", "int8"):
        m = export_checkpoint(tiny_ckpt, "openvino", precision, tmp_path, calib="digits", calib_size=16, threads=1)
        got[precision] = runtime_precision(ov.Core().read_model(str(tmp_path / m["artifact"])))
        assert m["options"]["inference_precision"] == got[precision]
    assert got == {"fp32": "f32", "int8": "default"}
    with pytest.raises(ConfigError, match="inference_precision"):
        export.get("openvino").Options(inference_precision="fp64")


def test_openvino_loader_reuses_its_input_buffer_without_mixing_calls(tmp_path, tiny_ckpt):
    """The loader writes each batch into the compiled request's own input tensor (cheaper than handing
    infer() a new one every call): consecutive calls with the same shape must still each compute their
    own input, and an earlier result must not change when the buffer is reused."""
    if export.get("openvino").check():
        pytest.skip(export.get("openvino").check())
    import openvino as ov

    m = export_checkpoint(tiny_ckpt, "openvino", "fp32", tmp_path, calib="digits", calib_size=16, threads=1)
    xml = tmp_path / m["artifact"]
    run = export.get("openvino").load(xml, 1)
    a, b = (np.random.default_rng(i).standard_normal((4, 3, 32, 32)).astype(np.float32) for i in (1, 2))
    ya = run(a)
    ya_kept = ya.copy()
    yb = run(b)
    ref = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(ya_kept, ref(a)[0], atol=1e-4)
    np.testing.assert_allclose(yb, ref(b)[0], atol=1e-4)
    np.testing.assert_array_equal(ya, ya_kept)  # the first result is not a view of the reused buffer
    assert np.abs(ya - yb).max() > 1e-3  # two inputs, two answers


def test_nncf_auto_keeps_the_defaults_only_when_they_agree_with_fp32(tmp_path, tiny_ckpt):
    """auto tries NNCF's defaults and falls back to TRANSFORMER when the defaults' top-1 agreement
    on the calibration images is under the bar; the IR and the manifest say which one ran."""
    if export.get("openvino").check():
        pytest.skip(export.get("openvino").check())
    import openvino as ov

    from vitc.compress.quantize import nncf_int8
    from vitc.export.openvino import convert
    from vitc.export.stage import calibration_images
    from vitc.models import load_checkpoint_model

    model, meta = load_checkpoint_model(tiny_ckpt)
    calib = calibration_images("digits", meta["preprocess"], 32)
    fq = {}
    for bar, want in ((0.0, "defaults"), (1.01, "transformer")):  # 1.01: no model can reach it
        q, info = nncf_int8(convert(model, calib[:2]), calib, "auto", min_agreement=bar)
        assert info["scheme"] == want and info["tried"] == "defaults" and 0 <= info["calibration_agreement"] <= 1
        fq[want] = sum(op.get_type_name() == "FakeQuantize" for op in q.get_ordered_ops())
    assert fq["defaults"] > fq["transformer"] > 0  # the defaults quantize the residual adds too
    m = export_checkpoint(
        tiny_ckpt, "openvino", "int8", tmp_path, calib="digits", calib_size=32, threads=1, opts={"nncf": "transformer"}
    )
    assert m["options"]["nncf_result"]["scheme"] == "transformer"
    assert m["options"]["nncf_result"]["overflow_fix"] == "enable"  # the portable default (vitc/isa.py)
    ir = ov.Core().read_model(str(tmp_path / m["artifact"]))
    assert ir.get_rt_info(["vitc", "nncf"]).astype(str) == "transformer"
    with pytest.raises(ConfigError, match="nncf"):
        export.get("openvino").Options(nncf="fast")


def test_onnx_int8_mode_auto_is_dynamic_for_vits_and_static_on_request(tmp_path, tiny_ckpt):
    if export.get("onnx").check():
        pytest.skip(export.get("onnx").check())
    import onnx

    ops = {}
    for mode in ("auto", "static"):
        m = export_checkpoint(
            tiny_ckpt,
            "onnx",
            "int8",
            tmp_path / mode,
            calib="digits",
            calib_size=16,
            threads=1,
            opts={"int8_mode": mode},
        )
        ops[mode] = {n.op_type for n in onnx.load(str(tmp_path / mode / m["artifact"])).graph.node}
        assert m["status"] == "ok" and m["options"]["int8_mode"] == ("dynamic" if mode == "auto" else "static")
        assert (m["calibration"] is None) == (mode == "auto")  # dynamic int8 uses no calibration images
    assert "MatMulInteger" in ops["auto"] and "QuantizeLinear" not in ops["auto"]
    assert "QuantizeLinear" in ops["static"] and "MatMulInteger" not in ops["static"]
    with pytest.raises(ConfigError, match="int8_mode"):
        export.get("onnx").Options(int8_mode="fast")


def test_onnx_external_data_outside_folder_is_refused(tmp_path, tiny_ckpt):
    if export.get("onnx").check():
        pytest.skip(export.get("onnx").check())
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    from vitc.errors import CheckpointError

    m = export_checkpoint(tiny_ckpt, "onnx", "fp32", tmp_path / "a", threads=1)
    model = onnx.load(str(tmp_path / "a" / m["artifact"]))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="../../secret.bin", size_threshold=0)
    evil = tmp_path / "b" / "c" / "evil.onnx"
    evil.parent.mkdir(parents=True)
    with open(evil, "wb") as f:
        f.write(model.SerializeToString())
    with pytest.raises(CheckpointError, match="outside the model folder"):
        export.get("onnx").load(evil, 1)


def test_calibration_smaller_than_batch_is_refused():
    from vitc.compress.quantize import check_calibration

    with pytest.raises(ConfigError, match="fewer than the calibration batch"):
        check_calibration(torch.zeros(4, 3, 8, 8), 16)


def test_executorch_exports_explicit_attention_and_restores_the_model():
    """XNNPACK delegates explicit attention but leaves most of SDPA's decomposition outside (results/executorch-ab):
    the export traces the explicit form, and the caller's model keeps its own."""
    from vitc.export.executorch import _explicit_attention
    from vitc.export.head_tokens import rewrite
    from vitc.models import create_model

    model, _ = create_model("deit_tiny", 3, 16, 8)
    model = rewrite(model.eval())[0]  # as the export stage hands it over: the last block for the head's tokens only
    flags = [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]
    assert flags and all(flags)  # timm's default here: fused (SDPA)
    x = torch.randn(1, 3, 16, 16)

    def ops(m):
        return {str(n.target) for n in torch.export.export(m.eval(), (x,)).graph.nodes if n.op == "call_function"}

    assert any("scaled_dot_product" in o for o in ops(model))
    with _explicit_attention(model) as m:
        inside = ops(m)
    assert not any("scaled_dot_product" in o for o in inside) and any("softmax" in o for o in inside)
    assert [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")] == flags
    with torch.no_grad(), _explicit_attention(model) as m:
        explicit = m(x)
    with torch.no_grad():
        assert torch.allclose(model(x), explicit, atol=1e-5)  # both forms compute the same function


def test_onnx_runtime_threads_follow_the_cpu_affinity(tmp_path, monkeypatch):
    """Left at 0, ONNX Runtime starts a thread per physical core and pins them, ignoring taskset: vitc always gives
    it the process's usable cores (or the --threads asked for)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    import onnx
    from onnx import TensorProto, helper

    from vitc.export import onnx as onnx_target

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    monkeypatch.setattr(onnx_target, "usable_cores", lambda: 1)
    run = onnx_target.load(path)
    assert run.session.get_session_options().intra_op_num_threads == 1
    assert np.array_equal(run(np.array([[-1, 2, -3, 4]], np.float32)), [[0, 2, 0, 4]])
    assert onnx_target.load(path, threads=3).session.get_session_options().intra_op_num_threads == 3


def test_manifests_are_written_and_read_typed(tmp_path):
    """One reader (vitc.manifest.Manifest.read, torch-free) and one typed writer: a key the type does not know is a
    bug in the writer, not something silently dropped; a file without the keys a runner needs is refused."""
    import json

    from vitc.errors import CheckpointError
    from vitc.export.stage import _write_manifest

    m = {
        "artifact": "a.onnx",
        "target": "onnx",
        "precision": "fp32",
        "status": "ok",
        "classes": ["a", "b"],
        "preprocess": {"input_size": [3, 8, 8], "mean": [0.5] * 3, "std": [0.5] * 3},
        "source": {"checkpoint": "c"},
        "input": {"preprocess": "in-graph"},
        "validation": {"top1_agreement": 1.0},
    }
    _write_manifest(tmp_path / "a.onnx", m)
    back = Manifest.read(tmp_path / "a.onnx")
    assert back.in_graph and back.preprocess.size == 8 and back.validation["top1_agreement"] == 1.0
    assert back.source_checkpoint == "c" and back.output == "logits"
    with pytest.raises(TypeError, match="typo"):
        _write_manifest(tmp_path / "b.onnx", {**m, "typo": 1})
    (tmp_path / "c.onnx.json").write_text(json.dumps({k: v for k, v in m.items() if k != "classes"}))
    with pytest.raises(CheckpointError, match="is not a vitc manifest"):
        Manifest.read(tmp_path / "c.onnx")
