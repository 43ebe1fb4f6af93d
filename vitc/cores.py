"""How many cores this process may use, without importing torch (the ONNX Runtime loaders use it)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity call on macOS/Windows
        return os.cpu_count() or 1
