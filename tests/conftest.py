import os

# Tests never touch the network: the hub client must answer from its (empty) cache at once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("VITC_TEST", "1")

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture
def tiny_student():
    from vitc.models import create_model

    torch.manual_seed(0)
    m, _ = create_model("deit_tiny", num_classes=10, img_size=32, patch_size=8, depth=2)
    return m


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A tiny ImageFolder tree of real digits images in mixed PNG modes (L, RGBA, 16-bit, P).
    Shared by the session: tests that change it work on a copy."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("data") / "ds"
    modes = ["L", "RGBA", "I;16", "P", "RGB"]
    for split, ids in (("train", range(0, 60)), ("val", range(60, 80))):
        for i in ids:
            c = int(d.target[i])
            if c > 2:
                continue
            folder = root / split / f"digit{c}"
            folder.mkdir(parents=True, exist_ok=True)
            a = (d.images[i] * (255 / 16)).astype(np.uint8)
            mode = modes[i % len(modes)]
            if mode == "I;16":
                img = Image.fromarray(a.astype(np.uint16) * 257)  # uint16 -> mode I;16
                assert img.mode == "I;16"
            else:
                img = Image.fromarray(a).convert(mode)
            img.save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A tiny deit (img 32, patch 8, depth 2) trained briefly on digits, saved as a vitc checkpoint dir."""
    from vitc import checkpoint as ckpt
    from vitc.data import eval_tensors, load_source
    from vitc.models import create_model, data_config

    torch.manual_seed(0)
    m, spec = create_model("deit_tiny", 10, 32, 8, depth=2)
    pre = data_config(m, 32, 1.0)
    src = load_source("digits", 32)
    X, Y = eval_tensors(src.train, pre)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m.train()
    for i in range(60):
        idx = torch.randint(len(X), (64,))
        loss = torch.nn.functional.cross_entropy(m(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    ckpt.save_checkpoint(out, m.eval(), {"stage": "distill", "model": spec.to_json(), "classes": src.classes,
                                         "preprocess": pre, "config": {"data": "digits"}, "metrics": {}})
    return out


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    p = tmp_path_factory.mktemp("png") / "seven.png"
    i = int(np.flatnonzero(d.target == 7)[0])
    Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).save(p)
    return p
