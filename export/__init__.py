"""Export targets: one module per runtime, registered here.

Each target module exposes NAME, SUFFIX, PRECISIONS, an `Options` dataclass, `check() -> str | None`
(why it cannot run here), `export(model, example, out, opts) -> Path` and
`load(path, threads) -> callable(np.ndarray) -> np.ndarray`. The README's capability table and
`vitc export --list` are generated from this registry, never from a second list.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from vitc.errors import ConfigError

_REGISTRY: dict[str, ModuleType] = {}
_MODULES = ("onnx", "openvino", "torchscript_lite", "executorch", "tensorrt")


def register(module: ModuleType) -> ModuleType:
    if module.NAME in _REGISTRY:
        raise ValueError(f"export target {module.NAME!r} is registered twice")
    _REGISTRY[module.NAME] = module
    return module


def _load_all() -> None:
    if not _REGISTRY:
        for m in _MODULES:  # target modules import their runtime lazily, inside functions
            register(importlib.import_module(f"vitc.export.{m}"))


def names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def get(name: str) -> ModuleType:
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.3)
        raise ConfigError(
            f"unknown export target {name!r}; valid: {', '.join(_REGISTRY)}",
            f"did you mean {close[0]!r}?" if close else None,
        )
    return _REGISTRY[name]


def by_suffix() -> dict[str, ModuleType]:
    """Artifact file suffix -> target module (.onnx -> onnx, .xml -> openvino, ...)."""
    _load_all()
    return {m.SUFFIX: m for m in _REGISTRY.values()}


def table() -> list[dict]:
    """One row per target: name, suffix, precisions, extra to install, and why it is unavailable here."""
    _load_all()
    return [
        {
            "target": m.NAME,
            "suffix": m.SUFFIX,
            "precisions": list(m.PRECISIONS),
            "extra": m.EXTRA,
            "unavailable": m.check(),
        }
        for m in _REGISTRY.values()
    ]


def markdown_table() -> str:
    """The README's capability table, generated from the registry (test_readme keeps them equal)."""
    _load_all()
    head = "| target | artifact | precisions | install |\n|---|---|---|---|\n"
    return head + "".join(
        f"| `{m.NAME}` | `{m.SUFFIX}` | {', '.join(m.PRECISIONS)} | "
        f"{f'`vitc[{m.EXTRA}]`' if m.EXTRA else 'ships with torch'}"
        f"{' + NVIDIA GPU' if m.NAME == 'tensorrt' else ''} |\n"
        for m in _REGISTRY.values()
    )
