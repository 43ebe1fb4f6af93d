"""One run per output folder: a run holds an OS lock (flock) on its folder for its whole life, so a second run
into the same folder is refused in one sentence naming the process that holds it, however close their starts.
The kernel drops the lock when the holder dies, even by kill -9: a killed run never blocks the next one, and
`--resume` works as before. Lock files live under the temp dir, keyed by the folder's resolved path, so a refused
run writes nothing into or beside the folder. No well-kept library does this across Linux and macOS with the
holder named (filelock does not say who holds it), hence this page of code."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

_HELD: dict[str, int] = {}  # resolved folder -> depth, in this process (a stage inside a pipeline, say)


def lock_path(out: Path) -> Path:
    key = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "vitc-locks" / f"{key}.lock"


@contextmanager
def hold(out: Path, what: str):
    """Hold `out` for this process while the block runs; OutputError if another process holds it.
    Under torchrun only rank 0 locks: every rank writes into the same folder by design."""
    key = str(Path(out).resolve())
    if fcntl is None or int(os.environ.get("RANK", "0")) != 0 or key in _HELD:
        _HELD[key] = _HELD.get(key, 0) + 1
        try:
            yield
        finally:
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]
        return
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputError(
            f"{out} is in use by another vitc run ({holder})",
            "wait for it to finish, or pass another --out",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {what}".encode(), 0)
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
