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
_FDS: dict[str, int] = {}  # resolved folder -> the open lock file, while held


def _close_in_child() -> None:
    # a forked child (a DataLoader worker) shares the lock's open file: closed there, so the lock dies with its
    # holder, not seconds later with the last worker
    for fd in _FDS.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _FDS.clear()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def lock_path(out: Path) -> Path:
    """Per user (a lock folder another user made would not be writable), keyed by the folder's resolved path."""
    key = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:24]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"vitc-locks-{uid}" / f"{key}.lock"


def _holder(fd: int) -> str:
    """Who holds it: the holder writes its pid just after it locks, so a loser that looks in between waits a little."""
    import time

    for _ in range(20):
        text = os.pread(fd, 300, 0).decode(errors="replace").strip()
        try:
            pid = int(text.split(":", 1)[0].split()[1])
            os.kill(pid, 0)
            return text
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            time.sleep(0.01)
    return text or "another process"


@contextmanager
def hold(out: Path, what: str):
    """Hold `out` for this process while the block runs; OutputError if another process holds it. One host, one
    user: a folder shared over NFS by two hosts, or two users' runs, are not excluded. Under torchrun only rank 0
    locks: every rank writes into the same folder by design. Where no lock file can be made, the run goes on
    unlocked."""
    key = str(Path(out).resolve())
    fd = None
    if fcntl is not None and int(os.environ.get("RANK", "0")) == 0 and key not in _HELD:
        path = lock_path(out)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(fd)
                os.close(fd)
                raise OutputError(
                    f"{out} is in use by another vitc run ({holder})",
                    "wait for it to finish, or pass another --out",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {what}".encode(), 0)
            _FDS[key] = fd
    _HELD[key] = _HELD.get(key, 0) + 1
    try:
        yield
    finally:
        _HELD[key] -= 1
        if not _HELD[key]:
            del _HELD[key]
            if _FDS.get(key) == fd and fd is not None:
                del _FDS[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
