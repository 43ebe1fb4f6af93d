"""What every config dataclass shares: checks that name the key, `opt` (a field with its CLI help) and the
mapping <-> dataclass conversions the CLI and pipeline YAML both go through."""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields
from typing import Any

from .errors import ConfigError


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _choice(value, choices, key: str) -> None:
    """A value drawn from a fixed set: one sentence naming the valid ones, and the closest as the hint."""
    import difflib

    choices = [str(c) for c in choices]
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        raise ConfigError(
            f"{key}: {value!r} is not one of {', '.join(choices)}", f"did you mean {close[0]!r}?" if close else None
        )


def opt(default: Any = dataclasses.MISSING, help: str = "", *, factory=None, **cli) -> Any:
    """A config field with its CLI help: vitc/cli_gen.py makes every stage command's options from these fields
    (same name, default and help; `cli=NAME` renames the option, `cli=False` keeps a field YAML-only,
    `nested=Class` flattens a sub-config, `rename={field: option}` renames inside it, `argument=True` is positional)."""
    md = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, where: str = ""):
    """Build a config dataclass; unknown keys are errors naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where + '.' if where else ''}{unknown[0]}: unknown key", f"valid keys: {', '.join(sorted(names))}"
        )
    for f in fields(cls):
        if f.name in data:
            _check_type(data[f.name], f.type, f"{where + '.' if where else ''}{f.name}")
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _check_type(value: Any, annotation: str, key: str) -> None:
    """Scalar fields get their declared type (YAML and JSON hand us anything); containers and nested
    configs are checked by their own constructors."""
    parts = [p.strip() for p in str(annotation).split("|")]
    if not all(p in _SCALARS for p in parts):
        return
    ok = any(isinstance(value, _SCALARS[p]) and not (p in ("int", "float") and isinstance(value, bool)) for p in parts)
    if not ok:
        hint = None
        if isinstance(value, str) and "float" in parts:
            try:
                float(value)
                hint = f"write it with a dot, e.g. {float(value)!r}: YAML 1.1 reads {value!r} as a string"
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(parts)}, got {type(value).__name__} {value!r}", hint)
