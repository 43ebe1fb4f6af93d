"""Issue 36: one run per output folder. A run holds an OS lock on its folder for its whole life (vitc/outlock.py):
a second run into it is refused in one sentence naming the running process, however close their starts; the lock
of a killed run does not block the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vitc.errors import OutputError
from vitc.outlock import hold, lock_path

REPO = Path(__file__).resolve().parents[1]

# waits for a start file, then runs the CLI: two of these start training at the same instant
AT_ONCE = """
import os, sys, time
from vitc.cli import main
start = sys.argv[1]
while not os.path.exists(start):
    time.sleep(0.001)
main(sys.argv[2:])
"""

HOLDER = """
import sys, time
from vitc.outlock import hold
with hold(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(out: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock locks: POSIX only")
def test_two_trainings_started_at_the_same_instant_into_one_folder(tmp_path):
    out, start = tmp_path / "same", tmp_path / "go"
    argv = [
        "teacher",
        "--model",
        "resnet18",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--img-size",
        "32",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", AT_ONCE, str(start), *argv],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(3)  # both have imported vitc and wait on the start file
    start.touch()
    res = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in res)
    assert codes == [0, 2], res
    refused = next(r for r in res if r[2] == 2)
    winner = next(p for p, r in zip(procs, res) if r[2] == 0)
    said = " ".join(refused[1].split())
    assert f"is in use by another vitc run (pid {winner.pid}: vitc teacher into" in said, said
    assert (out / "vitc.json").is_file()  # the winner's run, whole


def test_a_killed_run_does_not_block_the_next(tmp_path):
    out = tmp_path / "run"
    p = _holder(out)
    with pytest.raises(OutputError, match=f"in use by another vitc run \\(pid {p.pid}: test holder\\)"):
        with hold(out, "second"):
            pass
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with hold(out, "after the kill"):
        assert lock_path(out).read_text().startswith(f"pid {os.getpid()}: after the kill")
    assert not out.exists()  # the lock lives under the temp dir: nothing is written into or beside the folder


@pytest.mark.parametrize("command", ["bench", "pipeline"])
def test_bench_and_pipeline_refuse_a_folder_in_use(tmp_path, monkeypatch, capsys, command):
    from vitc.cli import main

    monkeypatch.chdir(tmp_path)
    if command == "bench":
        out = tmp_path / "report"
        argv = ["bench", str(tmp_path), "--out", str(out)]
    else:
        out = tmp_path / "runs" / "digits"  # configs/digits.yaml: name digits, runs under ./runs
        argv = ["pipeline", str(REPO / "configs" / "digits.yaml")]
    p = _holder(out)
    try:
        with pytest.raises(SystemExit) as e:
            main(argv)
    finally:
        p.kill()
        p.wait()
    err = " ".join(capsys.readouterr().err.split())
    assert e.value.code == 2 and f"in use by another vitc run (pid {p.pid}: test holder)" in err, err


def test_the_pipeline_does_not_wipe_a_stage_folder_another_run_holds(tmp_path, monkeypatch, capsys):
    from vitc.cli import main

    monkeypatch.chdir(tmp_path)
    busy = tmp_path / "runs" / "digits" / "teacher"  # a `vitc teacher --out runs/digits/teacher` still training
    busy.mkdir(parents=True)
    (busy / "vitc.json").write_text("{}")
    p = _holder(busy)
    try:
        with pytest.raises(SystemExit) as e:
            main(["pipeline", str(REPO / "configs" / "digits.yaml")])
    finally:
        p.kill()
        p.wait()
    err = " ".join(capsys.readouterr().err.split())
    assert e.value.code == 2 and "in use by another vitc run" in err, err
    assert (busy / "vitc.json").read_text() == "{}"  # refused before the stage folder was emptied
