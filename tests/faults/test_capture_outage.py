"""The capture card vanishes mid-call and comes back: alarm, `fault`, a stated gap, and the call
goes on being recorded on the line's own timeline (silence where the line was not heard).

The simulated card is unplugged by a scenario `[[fault]]`; the reopen path under a real PulseAudio
that dies and returns is tests/test_capture_faults.py.
"""

from __future__ import annotations

import json
import time

import numpy as np
import soundfile
from callrec.control import ControlClient
from conftest import callrec, noise_wav
from fault_support import start_simulate

SCENARIO = """
[[line]]
line = 1
audio = "line1.wav"
events = [{ at = 1.0, hook = "off" }, { at = 12.0, hook = "on" }]

[[fault]]
at = 5.0
kind = "capture_gone"
seconds = 2.5
"""


def test_a_card_gone_mid_call_is_a_stated_gap_and_the_rest_of_the_call_is_recorded(tmp_path):
    line_audio = noise_wav(tmp_path / "line1.wav", 16)
    (tmp_path / "s.toml").write_text(SCENARIO)
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data"),
                  "--config", str(_no_announcement(tmp_path)))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    raised = [e for e in events if e["type"] == "alarm.raised" and e["kind"] == "capture"]
    cleared = [e for e in events if e["type"] == "alarm.cleared" and e["kind"] == "capture"]
    assert raised and cleared and raised[0]["id"] == cleared[0]["id"]
    (ended,) = [e for e in events if e["type"] == "call.ended"]
    assert ended["status"] == "complete"
    record = json.loads(callrec("calls", "show", ended["call_id"], "--data", str(tmp_path / "data")).stdout)
    (gap,) = record["gaps"]
    assert gap["cause"] == "capture" and abs(gap["at_s"] - 4.0) < 0.05 and abs(gap["duration_s"] - 2.5) < 0.05
    recorded, _ = soundfile.read(str(tmp_path / "data" / record["recording"]["path"]), dtype="int16")
    start = 0   # the recording starts at the pre-roll: line second 0
    assert len(recorded) == 12 * 8000, "the file keeps the line's timeline"
    gap_from, gap_to = int(5.0 * 8000), int(7.5 * 8000)
    assert not np.any(recorded[gap_from + 160:gap_to - 160]), "silence where the line was not heard"
    assert np.array_equal(recorded[:gap_from - 160], line_audio[start:gap_from - 160])
    assert np.array_equal(recorded[gap_to + 160:], line_audio[gap_to + 160:12 * 8000])


def test_the_line_shows_fault_while_its_card_is_gone(tmp_path):
    noise_wav(tmp_path / "line1.wav", 16)
    (tmp_path / "s.toml").write_text(SCENARIO)
    data = tmp_path / "data"
    run = start_simulate(tmp_path / "s.toml", data, "--realtime")
    run.until(lambda e: e["type"] == "alarm.raised" and e["kind"] == "capture")
    time.sleep(0.3)
    assert ControlClient(data / "control.sock").status()[0]["state"] == "fault"
    run.until(lambda e: e["type"] == "alarm.cleared" and e["kind"] == "capture")
    time.sleep(0.3)
    assert ControlClient(data / "control.sock").status()[0]["state"] == "recording"
    assert run.finish() == 0, run.stderr_tail()


def _no_announcement(tmp_path):  # the comparison with the line audio needs nothing mixed in
    config = tmp_path / "c.toml"
    config.write_text("[announcement]\nenabled = false\n")
    return config
