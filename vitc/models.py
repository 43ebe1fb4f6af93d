"""timm model names, the aliases users type, and building a model from a checkpoint dir."""

from __future__ import annotations

import difflib
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .errors import ModelError, OfflineError

# alias -> (timm architecture, pretrained tag used with --pretrained or None for timm's default)
ALIASES: dict[str, tuple[str, str | None]] = {
    # DeiT's own teacher is the `deit_in1k` tag; the bare `regnety_160` loads another tag.
    "regnety_16gf": ("regnety_160", "deit_in1k"),
    "regnety_8gf": ("regnety_080", None),
    "regnety_4gf": ("regnety_040", None),
    "deit_tiny": ("deit_tiny_distilled_patch16_224", None),
    "deit_small": ("deit_small_distilled_patch16_224", None),
    "deit_base": ("deit_base_distilled_patch16_224", None),
    "deit_base_384": ("deit_base_distilled_patch16_384", None),
    "deit_tiny_nodist": ("deit_tiny_patch16_224", None),
    "deit_small_nodist": ("deit_small_patch16_224", None),
}

# Stems for small images. timm's ResNets take a 28 px image to 7x7 before their first stage (7x7/2 conv, then a
# 3x3/2 max-pool); "small" is a 3x3/1 conv of the same width with timm's max-pool kept, so the first stage sees
# 14x14 (CIFAR ResNets skip the pool too: 4x the compute, results/fashion-cpu/teacher-recipe). timm has no stem
# stride option for its ResNets, so the conv is swapped here; vitc.json records it and build_from_spec redoes it.
STEMS = ("default", "small")

# Constructor overrides that only token-based models (ViT family) take.
VIT_ONLY = ("img_size", "patch_size")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an architecture: timm name + constructor overrides."""

    name: str
    overrides: dict = field(default_factory=dict)
    pretrained_tag: str | None = None
    structure: dict | None = None  # per-block widths of a model pruned by `vitc prune` (vitc.structure)
    stem: str | None = None  # a stem replaced after timm built the model (STEMS); rebuilt on load

    def to_json(self) -> dict:
        d = {"name": self.name, "overrides": dict(self.overrides), "pretrained_tag": self.pretrained_tag}
        if self.structure is not None:
            d["structure"] = self.structure
        if self.stem is not None:
            d["stem"] = self.stem
        return d


def resolve_name(user_name: str) -> tuple[str, str | None]:
    """Map an alias or timm name (optionally `arch.tag`) to (timm arch, tag)."""
    import timm

    if user_name in ALIASES:
        return ALIASES[user_name]
    arch, _, tag = user_name.partition(".")
    if timm.is_model(arch):
        return arch, tag or None
    choices = list(ALIASES) + timm.list_models()
    close = difflib.get_close_matches(arch, choices, n=3, cutoff=0.5)
    raise ModelError(
        f"unknown model {user_name!r}",
        f"closest: {', '.join(close)}" if close else "see timm.list_models() or the aliases in `vitc teacher --help`",
    )


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(old)


def _create(name: str, pretrained: bool, **kwargs) -> torch.nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    import huggingface_hub.constants as hf

    was_offline = hf.HF_HUB_OFFLINE
    if not was_offline and not _hub_reachable():
        # Without DNS the hub client retries for ~45 s per file; go straight to the local cache.
        hf.HF_HUB_OFFLINE = True
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:  # LocalEntryNotFoundError is an OSError
        raise OfflineError(
            f"cannot fetch pretrained weights for {name} from the Hugging Face hub (offline or not cached)",
            "pass --teacher-checkpoint PATH (a vitc checkpoint dir or .safetensors file), "
            "train one with `vitc teacher`, or drop --pretrained to start from random weights",
        ) from e
    finally:
        hf.HF_HUB_OFFLINE = was_offline


def apply_stem(model: torch.nn.Module, stem: str | None, name: str = "") -> torch.nn.Module:
    """Replace the model's stem (STEMS) in place; "default"/None keeps timm's."""
    if stem in (None, "default"):
        return model
    conv = getattr(model, "conv1", None)
    if stem != "small" or not isinstance(conv, torch.nn.Conv2d) or not hasattr(model, "maxpool"):
        raise ModelError(
            f"--stem {stem}: {name or type(model).__name__} has no ResNet stem (conv1 + maxpool) to replace",
            "use --stem default, or a ResNet-family model (resnet18, resnet26, ...)",
        )
    model.conv1 = torch.nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=False)
    return model


def default_patch(img_size: int, own: int) -> int:
    """A ViT's patch when none is asked for: its own, unless that leaves fewer than 4x4 tokens (deit_tiny's 16 at
    32 px: 2x2), then the largest that divides the image into at least 4x4 (8 at 32 px, 7 at 28)."""
    if img_size // own >= 4:
        return own
    return next(p for p in range(max(img_size // 4, 1), 0, -1) if img_size % p == 0)


def create_model(
    user_name: str,
    num_classes: int,
    img_size: int | None = None,
    patch_size: int | None = None,
    pretrained: bool = False,
    stem: str | None = None,
    **extra,
) -> tuple[torch.nn.Module, ModelSpec]:
    """Create a timm model; img_size/patch_size go to the constructor of ViT-like models only; `stem` replaces a
    ResNet's stem (STEMS: its weights start random, also under --pretrained)."""
    arch, tag = resolve_name(user_name)
    overrides: dict = {"num_classes": int(num_classes), **extra}
    if img_size is not None:
        overrides["img_size"] = int(img_size)
    if patch_size is not None:
        overrides["patch_size"] = int(patch_size)
    full = f"{arch}.{tag}" if (pretrained and tag) else arch
    while True:
        try:
            model = _create(full, pretrained, **overrides)
            break
        except TypeError as e:
            bad = next((k for k in VIT_ONLY if f"'{k}'" in str(e) and k in overrides), None)
            if bad is None:
                raise
            if bad == "patch_size":
                raise ModelError(
                    f"{arch} has no patches: --patch-size applies to ViT-family models only",
                    "drop --patch-size for this model",
                ) from e
            overrides.pop(bad)  # CNNs take any input size; the size lives in the preprocessing
    stem = None if stem in (None, "default") else stem
    apply_stem(model, stem, arch)
    return model, ModelSpec(arch, overrides, tag if pretrained else None, stem=stem)


def is_distilled(model: torch.nn.Module) -> bool:
    from .structure import head_names

    return hasattr(model, "set_distilled_training") and len(head_names(model)) == 2


def data_config(model: torch.nn.Module, img_size: int | None, crop_pct: float | None = None) -> dict:
    """The preprocessing that travels with the model (timm's pretrained cfg, input size overridden)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    if img_size is not None:
        cfg["input_size"] = (3, int(img_size), int(img_size))
    if crop_pct is not None:
        cfg["crop_pct"] = float(crop_pct)
    return {
        "input_size": list(cfg["input_size"]),
        "interpolation": cfg["interpolation"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "crop_pct": float(cfg["crop_pct"]),
        "crop_mode": cfg.get("crop_mode", "center"),
    }


def build_from_spec(spec: dict) -> torch.nn.Module:
    """The architecture a checkpoint's `vitc.json` describes; a pruned one is re-shaped to its widths."""
    import timm

    model = timm.create_model(spec["name"], pretrained=False, **spec.get("overrides", {}))
    apply_stem(model, spec.get("stem"), spec["name"])
    if spec.get("structure"):
        from .structure import apply

        apply(model, spec["structure"])
    return model


def load_checkpoint_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from a vitc checkpoint dir alone (architecture, overrides, weights)."""
    meta = ckpt.load_meta(path)
    ckpt.verify_weights(path, meta)
    model = build_from_spec(meta["model"])
    ckpt.load_into(model, ckpt.load_weights(Path(path) / ckpt.WEIGHTS), str(path))
    return model.eval(), meta


def gflops(model: torch.nn.Module, input_size: list[int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval()(torch.zeros(1, *input_size))
    return fc.get_total_flops() / 1e9


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_from_checkpoint(model: torch.nn.Module, ckpt_dir: str | Path) -> dict:
    """Initial weights from another vitc checkpoint of the same architecture, possibly trained at
    another resolution or patch size: timm's own ViT checkpoint filter resamples the patch
    embedding (FlexiViT's PI-resize) and interpolates the position embeddings to the new grid,
    as when fine-tuning a ViT at a higher resolution."""
    meta = ckpt.load_meta(ckpt_dir)
    state = ckpt.load_weights(Path(ckpt_dir) / ckpt.WEIGHTS)
    if hasattr(model, "pos_embed"):
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = checkpoint_filter_fn(state, model)
    ckpt.load_into(model, state, str(ckpt_dir))
    return {
        "path": str(ckpt_dir),
        "sha256": meta["weights_sha256"],
        "input_size": meta["preprocess"]["input_size"],
        "patch_size": meta["model"].get("overrides", {}).get("patch_size"),
    }
