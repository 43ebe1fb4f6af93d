"""How much of the machine other work took while a training epoch ran: what lets a run that shared its cores
still give an honest time-to-accuracy figure (issue 34). Read from Linux's /proc/stat (all CPUs) and
/proc/self/stat (this process and its waited-for children); elsewhere it reports nothing. psutil would add a
dependency for two counters, so the two files are read here."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _machine() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies over all CPUs."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    steal = f[7] if len(f) > 7 else 0
    total = sum(f[:8])
    return total - idle - steal, steal, total


def _own() -> int | None:
    """This process's user + system jiffies (its threads included)."""
    try:
        stat = Path(f"/proc/{os.getpid()}/stat").read_text()
        f = stat[stat.rindex(")") + 2 :].split()
        return int(f[11]) + int(f[12])  # utime, stime (fields 14 and 15)
    except (OSError, ValueError, IndexError):
        return None


class CpuShare:
    """Started at an epoch's start; `read()` at its end gives the shares of all CPU time that other processes
    used (`others_cpu`) and that the hypervisor stole (`steal`), each in [0, 1], or {} where /proc is missing."""

    def __init__(self):
        self.t0, self.m0, self.own0 = time.monotonic(), _machine(), _own()

    def read(self) -> dict:
        m1, own1 = _machine(), _own()
        if None in (self.m0, m1, self.own0, own1):
            return {}
        busy, steal, total = (b - a for a, b in zip(self.m0, m1))
        if total <= 0:
            return {}
        others = max(busy - (own1 - self.own0), 0)
        return {"others_cpu": round(others / total, 4), "steal": round(steal / total, 4)}
