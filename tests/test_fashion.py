"""--data fashion-mnist through torchvision's reader, on tiny IDX files the tests write themselves (no package, no
network), and the bad-data sentences: missing, partial, corrupt, mismatched files; one class; an empty split."""

import gzip
import json
import struct

import numpy as np
import pytest

from vitc import tv_data
from vitc.data import FASHION, load_source
from vitc.errors import DataError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _idx(images: np.ndarray | None = None, labels: np.ndarray | None = None, magic: int | None = None) -> bytes:
    """The IDX format by its spec (big-endian magic: 0x08 = ubyte, then the number of dims; then each dim)."""
    a = images if images is not None else labels
    head = struct.pack(">I", magic if magic is not None else (0x0800 | a.ndim)) + b"".join(
        struct.pack(">I", d) for d in a.shape
    )
    return head + a.astype(np.uint8).tobytes()


def _write(d, n_train=20, n_test=10, gz=True, skip=(), edit=None):
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        files[f"{split}-images-idx3-ubyte"] = _idx(images=rng.integers(0, 256, (n, 28, 28)))
        files[f"{split}-labels-idx1-ubyte"] = _idx(labels=np.arange(n) % 10)
    if edit:
        edit(files)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if name in skip:
            continue
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return d


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No Debian package, no network, a private cache: only what a test writes is found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VITC_DATA_ROOT", raising=False)
    monkeypatch.setattr(tv_data, "DEBIAN_DIR", tmp_path / "no-debian-package")
    import vitc.models

    monkeypatch.setattr(vitc.models, "_hub_reachable", lambda host="", timeout=0: False)


def test_a_folder_of_gz_files_reads_as_train_holdout_and_10k_val(tmp_path, monkeypatch):
    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", n_train=120)))
    src = load_source(FASHION, 32)
    assert src.classes == CLASSES  # torchvision's class names
    # train file -> train minus a stratified twelfth held out (5,000 of 60k), t10k -> val
    assert len(src.train.targets) == 110 and len(src.holdout.targets) == 10 and len(src.val.targets) == 10
    assert sorted(src.holdout.targets) == list(range(10))  # one per class: stratified
    assert sorted(src.train.targets + src.holdout.targets) == sorted(np.arange(120) % 10)
    assert src.train.items[0].size == (28, 28) and src.train.items[0].mode == "RGB"
    assert src.provenance["n_val"] == 10 and src.provenance["n_holdout"] == 10
    assert "FashionMNIST" in src.provenance["source"]
    assert load_source(FASHION, 32).holdout.targets == src.holdout.targets  # the same split every time


def test_torchvisions_own_layout_is_read_in_place(tmp_path, monkeypatch):
    _write(tmp_path / "root" / "FashionMNIST" / "raw", gz=False)
    monkeypatch.setenv("VITC_DATA_ROOT", str(tmp_path / "root"))
    assert len(load_source(FASHION, 28).val.targets) == 10
    assert not (tmp_path / "cache").exists()  # nothing extracted: torchvision reads the folder itself


def test_the_debian_package_folder_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_data, "DEBIAN_DIR", _write(tmp_path / "usr-share"))
    src = load_source(FASHION, 28)
    assert len(src.train.targets) + len(src.holdout.targets) == 20


def test_no_files_and_no_network_names_the_ways_to_get_them():
    with pytest.raises(DataError) as e:
        load_source(FASHION, 28)
    assert "not on this machine" in e.value.message and "apt-get install dataset-fashion-mnist" in e.value.hint


def test_a_root_with_some_of_the_files_names_the_missing_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", skip=("t10k-labels-idx1-ubyte",))))
    with pytest.raises(DataError, match="only 3 of Fashion-MNIST's four files; missing: t10k-labels-idx1-ubyte"):
        load_source(FASHION, 28)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda f: f.update({"train-images-idx3-ubyte": _idx(images=np.zeros((20, 28, 28)), magic=0x0F03)}),
            "not valid IDX",
        ),
        (lambda f: f.update({"t10k-images-idx3-ubyte": f["t10k-images-idx3-ubyte"][:-100]}), "not valid IDX"),
        (lambda f: f.update({"train-labels-idx1-ubyte": _idx(labels=np.arange(19) % 10)}), "20 images but 19 labels"),
    ],
    ids=["wrong magic", "truncated", "counts differ"],
)
def test_corrupt_files_get_one_sentence(tmp_path, monkeypatch, edit, message):
    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", edit=edit)))
    with pytest.raises(DataError, match=message):
        load_source(FASHION, 28)


def test_one_class_or_an_empty_split_stops_before_training(tmp_path, image_folder, monkeypatch, capsys):
    import shutil

    from vitc.cli import main

    one = tmp_path / "one"
    for split in ("train", "val"):
        shutil.copytree(image_folder / split / "digit0", one / split / "digit0")
    with pytest.raises(DataError, match="a classifier needs two or more"):
        load_source(str(one), 32)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["teacher", "--data", str(one), "--epochs", "1", "--out", "t"])
    assert e.value.code == 2 and "a classifier needs two or more" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()  # nothing written


def test_an_empty_split_gets_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", n_test=0)))
    with pytest.raises(DataError, match="the test files are not valid IDX files") as e:
        load_source(FASHION, 28)  # torchvision's reader refuses a file with no images after its header
    assert "replace them" in e.value.hint


def test_the_best_epoch_is_chosen_on_the_holdout_not_on_val(tmp_path, monkeypatch):
    from compress.teacher import run_teacher
    from vitc.config import TeacherConfig, from_dict

    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", n_train=120, n_test=20)))
    cfg = from_dict(
        TeacherConfig,
        {
            "data": FASHION,
            "model": {"name": "resnet18", "img_size": 28},
            "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "warmup_epochs": 0, "aug": {"preset": "none"}},
        },
    )
    from compress import trainer

    # the real evaluator runs (both splits are measured), then its scores are replaced so that val peaks at epoch 1
    # and the held-out part at epoch 3: choosing on val would keep epoch 1
    real, scores = trainer.SplitEvaluator.__call__, iter([(90.0, 50.0), (80.0, 60.0), (70.0, 70.0)])

    def scripted(self, model):
        r = real(self, model)
        assert "holdout_top1" in r  # Fashion-MNIST has a held-out part
        r["top1"], r["holdout_top1"] = next(scores)
        return r

    monkeypatch.setattr(trainer.SplitEvaluator, "__call__", scripted)
    run_teacher(cfg, tmp_path / "t")
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert [r["holdout_top1"] for r in rows] == [50.0, 60.0, 70.0]
    best = json.loads((tmp_path / "t" / "best" / "vitc.json").read_text())["metrics"]
    assert best["epoch"] == 3 and best["top1"] == 70.0


def test_eval_every_records_held_out_points_against_images_seen(tmp_path, monkeypatch, capsys):
    from compress.teacher import run_teacher
    from vitc.config import TeacherConfig, from_dict

    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", n_train=120, n_test=20)))
    cfg = from_dict(
        TeacherConfig,
        {
            "data": FASHION,
            "model": {"name": "resnet18", "img_size": 28, "stem": "small"},
            "train": {"epochs": 2, "batch_size": 16, "warmup_epochs": 0, "eval_every": 0.34, "aug": {"preset": "none"}},
        },
    )
    run_teacher(cfg, tmp_path / "t")
    rows = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    # 110 train images / 16 = 6 steps an epoch: points after steps 2 and 4 (0.34 and 0.68 of it), then the epoch end
    assert [[p["images"] for p in r["curve"]] for r in rows] == [[32, 64], [128, 160]]
    assert [r["images"] for r in rows] == [96, 192]
    assert all(0 <= p["holdout_top1"] <= 100 for r in rows for p in r["curve"])
    meta = json.loads((tmp_path / "t" / "vitc.json").read_text())
    assert meta["model"]["stem"] == "small"
    # the resolved recipe (issue 35): recorded in vitc.json and said when training starts
    assert (
        meta["recipe"]["batch_size"] == 16 and meta["recipe"]["lr_applied"] == 2e-3 and meta["recipe"]["n_train"] == 110
    )
    assert "recipe: 2 epochs, batch 16, lr 0.002 (cosine to 1e-05, warm-up 0 epochs)" in capsys.readouterr().out


def test_prune_retrains_a_fashion_student_with_the_fashion_preset_and_none_needs_no_teacher(tmp_path, monkeypatch):
    # issue 35: the augmentation follows the data the student records, not digits; --distillation none has no teacher
    import torch

    from compress.prune import run_prune
    from vitc import checkpoint as ckpt
    from vitc.config import PruneConfig
    from vitc.models import create_model, data_config

    monkeypatch.setenv("VITC_DATA_ROOT", str(_write(tmp_path / "fm", n_train=120, n_test=20)))
    torch.manual_seed(0)
    m, spec = create_model("deit_tiny", 10, 28, 7, depth=2)
    ckpt.save_checkpoint(
        tmp_path / "student",
        m.eval(),
        {
            "stage": "distill",
            "model": spec.to_json(),
            "classes": CLASSES,
            "preprocess": data_config(m, 28, 1.0),
            "config": {"data": FASHION},  # and no teacher recorded
            "metrics": {},
        },
    )
    cfg = PruneConfig(
        str(tmp_path / "student"),
        ratio=0.5,
        distillation="none",
        train={"epochs": 1, "batch_size": 16, "warmup_epochs": 0},
    )
    assert cfg.train.aug.preset is None  # not known until the checkpoint is read
    run_prune(cfg, tmp_path / "pruned")
    used = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert used["data"] == FASHION and used["train"]["aug"]["preset"] == "fashion"
    assert used["train"]["aug"]["hflip"] == 0.5 and used["teacher_checkpoint"] is None


def test_torchvision_datasets_on_disk_read_by_their_own_class(tmp_path, monkeypatch):
    # torchvision's MNIST reads the same four IDX files from ROOT/MNIST/raw
    _write(tmp_path / "root" / "MNIST" / "raw", n_train=24, gz=False)
    monkeypatch.setenv("VITC_DATA_ROOT", str(tmp_path / "root"))
    src = load_source("torchvision:MNIST", 28)
    assert src.classes[0].startswith("0") and len(src.classes) == 10
    assert len(src.train.targets) + len(src.holdout.targets) == 24 and len(src.val.targets) == 10
    assert src.train.items[0].mode == "RGB" and src.provenance["source"] == "torchvision.datasets.MNIST"


@pytest.mark.parametrize(
    "name, root, message",
    [
        ("torchvision:NoSuchSet", True, "torchvision has no dataset class 'NoSuchSet'"),
        ("torchvision:MNIST", False, "reads its files from the data root, and none is set"),
        ("torchvision:CIFAR10", True, "torchvision's CIFAR10 found no readable train files under"),
    ],
)
def test_torchvision_datasets_get_one_sentence(tmp_path, monkeypatch, name, root, message):
    if root:
        monkeypatch.setenv("VITC_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as e:
        load_source(name, 28)
    assert message in str(e.value)
