"""The wall clock stepped by an hour in the middle of a call changes no duration.

Durations come from the core's monotonic time (line time in simulation); the wall clock only labels
moments, and is read at each use, as on a Pi whose clock NTP sets after boot. The step comes from a
scenario `clock_step` fault: the simulated appliance's wall clock (libfaketime cannot step a
Python 3.11 process: its clock_nanosleep fails with EINVAL under it).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import callrec, noise_wav
from fault_support import start_simulate

SCENARIO = """
[[line]]
line = 1
audio = "line1.wav"
events = [{{ at = 1.0, hook = "off" }}, {{ at = 10.0, hook = "on" }}]

[[fault]]
at = 5.0
kind = "clock_step"
seconds = {step}
"""


def _stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("step", [3600.0, -3600.0])
@pytest.mark.parametrize("paced", [False, True], ids=["fast", "paced"])
def test_a_wall_clock_step_mid_call_changes_no_duration_only_the_labels_after_it(tmp_path, step, paced):
    noise_wav(tmp_path / "line1.wav", 13)
    (tmp_path / "s.toml").write_text(SCENARIO.format(step=step))
    run = start_simulate(tmp_path / "s.toml", tmp_path / "data", *(["--realtime"] if paced else []))
    assert run.finish() == 0, run.stderr_tail()
    (ended,) = run.of_type("call.ended")
    (started,) = run.of_type("call.started")
    assert ended["duration_s"] == 9.0, "the duration is the line's, whatever the wall clock did"
    record = json.loads(callrec("calls", "show", ended["call_id"], "--data", str(tmp_path / "data")).stdout)
    assert record["duration_s"] == 9.0
    labelled = _stamp(record["ended_at"]) - _stamp(record["started_at"])
    assert abs(labelled - (9.0 + step)) < 0.1, "labels follow the clock as it is when they are taken"
    assert abs((_stamp(ended["ts"]) - _stamp(started["ts"])) - (9.0 + step)) < 0.1
