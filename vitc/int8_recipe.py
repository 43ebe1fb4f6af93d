"""PyTorch dynamic int8 as a recipe: a pure function of the fp32 weights, so a quantized checkpoint is the
fp32 safetensors plus this record, re-applied on load (no pickles). Why torch.ao and not torchao:
vitc/compress/quantize.py."""

from __future__ import annotations

import warnings

import torch

from .errors import ConfigError

DYNAMIC_INT8 = {"method": "torch.ao.quantization.quantize_dynamic", "modules": ["Linear"], "dtype": "qint8"}


def dynamic_int8(model: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8)


def apply_recipe(model: torch.nn.Module, recipe: dict | None) -> torch.nn.Module:
    if not recipe:
        return model
    if recipe.get("method") != DYNAMIC_INT8["method"]:
        raise ConfigError(f"unknown quantization recipe {recipe.get('method')!r} in the checkpoint")
    return dynamic_int8(model)
