"""Datasets (built-in digits and Fashion-MNIST, torchvision:NAME, ImageFolder) and the timm transforms a model carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import AugConfig
from .errors import DataError
from .tv_data import FASHION, TORCHVISION

DIGITS = "digits"
DIGITS_SPLIT_SEED = 0  # fixed: the val split never changes with the training seed
DIGITS_VAL_FRACTION = 0.2
# Fashion-MNIST: a fixed, stratified twelfth of the train images (5,000 of 60k) held out from training; the best
# epoch is chosen on it, so the 10k test images (vitc's val split) decide nothing and only report
FASHION_HOLDOUT_SHARE = 12
FASHION_HOLDOUT_SEED = 0
IMG_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: 16-bit and float grayscale are rescaled, alpha is dropped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Every image file vitc reads (datasets, calibration, predict) comes through here: upright as its
    EXIF orientation says (a phone photo stores the sensor's pixels plus a rotation tag), then RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(ImageOps.exif_transpose(im))
    except FileNotFoundError as e:
        raise DataError(f"image {path} does not exist") from e
    except Image.DecompressionBombError as e:
        raise DataError(
            f"{path} claims a size over Pillow's decompression-bomb limit ({e})", "remove or replace the file"
        ) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(
            f"{path} is not a readable image ({type(e).__name__}: {e})", "remove or replace the file"
        ) from e


@dataclass
class Split:
    items: list  # PIL images (digits) or file paths (ImageFolder)
    targets: list[int]


@dataclass
class DataSource:
    name: str
    classes: list[str]
    train: Split
    val: Split
    provenance: dict
    holdout: Split | None = None  # held out of train for choices made on data (best epoch); None: they use val


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, split: Split, transform: Callable | None):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.targets)

    def __getitem__(self, i: int):
        item = self.split.items[i]
        img = item if isinstance(item, Image.Image) else load_image(item)
        return (self.transform(img) if self.transform else img), self.split.targets[i]


def _digits(img_size: int) -> DataSource:
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()  # ships inside scikit-learn: no network
    imgs = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    idx = np.arange(len(imgs))
    tr, va = train_test_split(idx, test_size=DIGITS_VAL_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=d.target)

    def make(ids) -> Split:
        # upsample the 8x8 digits once to the model's input size, 3 channels
        pil = [Image.fromarray(imgs[i]).resize((img_size, img_size), Image.BICUBIC).convert("RGB") for i in ids]
        return Split(pil, [int(d.target[i]) for i in ids])

    prov = {
        "name": DIGITS,
        "source": "sklearn.datasets.load_digits",
        "sklearn": sklearn.__version__,
        "split_seed": DIGITS_SPLIT_SEED,
        "val_fraction": DIGITS_VAL_FRACTION,
        "n_train": len(tr),
        "n_val": len(va),
        "sha256": hashlib.sha256(imgs.tobytes() + d.target.astype(np.int64).tobytes()).hexdigest(),
    }
    return DataSource(DIGITS, [str(c) for c in d.target_names], make(tr), make(va), prov)


def _scan(split_dir: Path, classes: list[str] | None) -> tuple[list[str], Split]:
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise DataError(f"{split_dir} has no class folders", "lay the data out as SPLIT/CLASS/image.png")
    if classes is not None and found != classes:
        raise DataError(
            f"{split_dir} has classes {found} but train/ has {classes}",
            "train/ and val/ must hold the same class folders",
        )
    items, targets = [], []
    for ci, c in enumerate(found):
        files = sorted(p for p in (split_dir / c).rglob("*") if p.suffix.lower() in IMG_EXTS and p.is_file())
        if not files:
            raise DataError(
                f"class folder {split_dir / c} holds no images ({', '.join(sorted(IMG_EXTS))})",
                "add images or remove the folder",
            )
        items += files
        targets += [ci] * len(files)
    return found, Split(items, targets)


def _image_folder(root: Path) -> DataSource:
    if not root.exists():
        raise DataError(
            f"dataset path {root} does not exist", "pass --data digits or an ImageFolder dir with train/ and val/"
        )
    if not root.is_dir() or not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataError(
            f"{root} needs train/ and val/ subfolders (ImageFolder layout)",
            "lay the data out as ROOT/train/CLASS/*.png and ROOT/val/CLASS/*.png",
        )
    classes, train = _scan(root / "train", None)
    _, val = _scan(root / "val", classes)
    h = hashlib.sha256()
    for p in train.items + val.items:
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    prov = {
        "name": str(root.resolve()),
        "source": "ImageFolder",
        "n_train": len(train.targets),
        "n_val": len(val.targets),
        "listing_sha256": h.hexdigest(),
    }
    return DataSource(str(root), classes, train, val, prov)


BUILTIN = (DIGITS, FASHION)


def is_builtin(data: str) -> bool:
    """A dataset vitc reads by name (no path): digits, fashion-mnist, torchvision:NAME."""
    return data in BUILTIN or data.startswith(TORCHVISION)


def _hold_out(name: str, classes: list[str], x: list, y: np.ndarray, val: Split, prov: dict) -> DataSource:
    """Train minus a fixed, stratified twelfth (5,000 of Fashion-MNIST's 60k) held out for the choices made on
    data; vitc's val split (the dataset's test images) only reports."""
    from sklearn.model_selection import train_test_split

    n_hold = max(1, len(y) // FASHION_HOLDOUT_SHARE)
    # stratified when every class can give one image to each side (a torchvision dataset may have a class of one)
    strat = y if n_hold >= len(np.unique(y)) and np.bincount(y).min() >= 2 else None
    tr, ho = train_test_split(np.arange(len(y)), test_size=n_hold, random_state=FASHION_HOLDOUT_SEED, stratify=strat)
    prov = {
        **prov,
        "train_split": f"{len(tr)} of the {f'{len(y) // 1000}k' if len(y) % 1000 == 0 else len(y)} train images",
        "holdout_split": f"the other {len(ho)} ({'stratified, ' if strat is not None else ''}seed {FASHION_HOLDOUT_SEED}): "
        "best epoch chosen here",
        "n_train": len(tr),
        "n_holdout": len(ho),
    }

    def pick(ids) -> Split:
        return Split([x[i] for i in ids], [int(y[i]) for i in ids])

    return DataSource(name, classes, pick(tr), val, prov, pick(ho))


def _fashion() -> DataSource:
    """Fashion-MNIST through torchvision's reader (vitc/tv_data.py): 28x28 grayscale, kept at 28 px as RGB PIL
    images; the model's transform resizes them. Val: the 10k test images."""
    from .tv_data import fashion_arrays

    a = fashion_arrays()

    def pil(x) -> list:
        return [Image.fromarray(im).convert("RGB") for im in x]

    (x, y), (xv, yv) = a["train"], a["val"]
    return _hold_out(FASHION, a["classes"], pil(x), y, Split(pil(xv), [int(t) for t in yv]), a["provenance"])


def _torchvision(name: str) -> DataSource:
    """`torchvision:NAME` from the data root, by torchvision's own class; images as RGB PIL, labels as ints."""
    from .tv_data import torchvision_splits

    s = torchvision_splits(name[len(TORCHVISION) :])

    def read(ds) -> tuple[list, list[int]]:
        pairs = [ds[i] for i in range(len(ds))]
        return [to_rgb(im) for im, _ in pairs], [int(t) for _, t in pairs]

    x, y = read(s["train"])
    xv, yv = read(s["val"])
    h = hashlib.sha256()
    for im, t in zip(x + xv, y + yv):
        h.update(np.asarray(im).tobytes() + bytes([t % 256]))
    s["provenance"]["sha256"] = h.hexdigest()
    classes = s["classes"] or [str(c) for c in sorted(set(y))]
    return _hold_out(s["provenance"]["name"], classes, x, np.asarray(y), Split(xv, yv), s["provenance"])


def _check(src: DataSource) -> DataSource:
    """Data that cannot train a classifier: one sentence before anything is trained or written."""
    if len(src.classes) < 2:
        raise DataError(
            f"{src.name} has {len(src.classes)} class ({', '.join(src.classes)}): a classifier needs two or more",
            "add a folder per class under train/ and val/",
        )
    for split, s in (("train", src.train), ("val", src.val)):
        if not s.targets:
            raise DataError(f"{src.name}: the {split} split is empty", f"add images to its {split} split")
    return src


def load_source(data: str, img_size: int) -> DataSource:
    if data == DIGITS:
        return _check(_digits(img_size))
    if data == FASHION:
        return _check(_fashion())
    if data.startswith(TORCHVISION):
        return _check(_torchvision(data))
    return _check(_image_folder(Path(data)))


def build_transform(pre: dict, train: bool, aug: AugConfig | None = None) -> Callable:
    """timm's transform factory with the model's preprocessing (mean/std/interp/crop)."""
    from timm.data import create_transform

    size = tuple(pre["input_size"])
    common: dict[str, Any] = dict(
        input_size=size, interpolation=pre["interpolation"], mean=tuple(pre["mean"]), std=tuple(pre["std"])
    )
    if train and aug is not None and aug.preset != "none":
        return create_transform(
            is_training=True,
            scale=aug.scale,
            hflip=aug.hflip,
            vflip=0.0,
            auto_augment=aug.auto_augment,
            re_prob=aug.reprob,
            re_mode="pixel",
            re_count=1,
            color_jitter=None,
            **common,
        )
    return create_transform(
        is_training=False, crop_pct=pre["crop_pct"], crop_mode=pre.get("crop_mode", "center"), **common
    )


def eval_tensors(split: Split, pre: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole eval split, transformed once (the transform is deterministic)."""
    from .progress import track

    ds = ImageDataset(split, build_transform(pre, train=False))
    xs = [ds[i][0] for i in track(range(len(ds)), "prepare images", len(ds), unit="image")]
    return torch.stack(xs), torch.tensor(split.targets)


def pixel_transform(pre: dict) -> Callable:
    """The eval transform up to the tensor: resize and crop on the PIL image, as uint8 pixels (H, W, 3). What an
    artifact with in-graph pre-processing takes; its graph casts, normalizes and transposes as the rest would."""
    from torchvision.transforms import Compose

    steps = build_transform(pre, train=False).transforms
    cut = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
    pil = Compose(steps[:cut])
    return lambda img: np.asarray(pil(img), dtype=np.uint8)


def eval_pixels(split: Split, pre: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole eval split as uint8 pixels (N, H, W, 3): the input of an in-graph-pre-processing artifact."""
    from .progress import track

    tf = pixel_transform(pre)
    ds = ImageDataset(split, None)
    xs = [tf(ds[i][0]) for i in track(range(len(ds)), "prepare pixels", len(ds), unit="image")]
    return torch.from_numpy(np.stack(xs)), torch.tensor(split.targets)


def mixup_fn(aug: AugConfig, num_classes: int):
    if not aug.mixing:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=aug.mixup, cutmix_alpha=aug.cutmix, label_smoothing=aug.smoothing, num_classes=num_classes)
