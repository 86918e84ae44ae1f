"""A service that starts while the handset is already off-hook records that call from its start.

This is `systemctl restart callrec` (or a reboot) during a call: the old service ended the call at
its stop; the new one finds the hook input already active and records the rest of the conversation
as a call of its own, answered already and so announced at once (the caller must be told on every
recorded call, and this one could not be told at its beginning). A line found ringing is ringing,
not a call.

Through `callrec run` itself: real alsa-lib file-plugin audio (conftest's `file_pcms`), the RPi.GPIO
module at the hardware seam (tests/fake_pi) holding the pins low from the start
(`CALLREC_FAKE_GPIO_LOW`). No timed assertions: times are bracketed by what the test saw happen.
The pre-roll of such a call is pinned on the core itself (test_core's rig), where audio frames and
time agree: the file-plugin capture here is not paced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from callrec.audio.capture import AudioPeriod
from callrec.line import RawEdge
from conftest import listed_calls, start_service
from test_core import PERIOD, Rig

HOOK_GPIO, RING_GPIO = 17, 27   # ONE_LINE_ON_FILE_PCMS, both active low
RUN_S = 3.0                     # the service runs this long after READY=1
STOP_SLACK_S = 0.5              # the last audio before the stop is within a few capture batches of it


@dataclass
class Run:
    launched: float   # wall clock just before `callrec run` was started
    ready: float      # ... when it said READY=1 (after the pins were claimed and the first audio came)
    stopped: float    # ... when it was sent SIGTERM
    stderr: str
    data: Path

    def calls(self) -> list[dict[str, Any]]:
        return listed_calls(self.data)


def wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_service(work: Path, low_pins: list[int]) -> Run:
    """`callrec run` with `low_pins` held low from before it starts: READY, RUN_S s, SIGTERM."""
    launched = time.time()
    proc, notify = start_service(work, {"CALLREC_FAKE_GPIO_LOW": ",".join(map(str, low_pins))}, 60,
                                 stdout=subprocess.DEVNULL)
    try:
        while "READY=1" not in notify.recv(4096).decode():
            pass
        ready = time.time()
        time.sleep(RUN_S)
        stopped = time.time()
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    return Run(launched, ready, stopped, stderr, work / "data")


@pytest.fixture(scope="module")
def offhook_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_service(tmp_path_factory.mktemp("offhook"), [HOOK_GPIO])


@pytest.fixture(scope="module")
def offhook_call(offhook_run: Run) -> dict[str, Any]:
    calls = offhook_run.calls()
    assert len(calls) == 1, f"one call, the one in progress at the start: {calls}\n{offhook_run.stderr}"
    return calls[0]


def test_service_started_with_the_handset_offhook_records_the_call_from_its_start(offhook_run, offhook_call):
    call = offhook_call
    assert call["status"] == "complete" and call["recording"] is not None, call
    # Begun at the pins' first report: after the launch, before READY (the pins are claimed before
    # the first audio period, and READY waits for that period), not at some later edge.
    assert offhook_run.launched <= wall(call["started_at"]) <= offhook_run.ready, call
    # Recorded up to the stop.
    assert wall(call["ended_at"]) >= offhook_run.stopped - STOP_SLACK_S, call
    assert call["end_reason"] == "hangup" and "recording stopped: service stopping" in call["errors"], call
    # The record says its beginning was not heard. (Its pre-roll is pinned on the core below: this
    # harness's file-plugin capture is not paced, so its frames say nothing of time.)
    assert any("already in progress" in error for error in call["errors"]), call


def test_a_call_found_in_progress_at_start_is_answered_and_announced_at_once(offhook_call):
    call = offhook_call
    assert call["answer_source"] == "in_progress", call
    assert call["answered_at"] == call["started_at"], call
    assert call["announcement"] is not None and call["announcement"]["started_s"] is not None, call


def test_service_started_while_the_line_rings_makes_no_call(tmp_path):
    run = run_service(tmp_path, [RING_GPIO])
    assert run.calls() == [], run.stderr


# ---- on the core: the pre-roll of a call begun before the line was heard -------------------------

def wait_for(rig: Rig, event_type: str) -> dict[str, Any]:
    """The first event of that type, once the core's thread has sent it (no timing asserted)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [e for e in list(rig.events) if e["type"] == event_type]
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no {event_type} in {rig.types()}")


def test_a_call_found_in_progress_before_the_first_audio_claims_no_preroll_and_is_answered_at_once(tmp_path):
    """As on a Pi: the pins are reported at start, the debounce falls due on the core's own clock
    before the capture's first batch arrives. Nothing was heard before the edge: no pre-roll."""
    rig = Rig(tmp_path, signals={"outbound_announcement": "far_end_answer"})
    rig.core.clock = lambda: 5.1   # the core's clock: a debounce from the report (5.0) is due
    rig.core.start()
    try:
        for line in (1, 2):
            rig.core.post(RawEdge(line, "hook", line == 1, 5.0))
            rig.core.post(RawEdge(line, "ring", False, 5.0))
        started = wait_for(rig, "call.started")
        answered = wait_for(rig, "call.answered")
    finally:
        rig.core.stop()
        rig.close()
    assert started["preroll_s"] == 0.0, started
    assert answered["call_id"] == started["call_id"] and answered["ts"] == started["ts"], answered


def test_a_call_whose_edge_precedes_the_first_audio_claims_no_negative_preroll(tmp_path):
    rig = Rig(tmp_path)
    try:
        rig.core.process(RawEdge(1, "hook", True, 5.0))
        # The capture's first period ends 0.2 s after the edge but holds only 20 ms: it began late.
        rig.core.process(AudioPeriod(1, np.full(PERIOD, 1000, dtype=np.int16), PERIOD, 5.2))
        (started,) = [e for e in rig.events if e["type"] == "call.started"]
    finally:
        rig.close()
    assert started["preroll_s"] == 0.0, started
