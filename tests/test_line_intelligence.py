"""Line intelligence in the product: caller ID, dialled digits, far-end answer and hang-up, codes.

Whole calls through the real pipeline (alsa-lib file plugin, simulated line); the line audio carries
the signals an exchange would send, made by the same generators the DSP battery uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from callrec.config import PROFILES
from callrec.dsp import callerid, gen

RATE = 8000


class Line:
    """A line's audio timeline: quiet line noise with signals placed at given seconds."""

    def __init__(self, seconds: float, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.x = gen.awgn(-60, int(seconds * RATE), rng)

    def put(self, at: float, samples: np.ndarray) -> Line:
        start = int(at * RATE)
        self.x[start : start + len(samples)] += samples[: len(self.x) - start]
        return self

    def speech(self, at: float, seconds: float, seed: int = 9) -> Line:
        """Speech-like noise bursts (no tones): someone talking."""
        rng = np.random.default_rng(seed)
        n = int(seconds * RATE)
        envelope = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1), 1600)[:n]
        return self.put(at, gen.awgn(-20, n, rng) * envelope)

    def tone(self, at: float, region: str, kind: str, seconds: float) -> Line:
        plan = PROFILES[region].tones[kind]
        return self.put(at, gen.cadence(plan.freqs, -15.0, plan.cadence, seconds, plan.am_hz))

    def write(self, path: Path) -> str:
        soundfile.write(str(path), gen.saturate(self.x), RATE, subtype="PCM_16")
        return path.name


def test_bell202_caller_id_between_rings_lands_in_the_call_record(simulate, tmp_path):
    message = callerid.mdmf_message([(0x01, b"11281230"), (0x02, b"2125551234"), (0x07, b"SMITH JOHN")])
    audio = Line(30).put(2.6, callerid.signal(message, "bell202")).write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (2.0, "ring", "off"), (6.0, "ring", "on"), (7.0, "hook", "off"),
              (20.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}], config='region = "US"\n')
    assert result.returncode == 0, result.stderr
    cid = result.of_type("call.caller_id")
    assert len(cid) == 1 and cid[0]["number"] == "2125551234" and cid[0]["name"] == "SMITH JOHN"
    assert cid[0]["valid"] is True and cid[0]["standard"] == "bell202" and cid[0]["call_id"] is None
    call_id = result.of_type("call.started")[0]["call_id"]
    record = result.record(call_id)
    assert record["caller_number"] == "2125551234" and record["caller_name"] == "SMITH JOHN"
    from conftest import callrec

    found = callrec("calls", "list", "--json", "--number", "2125551234", "--data", str(result.data))
    assert call_id in found.stdout


def test_caller_id_with_a_bad_checksum_is_reported_invalid_and_never_a_number(simulate, tmp_path):
    message = bytearray(callerid.mdmf_message([(0x01, b"11281230"), (0x02, b"2125551234")]))
    message[5] ^= 0x01   # one bit flipped on the line
    audio = Line(30).put(2.6, callerid.signal(bytes(message), "bell202")).write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (2.0, "ring", "off"), (6.0, "ring", "on"), (7.0, "hook", "off"),
              (15.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}], config='region = "US"\n')
    cid = result.of_type("call.caller_id")
    assert len(cid) == 1 and cid[0]["valid"] is False and cid[0]["number"] is None
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["caller_number"] is None


def test_number_display_exchange_yields_the_number_and_no_phantom_call(simulate, tmp_path):
    message = callerid.ntt_message([(0x02, b"0312345678")])
    audio = Line(30).put(1.5, callerid.signal(message, "ntt")).write(tmp_path / "line1.wav")
    events = [(0.2, "ring", "on"), (0.7, "ring", "off"),            # CAR
              (1.0, "hook", "off"), (2.6, "hook", "on"),            # the terminal takes the number
              (3.5, "ring", "on"), (4.5, "ring", "off"),            # real ringing
              (7.5, "ring", "on"), (8.0, "hook", "off"), (20.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}])   # region JP
    assert result.returncode == 0, result.stderr
    assert len(result.of_type("call.started")) == 1
    cid = result.of_type("call.caller_id")
    assert [(c["standard"], c["number"], c["valid"]) for c in cid] == [("ntt", "0312345678", True)]
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["caller_number"] == "0312345678" and record["rings"] == 2


def test_call_waiting_caller_id_after_a_cas_lands_in_the_call_in_progress(simulate, tmp_path):
    """Type II: in a call the FSK receiver listens only after the CPE alerting signal (2130 + 2750 Hz);
    the same burst with no alert before it is speech to the detectors, not a caller."""
    message = callerid.mdmf_message([(0x01, b"12031015"), (0x02, b"2125550199"), (0x07, b"DOE JANE")])
    burst = callerid.signal(message, "bell202", seizure_bits=0, mark_bits=80)
    alert = gen.tones([2130, 2750], [-20.0, -20.0], int(0.08 * RATE))
    line = Line(30).speech(2.0, 5.0).put(14.0, alert).put(14.3, burst).put(19.0, burst)
    events = [(1.0, "hook", "off"), (25.0, "hook", "on")]   # the announcement is over by 12 s
    result = simulate([{"line": 1, "audio": line.write(tmp_path / "line1.wav"), "events": events}],
                      config='region = "US"\n')
    assert result.returncode == 0, result.stderr
    call_id = result.of_type("call.started")[0]["call_id"]
    cid = result.of_type("call.caller_id")
    assert len(cid) == 1 and cid[0]["number"] == "2125550199" and cid[0]["call_id"] == call_id
    assert [e["kind"] for e in result.of_type("line.tone")] == ["cas"]
    assert result.record(call_id)["caller_number"] == "2125550199"


def test_outbound_call_records_the_dialled_number_and_announces_when_the_far_end_answers(simulate, tmp_path):
    line = Line(40)
    line.tone(1.2, "US", "dial", 1.5)
    line.put(3.0, gen.dtmf_sequence("5551234", level=-8.0, duration=0.08, gap=0.08))
    line.tone(5.0, "US", "ringback", 8.0)            # two rings (2 s on, 4 s off): 5-7 s, 11-13 s
    line.speech(13.5, 15.0)                          # the far end answered at 13 s
    audio = line.write(tmp_path / "line1.wav")
    events = [(1.0, "hook", "off"), (35.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}], config='region = "US"\n')
    assert result.returncode == 0, result.stderr
    digits = "".join(e["digit"] for e in result.of_type("line.dtmf"))
    assert digits == "5551234"
    answered = result.of_type("call.far_end_answered")
    # ringback ended at 13 s and the voice began at 13.5 s: 12.0-12.5 s after the off-hook at 1 s
    assert len(answered) == 1 and 11.9 <= answered[0]["at_s"] <= 12.6, answered
    assert answered[0]["by"] == "voice"
    played = result.of_type("announcement.played")[0]
    assert played["started_s"] < 0.7, "the announcement starts when the far end answers"
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["dialed_number"] == "5551234" and record["answer_source"] == "far_end_answer"
    assert record["far_end_answered_s"] == answered[0]["at_s"] and record["end_reason"] == "hangup"


def test_outbound_call_with_no_tones_is_announced_after_the_fallback(simulate, tmp_path):
    audio = Line(30).speech(2.0, 20.0).write(tmp_path / "line1.wav")
    result = simulate([{"line": 1, "audio": audio, "events": [(1.0, "hook", "off"), (20.0, "hook", "on")]}],
                      config='region = "US"\n[signals]\nanswer_fallback_s = 4.0\n')
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["answer_source"] == "fallback"
    answered = result.of_type("call.answered")[0]
    started = result.of_type("call.started")[0]
    from datetime import datetime

    gap = (datetime.fromisoformat(answered["ts"]) - datetime.fromisoformat(started["ts"])).total_seconds()
    assert abs(gap - 4.0) < 0.1
    assert result.of_type("announcement.played")[0]["completed"] is True


def test_busy_tone_after_talk_ends_the_call_while_the_handset_stays_off_hook(simulate, tmp_path):
    line = Line(40).speech(1.5, 10.0)
    line.tone(12.0, "JP", "busy", 10.0)
    audio = line.write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (1.2, "hook", "off"), (30.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}])
    hangup = result.of_type("call.far_end_hangup")
    assert len(hangup) == 1 and abs(hangup[0]["at_s"] - (12.0 - 1.2)) < 0.3
    ended = result.of_type("call.ended")
    assert len(ended) == 1 and abs(ended[0]["duration_s"] - 10.8) < 0.3
    assert result.record(ended[0]["call_id"])["end_reason"] == "far_end_hangup"


def test_unanswered_outbound_call_is_marked_unanswered(simulate, tmp_path):
    line = Line(30)
    line.put(2.0, gen.dtmf_sequence("117", level=-8.0, duration=0.08, gap=0.08))
    line.tone(3.0, "JP", "ringback", 20.0)
    audio = line.write(tmp_path / "line1.wav")
    result = simulate([{"line": 1, "audio": audio, "events": [(1.0, "hook", "off"), (22.0, "hook", "on")]}])
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["end_reason"] == "unanswered" and record["dialed_number"] == "117"
    assert result.of_type("announcement.played") == [], "nobody answered: nobody to notify"


def test_dtmf_control_codes_pause_resume_and_mark_and_are_logged(simulate, tmp_path):
    line = Line(40).speech(2.0, 3.0)
    line.put(8.0, gen.dtmf_sequence("**1", level=-8.0, duration=0.08, gap=0.08))
    line.put(14.0, gen.dtmf_sequence("**1", level=-8.0, duration=0.08, gap=0.08))
    line.put(18.0, gen.dtmf_sequence("**2", level=-8.0, duration=0.08, gap=0.08))
    audio = line.write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (1.2, "hook", "off"), (25.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}],
                      config="[signals]\ndtmf_control = true\n")
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert [c["action"] for c in record["control_codes"]] == ["pause", "resume", "mark"]
    assert len(record["pauses"]) == 1 and record["pauses"][0]["end_s"] > record["pauses"][0]["start_s"]
    assert "dtmf-mark" in record["tags"]
    recorded, _ = soundfile.read(str(result.data / record["recording"]["path"]), dtype="int16")
    pause = record["pauses"][0]
    inside = recorded[int((1.0 + pause["start_s"] + 0.1) * RATE): int((1.0 + pause["end_s"] - 0.1) * RATE)]
    assert not inside.any(), "paused audio is not recorded"


def test_dtmf_control_codes_are_off_by_default(simulate, tmp_path):
    line = Line(20).put(5.0, gen.dtmf_sequence("**1", level=-8.0, duration=0.08, gap=0.08))
    audio = line.write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (1.2, "hook", "off"), (12.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}])
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert record["pauses"] == [] and record["control_codes"] == []
    assert [d["digit"] for d in record["digits"]] == ["*", "*", "1"]


def test_after_a_far_end_hangup_a_flash_starts_a_new_recorded_call(simulate, tmp_path):
    line = Line(45).speech(1.5, 10.0)
    line.tone(12.0, "JP", "busy", 6.0)
    line.speech(20.0, 15.0)
    audio = line.write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (1.2, "hook", "off"),
              (19.0, "hook", "on"), (19.5, "hook", "off"),          # a flash: the office goes on
              (36.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}])
    started = result.of_type("call.started")
    assert len(started) == 2, [e["type"] for e in result.events]
    ended = {e["call_id"]: e for e in result.of_type("call.ended")}
    second = ended[started[1]["call_id"]]
    assert second["status"] == "complete" and abs(second["duration_s"] - 16.5) < 0.1


def test_control_codes_leave_the_digits_of_the_call_in_the_record(simulate, tmp_path):
    line = Line(20).put(4.0, gen.dtmf_sequence("1234**2", level=-8.0, duration=0.08, gap=0.08))
    audio = line.write(tmp_path / "line1.wav")
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (1.2, "hook", "off"), (12.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": audio, "events": events}], config="[signals]\ndtmf_control = true\n")
    record = result.record(result.of_type("call.started")[0]["call_id"])
    assert "".join(d["digit"] for d in record["digits"]) == "1234**2"
    assert [c["action"] for c in record["control_codes"]] == ["mark"]

