"""Checkpoint directories: `model.safetensors` + `vitc.json`, written atomically.

A checkpoint dir is the hand-off between stages; every later stage rebuilds the model from it
alone. Weights are safetensors (no pickles). The resumable training state is one file,
`train_state.pt`, loaded with `torch.load(weights_only=True)` so it can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from safetensors import SafetensorError

from .errors import CheckpointError, OutputError

WEIGHTS = "model.safetensors"
META = "vitc.json"
TRAIN_STATE = "train_state.pt"
FORMAT = "vitc-checkpoint/1"

if TYPE_CHECKING:  # torch is imported where weights are read or written: `vitc predict x.onnx` runs without it
    import torch


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temp path in the destination folder; rename it over `final` only on success.

    A crash or exception before the rename leaves the previous file (if any) untouched and
    no truncated file under the final name.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as e:
        raise OutputError(f"cannot write to {final.parent}: {e.strerror}", "choose a writable --out directory") from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint should read like any file
        os.replace(tmp, final)
    except OSError as e:
        raise OutputError(
            f"writing {final} failed: {e.strerror or e}",
            "free disk space or fix permissions; the previous file is intact",
        ) from e
    finally:
        tmp.unlink(missing_ok=True)


def writable_dir(out: Path, what: str = "--out") -> None:
    """Create `out` and prove a file can be written there, before any work is spent."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".vitc-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to {what} {out}: {e.strerror}", "choose a writable directory") from e


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(_json_text(obj))


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} does not exist") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from e


def save_file(state: dict, path: str, metadata: dict | None = None) -> None:
    """safetensors' torch writer, imported on first use (importing this module loads no torch)."""
    from safetensors.torch import save_file as write

    write(state, path, metadata=metadata)


def load_file(path: str) -> dict:
    from safetensors.torch import load_file as read

    return read(path)


def state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def save_checkpoint(out_dir: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write both files to temp names first; only when both are complete rename the weights, then
    `vitc.json` (which names the weights' sha256 and marks the dir complete). A full disk or a
    crash while writing leaves the previous checkpoint untouched; a crash in the instant between
    the two renames is caught on load, where the sha256 must match."""
    out_dir = Path(out_dir)
    with ExitStack() as stack:  # contexts exit in reverse: weights are renamed first, vitc.json last
        tmp_meta = stack.enter_context(atomic_path(out_dir / META))
        tmp_weights = stack.enter_context(atomic_path(out_dir / WEIGHTS))
        save_file(state_dict_for_save(model), str(tmp_weights), metadata={"format": FORMAT})
        meta = {"format": FORMAT, **meta, "weights_sha256": sha256_file(tmp_weights)}
        tmp_meta.write_text(_json_text(meta))
    return out_dir


def is_checkpoint_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / META).is_file() and (p / WEIGHTS).is_file()


def load_meta(ckpt_dir: str | Path) -> dict:
    p = Path(ckpt_dir)
    if not p.exists():
        raise CheckpointError(
            f"checkpoint {p} does not exist", "pass a vitc checkpoint dir (made by `vitc teacher` or `vitc distill`)"
        )
    if not is_checkpoint_dir(p):
        raise CheckpointError(
            f"{p} is not a vitc checkpoint dir (needs {WEIGHTS} and {META})",
            "pass a dir made by `vitc teacher`/`vitc distill`, or a .safetensors file with --teacher NAME",
        )
    meta = read_json(p / META)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p / META} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def verify_weights(ckpt_dir: str | Path, meta: dict) -> None:
    want = meta.get("weights_sha256")
    if want and sha256_file(Path(ckpt_dir) / WEIGHTS) != want:
        raise CheckpointError(
            f"{Path(ckpt_dir) / WEIGHTS} does not match the sha256 in its {META} (an interrupted write, "
            "or a file replaced by hand)",
            "rerun the stage that made it, or --resume it",
        )


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path} is not a .safetensors file; vitc never unpickles weights",
            "convert it with safetensors.torch.save_file, or pass a vitc checkpoint dir",
        )
    try:
        return load_file(str(path))
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} does not exist") from e
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` strictly, naming the first tensor whose name or shape does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: "
            f"{len(missing)} tensors missing (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})",
            "is it a checkpoint of a different architecture? check --teacher / --student",
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: tensor {k} has shape {tuple(state[k].shape)} but the model expects {tuple(v.shape)}",
                "the checkpoint was made with another class count, image or patch size",
            )
    model.load_state_dict(state, strict=True)


def save_train_state(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        import torch

        torch.save(state, tmp)


def load_train_state(path: str | Path) -> dict:
    try:
        # weights_only: only tensors and plain containers are accepted; a pickle that would run
        # code raises UnpicklingError instead of executing.
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"no training state at {path}", "run without --resume to start fresh") from e
    except Exception as e:  # UnpicklingError, RuntimeError on a truncated zip, ...
        raise CheckpointError(
            f"{path} is not a safe, readable training state ({type(e).__name__}: {str(e)[:200]})",
            "delete it and run without --resume",
        ) from e
