import pickle

import pytest
import torch

from vitc import checkpoint as ckpt
from vitc.errors import CheckpointError
from vitc.models import load_checkpoint_model


def test_roundtrip_rebuilds_from_dir_alone(tmp_path, tiny_student):
    from vitc.models import ModelSpec

    spec = ModelSpec(
        "deit_tiny_distilled_patch16_224", {"num_classes": 10, "img_size": 32, "patch_size": 8, "depth": 2}
    )
    ckpt.save_checkpoint(tmp_path / "c", tiny_student, {"model": spec.to_json(), "classes": list("0123456789")})
    m, meta = load_checkpoint_model(tmp_path / "c")
    assert meta["weights_sha256"] == ckpt.sha256_file(tmp_path / "c" / ckpt.WEIGHTS)
    x = torch.randn(2, 3, 32, 32)
    tiny_student.eval()
    assert torch.equal(m(x), tiny_student(x))


def test_written_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        ckpt.write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "w.safetensors"
    ckpt.save_weights(target, {"a": torch.ones(2)})
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with ckpt.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def test_shape_mismatch_names_tensor_and_shapes(tiny_student):
    state = {k: v.clone() for k, v in tiny_student.state_dict().items()}
    state["head.weight"] = torch.zeros(5, 192)
    with pytest.raises(CheckpointError) as e:
        ckpt.load_into(tiny_student, state, "x.safetensors")
    assert "head.weight" in e.value.message and "(5, 192)" in e.value.message and "(10, 192)" in e.value.message


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / ckpt.TRAIN_STATE
    with open(bad, "wb") as f:
        pickle.dump({"epoch": Payload(str(marker))}, f)
    torch.save({"x": Payload(str(marker))}, tmp_path / "b.pt")
    for p in (bad, tmp_path / "b.pt"):
        with pytest.raises(CheckpointError):
            ckpt.load_train_state(p)
    assert not marker.exists()


def test_weights_must_be_safetensors(tmp_path):
    p = tmp_path / "w.pt"
    torch.save({"a": torch.ones(1)}, p)
    with pytest.raises(CheckpointError, match="never unpickles"):
        ckpt.load_weights(p)
