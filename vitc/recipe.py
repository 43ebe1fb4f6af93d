"""The training recipe: augmentation presets, each training stage's defaults, and `resolve`, the one function
that turns a stage, its data and what the user set into the TrainConfig a run trains with (issue 35).
`fit` resolves the one value that needs the data's size (the batch, `batch_for`) and records the whole
recipe in vitc.json and on the run's first line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config_base import _check, _choice, from_dict, opt
from .errors import ConfigError

# Augmentation presets. "deit" is DeiT's ImageNet recipe (Touvron et al. 2021, main.py defaults):
# RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing
# 0.1, RandomResizedCrop scale (0.08, 1), horizontal flip. "digits" keeps digits legible: no flip
# (a mirrored 2 is not a 2), mild crops and RandAugment. "none": resize + normalize only.
AUG_PRESETS: dict[str, dict[str, Any]] = {
    "deit": dict(
        auto_augment="rand-m9-mstd0.5-inc1",
        reprob=0.25,
        mixup=0.8,
        cutmix=1.0,
        smoothing=0.1,
        scale=(0.08, 1.0),
        hflip=0.5,
    ),
    "digits": dict(
        auto_augment="rand-m6-mstd0.5", reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.1, scale=(0.7, 1.0), hflip=0.0
    ),
    # Fashion-MNIST, sized for a few epochs (results/fashion-cpu): mild crops and flips (products are left-right
    # symmetric, garments are not upside down), random erasing as in the leaderboard's 96.3% WRN; no RandAugment
    # or mixing, which pay off only over long schedules
    "fashion": dict(auto_augment=None, reprob=0.1, mixup=0.0, cutmix=0.0, smoothing=0.1, scale=(0.8, 1.0), hflip=0.5),
    "none": dict(auto_augment=None, reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.0, scale=(1.0, 1.0), hflip=0.0),
}


def _check_auto_augment(spec: str) -> None:
    """Parse the policy string with timm's own parser now, not at the first training batch."""
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform

    build = (
        rand_augment_transform
        if spec.startswith("rand")
        else augment_and_mix_transform
        if spec.startswith("augmix")
        else auto_augment_transform
    )
    try:
        build(spec, {"translate_const": 10, "img_mean": (124, 116, 104)})
    except Exception as e:  # timm raises assert/KeyError/ValueError on a malformed policy string
        raise ConfigError(
            f"aug.auto_augment: {spec!r} is not a timm policy string ({type(e).__name__}: {e})",
            "e.g. rand-m9-mstd0.5-inc1, augmix-m5-w4-d2, or none",
        ) from None


# The preset a run gets when it names none: the one for the data it trains on (issue 35: never silently digits'),
# "deit" (DeiT's own recipe) for data vitc knows nothing about (an ImageFolder, other torchvision sets).
DATA_PRESETS = {
    "digits": "digits",
    "torchvision:MNIST": "digits",
    "fashion-mnist": "fashion",
    "torchvision:FashionMNIST": "fashion",
}


def preset_for(data: str) -> str:
    return DATA_PRESETS.get(data, "deit")


@dataclass
class AugConfig:
    # None: the data's (preset_for), filled in by for_data() once the data is known
    preset: str | None = opt(
        None,
        "augmentation preset: digits | fashion | deit | none (default: the data's: digits for digits, "
        "fashion for fashion-mnist, deit otherwise)",
    )
    auto_augment: str | None = opt(None, "timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 ('none' off)")
    reprob: float | None = opt(None, "random erasing probability")
    mixup: float | None = opt(None, "mixup alpha (0: off)")
    cutmix: float | None = opt(None, "cutmix alpha (0: off)")
    smoothing: float | None = opt(None, "label smoothing (true-label term only)")
    scale: tuple[float, float] | None = opt(None, "random-resized-crop area range lo,hi")
    hflip: float | None = opt(None, "horizontal flip probability")

    def __post_init__(self):
        if self.preset is not None:
            _choice(self.preset, sorted(AUG_PRESETS), "aug.preset")
            for k, v in AUG_PRESETS[self.preset].items():  # explicit values win over the preset
                if getattr(self, k) is None:
                    setattr(self, k, v)
        # a value given explicitly is checked now, also while the preset waits for the data
        for k in ("reprob", "hflip"):
            if getattr(self, k) is not None:
                _check(0.0 <= getattr(self, k) <= 1.0, f"aug.{k}", "must be in [0, 1]")
        for k in ("mixup", "cutmix"):
            if getattr(self, k) is not None:
                _check(getattr(self, k) >= 0.0, f"aug.{k}", "must be >= 0")
        if self.smoothing is not None:
            _check(0.0 <= self.smoothing < 1.0, "aug.smoothing", "must be in [0, 1)")
        if self.scale is not None:
            _check(
                isinstance(self.scale, (list, tuple))
                and len(self.scale) == 2
                and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in self.scale),
                "aug.scale",
                f"must be two numbers [lo, hi], got {self.scale!r}",
            )
            self.scale = tuple(float(s) for s in self.scale)
            _check(0 < self.scale[0] <= self.scale[1] <= 1, "aug.scale", "must be 0 < lo <= hi <= 1")
        if self.auto_augment in ("", "none"):
            self.auto_augment = None
        # the policy string is parsed by timm (and so torch) in check_policies(), when a stage is about to run:
        # validating a config file stays torch-free

    def for_data(self, data: str | None) -> "AugConfig":
        """This config with the preset of `data` where none was named (explicit values kept); as it is when named."""
        if self.preset is not None or data is None:
            return self
        return AugConfig(**{**dataclasses.asdict(self), "preset": preset_for(data)})

    def check_policy(self) -> None:
        if self.auto_augment is not None:
            _check_auto_augment(self.auto_augment)

    @property
    def mixing(self) -> bool:
        if self.preset is None:
            raise ConfigError("aug.preset: not resolved yet (AugConfig.for_data was not called with the run's data)")
        return self.mixup > 0 or self.cutmix > 0


DEFAULT_DATA = "digits"  # what a run that names no data uses (and says so: vitc/cli_train.py, vitc pipeline)
DATA_HELP = (
    "'digits' (built-in), 'fashion-mnist' (torchvision's reader; see `vitc --data-root`), "
    "'torchvision:NAME' (e.g. torchvision:CIFAR10, files under --data-root) or an ImageFolder dir with train/ and val/ "
    "(the default is said when chosen)"
)
TEACHER_MODEL = "resnet18"
STUDENT_MODEL = "deit_tiny"
DEFAULT_WARMUP = 5.0  # DeiT's linear warm-up, in epochs
TEACHER_WARMUP = 1.0  # `vitc teacher`'s (a short fine-tune)
TEACHER_EPOCHS = 10  # `vitc teacher`'s, also for the teacher `vitc distill` trains when it has none
# The CLI's from-scratch learning rates: the measured digits recipe (configs/digits.yaml: resnet18 teacher
# 99.17%, regnety_16gf 98.33% in 10 epochs; hard-distilled deit_tiny 96.85-98.06%). DeiT's rule
# (base_lr 5e-4 x batch / 512) is for fine-tuning at ImageNet batch sizes: at batch 64 it gives 6.25e-5,
# with which `vitc distill --teacher regnety_16gf --student deit_tiny` reached a 71% teacher and a 57.5% student.
SCRATCH_TEACHER_LR = 2e-3
SCRATCH_STUDENT_LR = 5e-4
WARMUP_SHARE = 0.2  # a default warm-up that does not fit the run takes this share of it
DEFAULT_BATCH = 64  # per process; when the CLI user sets none, fit() caps it at the data (default_batch)
DISTILL_AMP = "auto"  # the student's default autocast (see TrainConfig.amp)

# Each training stage's defaults: the one source that `vitc teacher|distill|prune`, a pipeline YAML and the
# auto teacher all build from (TeacherConfig, DistillConfig and PruneConfig merge the user's settings over these).
# lr is absent where it depends on the model: from scratch it is the measured recipe (SCRATCH_*_LR), when
# fine-tuning hub weights DeiT's scaling rule (base_lr x batch / 512).
TEACHER_TRAIN: dict[str, Any] = {
    "epochs": TEACHER_EPOCHS,
    "warmup_epochs": TEACHER_WARMUP,
    "drop_path": 0.0,
    "amp": "off",
}
DISTILL_TRAIN: dict[str, Any] = {"epochs": 40, "warmup_epochs": DEFAULT_WARMUP, "drop_path": 0.1, "amp": DISTILL_AMP}
PRUNE_TRAIN: dict[str, Any] = {
    "epochs": 10,
    "warmup_epochs": 1.0,
    "drop_path": 0.0,
    "amp": DISTILL_AMP,
    "lr": SCRATCH_STUDENT_LR,
}  # the measured 224 recipe (results/prune-224-cpu)


STAGE_TRAIN = {"teacher": TEACHER_TRAIN, "distill": DISTILL_TRAIN, "prune": PRUNE_TRAIN}

# The measured recipes for data vitc knows (issue 34, results/fashion-cpu/converged): what `vitc teacher|distill
# --data fashion-mnist` run with no other flag, over the stage's defaults (configs/fashion.yaml spells them out).
# The lr applies from scratch only: with hub weights DeiT's rule stays. DATA_MODEL: the model defaults for that
# data (its native size; the teacher's small-image stem when the teacher is the stage's default resnet18).
FASHION = ("fashion-mnist", "torchvision:FashionMNIST")
DATA_TRAIN: dict[tuple[str, str], dict[str, Any]] = {
    **{
        (d, "teacher"): {"epochs": 9, "batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.5, "amp": "auto"}
        for d in FASHION
    },
    **{
        (d, "distill"): {
            "epochs": 28,
            "batch_size": 256,
            "lr": 1e-3,
            "warmup_epochs": 2.0,
            "drop_path": 0.1,
            "amp": "auto",
        }
        for d in FASHION
    },
}
DATA_MODEL: dict[tuple[str, str], dict[str, Any]] = {
    **{(d, "teacher"): {"img_size": 28, "stem": "small"} for d in FASHION},
    **{(d, "distill"): {"img_size": 28} for d in FASHION},
}


def model_defaults(stage: str, data: str | None, named: bool) -> dict[str, Any]:
    """The model settings a stage takes from its data when not given (a named model keeps the default stem)."""
    d = dict(DATA_MODEL.get((data or "", stage), {}))
    if named:
        d.pop("stem", None)  # a small-image stem exists for ResNets: only the stage's own default model gets it
    return d


def default_warmup(epochs: int, default: float) -> tuple[float, str | None]:
    """The warm-up a run gets when the user set none: the stage's default when it fits the run;
    otherwise (`--epochs 1` with DeiT's 5) a fifth of the run, so the request is valid. Runs the
    default fits keep exactly their old recipe (and pipeline fingerprint). -> (warm-up, a note when cut)."""
    w = default if default < epochs else round(WARMUP_SHARE * epochs, 3)
    note = (
        None
        if w == default
        else (
            f"warm-up: {w:g} epochs, a fifth of this {epochs}-epoch run (the default {default:g}-epoch warm-up "
            "needs a longer run); pass --warmup-epochs to choose"
        )
    )
    return w, note


def default_batch(n_train: int, mixing: bool) -> tuple[int, str | None]:
    """The batch a run gets when the user set none: DEFAULT_BATCH, capped at the training images (even,
    when mixup/cutmix pair the batch). -> (batch, a note when capped)."""
    b = min(DEFAULT_BATCH, n_train)
    if mixing and b % 2:
        b -= 1
    note = (
        None
        if b == DEFAULT_BATCH
        else (
            f"batch size: the default {DEFAULT_BATCH} is more than the {n_train} training images; "
            f"using {b} (pass --batch-size to choose)"
        )
    )
    return max(b, 1), note


@dataclass
class TrainConfig:
    """The optimisation recipe shared by `vitc teacher` and `vitc distill`."""

    epochs: int = opt(30, "training epochs")
    # per process (the global batch is batch_size x world size); None: DEFAULT_BATCH, capped at the data (fit)
    batch_size: int | None = opt(
        None, f"batch size per process (default {DEFAULT_BATCH}, capped at the training images)"
    )
    base_lr: float = opt(5e-4, "DeiT rule: lr = base_lr * global_batch / 512")
    lr: float | None = opt(
        None,
        "absolute learning rate (default from scratch: teacher 2e-3, student 5e-4, the measured digits recipe; "
        "with --pretrained: the DeiT rule, --base-lr)",
    )
    min_lr: float = opt(1e-5, "cosine schedule floor")
    weight_decay: float = opt(0.05, "AdamW weight decay")
    # None: the stage's, cut by default_warmup when it does not fit the run
    warmup_epochs: float | None = opt(None, "linear warm-up epochs (cut to a fifth of a run it does not fit)")
    warmup_lr: float = opt(1e-6, "learning rate the warm-up starts from")
    drop_path: float = opt(0.1, "stochastic depth rate")
    ema: float = opt(0.0, "EMA decay of the weights, e.g. 0.9998 (0: off)")
    # held-out top-1 every this many epochs as well as at each epoch's end (0: epoch ends only), for the
    # time-to-accuracy curve (top-1 against images seen); needs data with a held-out part (DataSource.holdout)
    eval_every: float = opt(
        0.0, "held-out top-1 also every this many epochs, for a time-to-accuracy curve (0: epoch ends)"
    )
    # bf16 autocast for the trained model: off | bf16 | auto (when the CPU has BF16, or on GPU).
    # `vitc teacher` defaults to off; `vitc distill` to auto (DISTILL_AMP): on digits, 6 seeds, the
    # bf16 student matched the fp32 one (96.94 +- 0.35 vs 96.94 +- 0.93) and trained 1.6x faster.
    amp: str = opt(
        "off",
        "bf16 autocast for the trained model: off | bf16 | auto (CPU with BF16, or GPU); "
        "~1.6x faster here, same top-1 as fp32 on digits (6 seeds)",
    )
    seed: int = opt(0, "training seed (the val split is fixed)")
    workers: int = opt(0, "DataLoader worker processes")
    threads: int | None = opt(None, "torch threads per process (default: cores / processes)")
    aug: AugConfig = opt(factory=AugConfig, nested=AugConfig, rename={"preset": "aug"})

    def __post_init__(self):
        if isinstance(self.aug, dict):
            self.aug = from_dict(AugConfig, self.aug, "aug")
        _check(
            isinstance(self.epochs, int) and self.epochs >= 1, "epochs", f"must be an integer >= 1, got {self.epochs!r}"
        )
        _check(
            self.batch_size is None or isinstance(self.batch_size, int) and self.batch_size >= 1,
            "batch_size",
            f"must be an integer >= 1, got {self.batch_size!r}",
        )
        _check(self.base_lr > 0, "base_lr", "must be > 0")
        _check(self.lr is None or self.lr > 0, "lr", "must be > 0")
        _check(0 <= self.min_lr, "min_lr", "must be >= 0")
        if self.warmup_epochs is None:
            self.warmup_epochs = default_warmup(self.epochs, DEFAULT_WARMUP)[0]
        _check(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1)")
        _check(
            0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
            "warmup_epochs",
            f"{self.warmup_epochs:g} must be fewer than epochs ({self.epochs}); use --warmup-epochs 0 for short runs",
        )
        _check(0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        _check(0 <= self.ema < 1, "ema", "must be in [0, 1)")
        _check(0 <= self.eval_every <= 1, "eval_every", "must be in [0, 1] epochs (0: at epoch ends only)")
        _choice(self.amp, ("auto", "bf16", "off"), "amp")
        _check(self.workers >= 0, "workers", "must be >= 0")
        _check(self.threads is None or self.threads >= 1, "threads", "must be >= 1")

    def for_data(self, data: str | None) -> "TrainConfig":
        """The augmentation preset of the data the run trains on, where none was named (AugConfig.for_data)."""
        aug = self.aug.for_data(data)
        return self if aug is self.aug else dataclasses.replace(self, aug=aug)

    def scaled_lr(self, global_batch: int) -> float:
        return self.lr if self.lr is not None else self.base_lr * global_batch / 512


def stage_defaults(stage: str, data: str | None, pretrained: bool = False) -> dict[str, Any]:
    """A training stage's defaults on `data`: the stage's, with the data's measured recipe over them."""
    data_train = DATA_TRAIN.get((data or "", stage), {})
    if pretrained:
        data_train = {k: v for k, v in data_train.items() if k != "lr"}
    return {**STAGE_TRAIN[stage], **data_train}


SCRATCH_LR = {"teacher": SCRATCH_TEACHER_LR, "distill": SCRATCH_STUDENT_LR, "prune": SCRATCH_STUDENT_LR}


def resolve(stage: str, given: dict | TrainConfig | None, *, data: str | None, pretrained: bool = False) -> TrainConfig:
    """The recipe a training stage runs: a pure function of the stage, its data, whether the model starts from hub
    weights, and what the user set (a mapping, or a TrainConfig kept as it is). The user's settings win over the
    stage's defaults (STAGE_TRAIN) and its data's measured recipe (DATA_TRAIN); a warm-up not set is the stage's,
    cut to fit a short run (default_warmup); an augmentation preset not named is the data's (None: not known yet,
    as for `vitc prune` before it reads its checkpoint); an lr not set is the measured from-scratch one
    (SCRATCH_LR), or with hub weights DeiT's rule (base_lr x batch / 512, applied in fit). The batch, which needs
    the data's size, is `batch_for`'s."""
    if isinstance(given, TrainConfig):
        cfg = given.for_data(data)
    else:
        given = dict(given or {})
        defaults = stage_defaults(stage, data, pretrained)
        merged = {**{k: v for k, v in defaults.items() if k != "warmup_epochs"}, **given}
        if given.get("warmup_epochs") is None:
            epochs = merged.get("epochs", TrainConfig.epochs)
            if isinstance(epochs, int) and epochs >= 1:
                merged["warmup_epochs"] = default_warmup(epochs, defaults.get("warmup_epochs", DEFAULT_WARMUP))[0]
        cfg = from_dict(TrainConfig, merged, "train").for_data(data)
    if cfg.lr is None and not pretrained:
        cfg = dataclasses.replace(cfg, lr=SCRATCH_LR[stage])  # a new config: one passed in is never changed
    return cfg


def batch_for(cfg: TrainConfig, n_train: int) -> tuple[TrainConfig, str | None]:
    """The recipe with its batch: the one set, else DEFAULT_BATCH capped at the training images (default_batch)."""
    if cfg.batch_size is not None:
        return cfg, None
    bs, note = default_batch(n_train, cfg.aug.mixing)
    return dataclasses.replace(cfg, batch_size=bs), note


def describe(cfg: TrainConfig, lr: float) -> str:
    """The resolved recipe in one line, printed when training starts."""
    a = cfg.aug
    aug = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in (("flip", a.hflip), ("erasing", a.reprob), ("mixup", a.mixup), ("cutmix", a.cutmix),
                     ("smoothing", a.smoothing), ("randaug", a.auto_augment))
        if v
    )  # fmt: skip
    return (
        f"recipe: {cfg.epochs} epochs, batch {cfg.batch_size}, lr {lr:g} (cosine to {cfg.min_lr:g}, warm-up "
        f"{cfg.warmup_epochs:g} epochs), weight decay {cfg.weight_decay:g}, drop-path {cfg.drop_path:g}, "
        f"EMA {cfg.ema:g}, amp {cfg.amp}, aug {a.preset} (crop {a.scale[0]:g}-{a.scale[1]:g}"
        + (f", {aug})" if aug else ")")
    )
