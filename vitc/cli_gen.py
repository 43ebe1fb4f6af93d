"""The stage commands' options, generated from the stage configs (issue 35): one option per config field, same
name (nested fields flattened: `train.aug.preset` is `--aug`), same help, the default shown from the config, and
an option not given is not given: the command passes only what the user typed to `from_dict`, which a pipeline
YAML section goes through too, so `vitc <stage>` and a YAML section cannot drift apart.

typer reads a command's parameters from its signature; a signature built here from `dataclasses.fields` is the
one way to make them from the configs (typer has no dataclass support), so this module builds it by hand."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from . import stages
from .config import from_dict
from .errors import ConfigError

# fields a stage's CLI leaves to the pipeline YAML, each with its reason (tests/test_cli_configs.py checks them)
YAML_ONLY: dict[str, str] = {}
# what a command needs besides its config: where to write, what to read (stages.Inputs); these map to no field
RUN_OPTIONS = ("out", "resume", "force", "checkpoint", "paths", "list_targets", "auto_teacher", "teacher_epochs")


@dataclass(frozen=True)
class Opt:
    name: str  # the Python parameter; typer's option is --name-with-dashes
    path: tuple[str, ...]  # the config field it sets, e.g. ("train", "aug", "preset")
    kind: str  # int | float | str | bool | list | floats | ints
    help: str
    argument: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list"}


def _kind(annotation: str) -> str:
    parts = [p.strip() for p in str(annotation).split("|") if p.strip() != "None"]
    base = parts[0]
    if base.startswith("tuple[float"):
        return "floats"
    if base.startswith("tuple[int"):
        return "ints"
    if base not in _KINDS:
        raise TypeError(f"no CLI kind for a field of type {annotation!r}")
    return _KINDS[base]


def options(cls: type) -> list[Opt]:
    """Every CLI option of a stage config, in field order (nested configs flattened)."""
    out: list[Opt] = []

    def walk(c: type, path: tuple[str, ...], rename: dict) -> None:
        for f in dataclasses.fields(c):
            md = f.metadata
            key = ".".join(path + (f.name,))
            if md.get("cli") is False or key in YAML_ONLY:
                continue
            if "nested" in md:
                walk(md["nested"], path + (f.name,), md.get("rename", {}))
                if "name" in md.get("rename", {}):  # the nested config's name field carries the parent's help
                    i = next(i for i, o in enumerate(out) if o.path == path + (f.name, "name"))
                    out[i] = dataclasses.replace(out[i], help=md["help"])
                continue
            name = rename.get(f.name) or (md["cli"] if isinstance(md.get("cli"), str) else f.name)
            out.append(Opt(name, path + (f.name,), _kind(f.type), md.get("help", ""), bool(md.get("argument"))))

    walk(cls, (), {})
    return out


# the fields a config cannot be built without; filled so that `--help` can show every other default
PLACEHOLDERS = {"distill": {"teacher_checkpoint": "<teacher>"}}


def default_config(stage: str):
    """The config `vitc <stage>` with no options would build (required inputs as placeholders)."""
    return from_dict(stages.get(stage).config, dict(PLACEHOLDERS.get(stage, {})), stage)


def _shown(cfg, path: tuple[str, ...]) -> str | bool:
    if path[:2] == ("train", "aug"):
        return False  # the data's preset decides these (its help says so)
    value = functools.reduce(getattr, path, cfg)
    if value is None or value == "" or path[-1] in PLACEHOLDERS.get("distill", {}):
        return False
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _annotation(o: Opt, shown: str | bool):
    base = {"int": int, "float": float, "str": str, "bool": bool, "list": list[str], "floats": str, "ints": str}[o.kind]
    if o.argument:
        return Annotated[Optional[Path], typer.Argument(help=o.help, show_default=False)]
    if o.kind == "bool":
        flag = o.flag
        info = typer.Option(f"{flag}/--no-{flag[2:]}", help=o.help, show_default=shown)
    else:
        info = typer.Option(o.flag, help=o.help, show_default=shown)
    return Annotated[Optional[base], info]


def _value(o: Opt, v: Any) -> Any:
    if o.argument:
        return str(v)
    if o.kind == "list":
        return [p.strip() for item in v for p in item.split(",") if p.strip()]
    if o.kind in ("floats", "ints"):
        cast = float if o.kind == "floats" else int
        try:
            return [cast(p) for p in v.split(",") if p.strip()]
        except ValueError:
            example = "0,0.25,0.5" if cast is float else "1,16"
            raise ConfigError(
                f"{o.flag} {v!r} is not a comma-separated list of {'numbers' if cast is float else 'integers'}",
                f"e.g. {o.flag} {example}",
            ) from None
    return v


def given(opts: list[Opt], kw: dict) -> dict:
    """The nested mapping of what was typed: {"model": {"img_size": 28}, "train": {"aug": {"preset": "fashion"}}}."""
    out: dict = {}
    for o in opts:
        if kw.get(o.name) is None:
            continue
        node = out
        for k in o.path[:-1]:
            node = node.setdefault(k, {})
        node[o.path[-1]] = _value(o, kw[o.name])
    return out


def flag_for(message: str, opts: list[Opt]) -> str:
    """A config error names a field ("train.epochs: ...", "img_size: ..."); the CLI names the option."""
    key, sep, rest = message.partition(":")
    parts = tuple(key.strip().split("."))
    hit = next((o for o in opts if o.path[-len(parts) :] == parts), None) if sep and " " not in key.strip() else None
    return f"{hit.flag}:{rest}" if hit and not hit.argument else message


def command(
    app: typer.Typer,
    stage: str,
    handler: Callable[[dict, dict], None],
    extra: list[inspect.Parameter],
    doc: str,
    first: tuple[str, ...] = (),
) -> None:
    """Register `vitc <stage>`: the config's options (the `first` ones leading the help) plus `extra` (run options,
    RUN_OPTIONS); `handler(given, run)` gets what was typed as a nested config mapping and the run options."""
    opts = options(stages.get(stage).config)
    defaults = default_config(stage)
    order = sorted(
        opts, key=lambda o: (not o.argument, o.name not in first, first.index(o.name) if o.name in first else 0)
    )
    params = [
        inspect.Parameter(
            o.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_annotation(o, _shown(defaults, o.path))
        )
        for o in order
    ] + extra
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"vitc {stage}: an option is declared twice: {sorted(n for n in names if names.count(n) > 1)}")

    def cmd(**kw):
        run = {p.name: kw[p.name] for p in extra}
        try:
            return handler(given(opts, kw), run)
        except ConfigError as e:
            e.message = flag_for(e.message, opts)
            raise

    cmd.__signature__ = inspect.Signature(params)
    cmd.__annotations__ = {p.name: p.annotation for p in params}
    cmd.__name__ = cmd.__qualname__ = stage
    cmd.__doc__ = doc
    cmd.options = opts
    app.command(stage)(cmd)


def param(name: str, annotation, default=None) -> inspect.Parameter:
    """A run option (RUN_OPTIONS) for `command(extra=...)`."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
