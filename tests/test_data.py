from collections import Counter

import numpy as np
import pytest
import torch

from vitc.config import AugConfig
from vitc.data import build_transform, eval_tensors, load_source
from vitc.errors import DataError

PRE = {
    "input_size": [3, 32, 32],
    "interpolation": "bicubic",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "crop_pct": 1.0,
    "crop_mode": "center",
}


def test_digits_split_is_fixed_and_stratified():
    a, b = load_source("digits", 32), load_source("digits", 16)
    assert len(a.train.targets) + len(a.val.targets) == 1797 and len(a.val.targets) == 360
    assert a.val.targets == b.val.targets and a.provenance["sha256"] == b.provenance["sha256"]
    val, total = Counter(a.val.targets), Counter(a.val.targets + a.train.targets)
    assert len(val) == 10 and all(abs(val[c] - 0.2 * total[c]) <= 1 for c in total)  # stratified
    img = a.train.items[0]
    assert img.size == (32, 32) and img.mode == "RGB"


def test_transforms_are_timm_and_keep_shape():
    src = load_source("digits", 32)
    X, Y = eval_tensors(src.val, PRE)
    assert X.shape == (360, 3, 32, 32) and Y.shape == (360,)
    # normalised with the model's mean/std: a black digits background maps to -mean/std
    assert X[0, 0, 0, 0].item() == pytest.approx(-0.485 / 0.229, abs=0.05)
    t = build_transform(PRE, train=True, aug=AugConfig("deit"))
    assert "RandAugment" in repr(t) and "RandomErasing" in repr(t)
    assert t(src.train.items[0]).shape == (3, 32, 32)


def test_image_folder_mixed_modes(image_folder):
    src = load_source(str(image_folder), 32)
    assert src.classes == ["digit0", "digit1", "digit2"]
    X, _ = eval_tensors(src.val, PRE)
    assert X.shape[1:] == (3, 32, 32) and torch.isfinite(X).all()


def test_16bit_png_keeps_its_contrast(image_folder):
    from vitc.data import load_image

    p16 = next(p for p in image_folder.rglob("*.png") if int(p.stem) % 5 == 2)  # the I;16 ones
    img = load_image(p16)
    lo, hi = img.convert("L").getextrema()
    assert img.mode == "RGB" and hi > 200 and lo < 20


def test_image_folder_errors(tmp_path, image_folder):
    import shutil

    image_folder = shutil.copytree(image_folder, tmp_path / "copy")
    with pytest.raises(DataError, match="does not exist"):
        load_source(str(tmp_path / "nope"), 32)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="train/ and val/"):
        load_source(str(tmp_path / "flat"), 32)
    (image_folder / "train" / "empty").mkdir()
    (image_folder / "val" / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_source(str(image_folder), 32)


@pytest.mark.parametrize("preset", ["digits", "deit"])
def test_augmentation_presets_survive_many_draws(preset):
    """DeiT's RandAugment (m9, mstd0.5, inc1) reaches posterize-to-0-bits in ~2% of draws;
    with an incompatible Pillow this crashed training mid-epoch."""
    src = load_source("digits", 32)
    t = build_transform(PRE, train=True, aug=AugConfig(preset))
    torch.manual_seed(0)
    for i in range(600):
        assert t(src.train.items[i % 50]).shape == (3, 32, 32)


def test_exif_orientation_is_applied(tmp_path, tiny_ckpt):
    """A phone photo stores the sensor's pixels plus an Orientation tag; Orientation=6 means 'rotate
    90 degrees clockwise to display'. vitc reads it upright, so it predicts as the upright image does."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from vitc.data import load_image
    from vitc.inspect import predict

    a = (load_digits().images[7] * (255 / 16)).astype(np.uint8)  # a 7: not symmetric
    upright = Image.fromarray(np.kron(a, np.ones((6, 4), np.uint8))).convert("RGB")  # 48 high, 32 wide
    stored = upright.rotate(90, expand=True)  # what the sensor wrote: 32 high, 48 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    up, rot = tmp_path / "upright.jpg", tmp_path / "phone.jpg"
    upright.save(up, quality=95)
    stored.save(rot, quality=95, exif=exif)
    assert Image.open(rot).size == (48, 32)  # on disk it lies on its side
    got = load_image(rot)
    assert got.size == (32, 48)
    assert np.abs(np.asarray(got, np.float32) - np.asarray(load_image(up), np.float32)).mean() < 4.0
    p_up, p_rot = predict(tiny_ckpt, [up, rot], topk=3)
    assert [t["label"] for t in p_up["top"]] == [t["label"] for t in p_rot["top"]]
    assert abs(p_up["top"][0]["prob"] - p_rot["top"][0]["prob"]) < 0.05
