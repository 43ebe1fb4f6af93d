"""Fashion-MNIST (and the torchvision classification datasets a user has on disk), read by torchvision's own
dataset classes: vitc only finds the files, checks them and says what is wrong in one sentence.

Where `--data fashion-mnist` looks, in this order:
1. the data root: `--data-root` / `VITC_DATA_ROOT`, in torchvision's layout (ROOT/FashionMNIST/raw/...);
2. the data root as a folder holding the four .gz files;
3. Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist);
4. online only: torchvision's download into ~/.cache/vitc/data.

A folder of .gz files is extracted once (torchvision's extract_archive) into ~/.cache/vitc/data/<sha of the
files>/ in torchvision's layout, which its class then reads. The 60k train images are the train split, the 10k
test images vitc's val split.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .errors import DataError

FASHION = "fashion-mnist"
TORCHVISION = "torchvision:"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HOW = (
    "install Debian's package (apt-get install dataset-fashion-mnist), put the four .gz files in a folder and pass "
    "--data-root DIR (or set VITC_DATA_ROOT), or run once online so torchvision downloads them"
)


def data_root(root: str | Path | None = None) -> Path | None:
    r = root or os.environ.get("VITC_DATA_ROOT")
    return Path(r).expanduser() if r else None


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vitc" / "data"


def _raw_files(d: Path) -> dict[str, Path]:
    """The four files present in `d`, plain or .gz."""
    found = {}
    for name in RAW:
        for cand in (d / name, d / f"{name}.gz"):
            if cand.is_file():
                found[name] = cand
                break
    return found


def _layout_from(d: Path, found: dict[str, Path]) -> Path:
    """A root in torchvision's layout holding the four files, extracted into the cache when they are compressed."""
    from torchvision.datasets.utils import extract_archive

    if all(p.suffix != ".gz" for p in found.values()) and d.name == "raw" and d.parent.name == "FashionMNIST":
        return d.parent.parent
    h = hashlib.sha256()
    for name in RAW:
        st = found[name].stat()
        h.update(f"{found[name].resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    root = cache_dir() / f"fashion-mnist-{h.hexdigest()[:12]}"
    raw = root / "FashionMNIST" / "raw"
    if not all((raw / n).is_file() for n in RAW):
        # extracted beside, then renamed into place: an interrupted extraction never looks complete
        tmp = root / f".partial-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        raw.mkdir(parents=True, exist_ok=True)
        for name, p in found.items():
            if p.suffix == ".gz":
                extract_archive(str(p), str(tmp))
            else:
                (tmp / name).write_bytes(p.read_bytes())
            os.replace(tmp / name, raw / name)
        tmp.rmdir()
    return root


def find_fashion(root: str | Path | None = None) -> tuple[Path, str]:
    """-> (a root in torchvision's layout, where the files came from); one sentence when there are none."""
    r = data_root(root)
    places = []
    if r is not None:
        if not r.is_dir():
            raise DataError(f"data root {r} is not a folder", HOW)
        places += [r / "FashionMNIST" / "raw", r]
    places.append(DEBIAN_DIR)
    for d in places:
        found = _raw_files(d)
        if len(found) == len(RAW):
            return _layout_from(d, found), str(d)
        if found:
            missing = [n for n in RAW if n not in found]
            raise DataError(
                f"{d} holds only {len(found)} of Fashion-MNIST's four files; missing: {', '.join(missing)}", HOW
            )
    from .models import _hub_reachable

    if _hub_reachable("github.com"):  # torchvision's mirrors; tests and offline machines never get here
        from torchvision.datasets import FashionMNIST

        dest = cache_dir() / "torchvision"
        FashionMNIST(str(dest), train=True, download=True)
        FashionMNIST(str(dest), train=False, download=True)
        return dest, "torchvision download"
    where = f"{r} (the data root), " if r is not None else ""
    raise DataError(
        f"Fashion-MNIST is not on this machine: looked in {where}{DEBIAN_DIR}, and there is no network", HOW
    )


def _read(cls, root: Path, train: bool, what: str):
    try:
        ds = cls(str(root), train=train, download=False)
    except (AssertionError, RuntimeError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataError(
            f"{what}: the {'train' if train else 'test'} files are not valid IDX files (a wrong magic number, or truncated: "
            f"{msg})",
            "replace them: reinstall dataset-fashion-mnist or download them again",
        ) from None
    if len(ds.data) != len(ds.targets):
        raise DataError(
            f"{what}: the {'train' if train else 'test'} split has {len(ds.data)} images but {len(ds.targets)} labels",
            "the image and label files come from different downloads; replace both",
        )
    if len(ds.targets) == 0:
        raise DataError(f"{what}: the {'train' if train else 'test'} split is empty", "replace the files")
    return ds


def fashion_arrays(root: str | Path | None = None) -> dict:
    """-> {"train": (uint8 N x 28 x 28, int64 N), "val": (...), "classes": [...], "provenance": {...}}."""
    from torchvision.datasets import FashionMNIST

    tv_root, origin = find_fashion(root)
    tr = _read(FashionMNIST, tv_root, True, f"Fashion-MNIST from {origin}")
    va = _read(FashionMNIST, tv_root, False, f"Fashion-MNIST from {origin}")
    x_tr, y_tr = tr.data.numpy(), tr.targets.numpy().astype(np.int64)
    x_va, y_va = va.data.numpy(), va.targets.numpy().astype(np.int64)
    h = hashlib.sha256()
    for a in (x_tr, y_tr, x_va, y_va):
        h.update(np.ascontiguousarray(a).tobytes())
    prov = {
        "name": FASHION,
        "source": "torchvision.datasets.FashionMNIST",  # not where: the same files by another path are the same data
        "train_split": "the 60k train images",
        "val_split": "the 10k test images",
        "n_train": int(len(y_tr)),
        "n_val": int(len(y_va)),
        "sha256": h.hexdigest(),
    }
    return {
        "train": (x_tr, y_tr),
        "val": (x_va, y_va),
        "classes": list(tr.classes),
        "provenance": prov,
        "origin": origin,
    }


def torchvision_splits(name: str, root: str | Path | None = None) -> dict:
    """`--data torchvision:NAME`: a torchvision classification dataset the user already has under the data root,
    read by its own class (download=False) -> {"train": ds, "val": ds, "classes": [...], "provenance": {...}}."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if not (isinstance(cls, type) and issubclass(cls, tvd.VisionDataset)):
        raise DataError(
            f"torchvision has no dataset class {name!r}", "use its class name, e.g. --data torchvision:CIFAR10"
        )
    r = data_root(root)
    if r is None or not r.is_dir():
        raise DataError(
            f"--data {TORCHVISION}{name} reads its files from the data root, and "
            + ("none is set" if r is None else f"{r} is not a folder"),
            "pass --data-root DIR (or set VITC_DATA_ROOT) where torchvision's download=True put them",
        )
    splits = {}
    for split, flag in (("train", True), ("val", False)):
        try:
            try:
                ds = cls(str(r), train=flag, download=False)
            except TypeError:  # SVHN, STL10, ...: split= instead of train=
                ds = cls(str(r), split="train" if flag else "test", download=False)
        except TypeError:
            raise DataError(
                f"torchvision's {name} takes neither train= nor split=: not a classification dataset vitc can read",
                "use an ImageFolder tree instead",
            ) from None
        except (AssertionError, RuntimeError, ValueError, OSError) as e:
            msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise DataError(
                f"torchvision's {name} found no readable {split} files under {r} ({msg})",
                "put them there in torchvision's layout, as its download=True writes them",
            ) from None
        if len(ds) == 0:
            raise DataError(f"torchvision's {name}: the {split} split under {r} is empty", "replace the files")
        splits[split] = ds
    classes = getattr(splits["train"], "classes", None)
    prov = {
        "name": f"{TORCHVISION}{name}",
        "source": f"torchvision.datasets.{name}",
        "train_split": "its train split",
        "val_split": "its test split",
        "n_val": len(splits["val"]),
    }
    return {**splits, "classes": [str(c) for c in classes] if classes else None, "provenance": prov}
