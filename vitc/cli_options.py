"""The options several `vitc` commands share, defined once (typer's Annotated aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Data = Annotated[
    Optional[str],
    typer.Option(
        help="'digits' (built-in), 'fashion-mnist' (torchvision's reader; see `vitc --data-root`), "
        "'torchvision:NAME' (e.g. torchvision:CIFAR10, files under --data-root) or an ImageFolder dir with train/ and val/ "
        "(default: digits, said when chosen)"
    ),
]
Out = Annotated[Optional[Path], typer.Option(help="output dir (default: the stage's folder under runs/, printed)")]
ImgSize = Annotated[int, typer.Option(help="input resolution (digits are upsampled to it)")]
PatchSize = Annotated[Optional[int], typer.Option(help="ViT patch size override (ViT-family models only)")]
Pretrained = Annotated[bool, typer.Option(help="start from hub weights (needs internet or a warm HF cache)")]
CropPct = Annotated[Optional[float], typer.Option(help="eval centre-crop fraction (default: model's; 1.0 for digits)")]
Epochs = Annotated[int, typer.Option(help="training epochs")]
Batch = Annotated[
    Optional[int], typer.Option(help="batch size per process (default 64, capped at the training images)")
]
Lr = Annotated[
    Optional[float],
    typer.Option(
        help="absolute learning rate (default from scratch: teacher 2e-3, student 5e-4, "
        "the measured digits recipe; with --pretrained: the DeiT rule, --base-lr)"
    ),
]
BaseLr = Annotated[float, typer.Option(help="DeiT rule: lr = base_lr * global_batch / 512")]
MinLr = Annotated[float, typer.Option(help="cosine schedule floor")]
Wd = Annotated[float, typer.Option(help="AdamW weight decay")]
Warmup = Annotated[
    Optional[float],
    typer.Option(help="linear warm-up epochs (default: teacher 1, distill 5; capped at a fifth of a short run)"),
]
DropPath = Annotated[float, typer.Option(help="stochastic depth rate")]
EvalEvery = Annotated[
    float, typer.Option(help="held-out top-1 also every this many epochs, for a time-to-accuracy curve (0: epoch ends)")
]
Stem = Annotated[
    str, typer.Option(help="default | small: a 3x3/1 ResNet stem, so a 28 px image reaches the first stage at 14x14")
]
Ema = Annotated[float, typer.Option(help="EMA decay of the weights, e.g. 0.9998 (0: off)")]
Amp = Annotated[
    str,
    typer.Option(
        help="bf16 autocast for the trained model: off | bf16 | auto (CPU with BF16, or GPU); "
        "~1.6x faster here, same top-1 as fp32 on digits (6 seeds)"
    ),
]
Seed = Annotated[int, typer.Option(help="training seed (the val split is fixed)")]
Workers = Annotated[int, typer.Option(help="DataLoader worker processes")]
Threads = Annotated[Optional[int], typer.Option(help="torch threads per process (default: cores / processes)")]
Aug = Annotated[
    Optional[str],
    typer.Option(
        help="augmentation preset: digits | fashion | deit | none (default: the data's: digits for digits, "
        "fashion for fashion-mnist, deit otherwise)"
    ),
]
AutoAug = Annotated[Optional[str], typer.Option(help="timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 ('none' off)")]
Reprob = Annotated[Optional[float], typer.Option(help="random erasing probability")]
Mixup = Annotated[Optional[float], typer.Option(help="mixup alpha (0: off)")]
Cutmix = Annotated[Optional[float], typer.Option(help="cutmix alpha (0: off)")]
Smoothing = Annotated[Optional[float], typer.Option(help="label smoothing (true-label term only)")]
Resume = Annotated[bool, typer.Option(help="continue the run in --out from its last epoch")]
Force = Annotated[bool, typer.Option(help="replace a previous run in --out")]
Int8Isa = Annotated[
    str,
    typer.Option(
        help="int8: which CPUs it is for: portable (right on every CPU; 7-bit weights where the runtime's int8 "
        "products saturate without VNNI) | vnni (full 8-bit weights: VNNI/AMX/ARM devices only) | auto (as this CPU)"
    ),
]
