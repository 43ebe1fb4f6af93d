"""Process-level settings: threads, seeds, bf16 capability, torchrun/DDP."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from vitc.cores import usable_cores


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16 or AMX); emulated bf16 is slower than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def use_bf16(mode: str, device: torch.device) -> bool:
    if mode == "off":
        return False
    if mode == "bf16":
        return True
    return device.type == "cuda" or cpu_has_bf16()


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def seed_all(*parts: int) -> None:
    """Seed every RNG from a tuple (seed, epoch, rank): each epoch's randomness (order,
    augmentation, dropout) is then a pure function of its index, so a resumed run repeats it."""
    s = int(np.random.SeedSequence(list(parts)).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def rng_state() -> dict:
    st = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (st[0], torch.from_numpy(st[1].astype(np.int64)), st[2], st[3], st[4]),
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    random.setstate(tuple(s["python"][:1]) + (tuple(s["python"][1]),) + tuple(s["python"][2:]))
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4])))


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def init(threads: int | None = None) -> Dist:
    """Read torchrun's env; gloo on CPU, nccl on GPU; split the cores between processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    n = threads or max(1, usable_cores() // (world if not cuda else 1))
    torch.set_num_threads(n)
    return Dist(rank, world, local, device)


def shutdown(d: Dist) -> None:
    if d.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def package_versions(names) -> dict:
    """Installed versions of those of `names` that are installed."""
    import importlib.metadata as md

    out = {}
    for pkg in names:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def cpu_id() -> dict:
    """CPU family, model and stepping from /proc/cpuinfo: hosts that print the same model name (Zen 4 and
    Zen 5 both say "AMD EPYC") differ here, and so do their peaks: reports and caches key on it."""
    out = {}
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                k, _, v = ln.partition(":")
                k = k.strip()
                if k in ("cpu family", "model", "stepping") and k not in out:
                    out[k] = v.strip()
                if not ln.strip() and out:
                    break
    except OSError:
        pass
    return {"family": out.get("cpu family"), "model": out.get("model"), "stepping": out.get("stepping")}


def machine_info() -> dict:
    """What a reader needs to reproduce a figure: CPU, cores, relevant ISA flags, versions."""
    import platform

    import timm

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    isa = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni"})
    from vitc.export.edge_run import int8_isa

    return {
        "cpu": model or platform.processor(),
        "cpu_id": cpu_id(),
        "cores": os.cpu_count(),
        "isa": isa,
        "int8_path": int8_isa()["path"],  # amx | avx512-vnni | ... | avx2: where int8 products saturate (vitc/isa.py)
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def channels_last(model: "torch.nn.Module", bf16: bool) -> bool:
    """Whether to train in channels-last memory: for a CNN under bf16 autocast, where oneDNN's bf16 convolutions
    want it (the small-stem resnet18 at 28 px: 453 vs 378 img/s here; in fp32 it was slower, 250 vs 281,
    results/fashion-cpu/teacher-recipe). A ViT only has its patch-embedding conv."""
    return bf16 and not hasattr(model, "patch_embed") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
