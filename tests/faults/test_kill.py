"""kill -9 at random moments of random calls: every finished call intact, the interrupted ones
recovered with at most about a second lost, measured against the wall time of their off-hook.

Paced by a private PulseAudio, so the kill lands at a real moment of real calls on two lines.
5 random kills in CI, 50 with CALLREC_SOAK=1. Regression test for issue 9 item 4 (2.15 s lost,
and a capture timeline 2 s behind the wall clock).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import soundfile
from callrec.control import ControlClient
from conftest import callrec, noise_wav, scenario_toml
from fault_support import SOAK, start_simulate

PREROLL_S = 1.0
MOST_LOST_S = 1.0
LINE1 = [(1.0, "hook", "off"), (5.0, "hook", "on"), (6.5, "hook", "off"), (10.0, "hook", "on"),
         (11.5, "hook", "off"), (15.5, "hook", "on"), (17.0, "hook", "off"), (20.0, "hook", "on")]
LINE2 = [(2.0, "ring", "on"), (2.8, "ring", "off"), (3.0, "hook", "off"), (7.0, "hook", "on"),
         (8.5, "hook", "off"), (13.0, "hook", "on"), (14.0, "hook", "off"), (19.0, "hook", "on")]
CASES = 50 if SOAK else 5


def _wall(event: dict) -> float:
    return dt.datetime.fromisoformat(event["ts"]).timestamp()


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lines")
    noise_wav(work / "line1.wav", 22, seed=1)
    noise_wav(work / "line2.wav", 22, seed=2)
    (work / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": LINE1},
                                                {"line": 2, "audio": "line2.wav", "events": LINE2}]))
    return work


@pytest.mark.parametrize("case", range(CASES))
def test_kill_9_at_a_random_moment_keeps_every_call_and_loses_at_most_a_second(lines, tmp_path, case):
    rng = random.Random(9000 + case)
    data = tmp_path / "data"
    run = start_simulate(lines / "s.toml", data, "--realtime")
    first = run.until(lambda e: e["type"] == "call.started")
    time.sleep(max(0.0, _wall(first) + rng.uniform(0.5, 18.0) - time.time()))
    os.kill(run.proc.pid, signal.SIGKILL)
    killed = time.time()
    run.proc.wait(timeout=10)
    run.finish()   # what was printed before the kill
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0, out.stdout + out.stderr
    assert not list(data.rglob("*.part")) and not list(data.rglob("*.part.json")) and not list(data.rglob("*.tmp"))
    started = {e["call_id"]: e for e in run.of_type("call.started")}
    ended = {e["call_id"]: e for e in run.of_type("call.ended")}
    for call_id, start in started.items():
        record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
        audio = data / record["recording"]["path"]
        with open(audio, "rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == record["recording"]["sha256"]
        seconds = soundfile.info(str(audio)).duration
        if call_id in ended:
            assert record["status"] == "complete", record
            assert abs(seconds - (record["duration_s"] + PREROLL_S)) < 0.05
        else:
            assert record["status"] == "recovered", record
            line_carried = killed - _wall(start) + PREROLL_S
            print(f"kill case {case}: {line_carried - seconds:.3f} s lost of {line_carried:.2f} s", file=sys.stderr)
            assert line_carried - MOST_LOST_S <= seconds <= line_carried + 0.2, (call_id, seconds, line_carried)


def test_the_capture_timeline_keeps_up_with_the_wall_clock(lines, tmp_path):
    """A pause asked for N seconds after the off-hook is logged about N seconds into the call."""
    data = tmp_path / "data"
    run = start_simulate(lines / "s.toml", data, "--realtime")
    start = run.until(lambda e: e["type"] == "call.started" and e["line"] == 1)
    time.sleep(2.5)
    asked = time.time()
    result = ControlClient(data / "control.sock").command("recording.pause", {"line": 1})
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 130
    behind = (asked - _wall(start)) - result["at_s"]
    # one period batch (20 ms) plus the time a command takes to reach the core
    assert -0.05 <= behind <= 0.25, behind
