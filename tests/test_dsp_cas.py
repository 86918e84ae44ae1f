"""The CAS detector and the call-state gating of a line's detectors (callrec.dsp.cas, pipeline).

Off-hook (type II) caller ID is announced by the CPE alerting signal, 2130 + 2750 Hz for about
80 ms; in a call the FSK receiver listens only after one. On-hook the call-progress detectors
are off (no tone means anything there) and caller ID runs as before.
"""

from __future__ import annotations

import numpy as np
import pytest
from callrec.config import PROFILES
from callrec.dsp import LineDsp, callerid, gen
from callrec.dsp.cas import CasDetector

RATE = 8000
MESSAGE = callerid.mdmf_message([(0x01, b"12031015"), (0x02, b"2125550199"), (0x07, b"DOE JANE")])


def noise(seconds: float, seed: int = 3) -> np.ndarray:
    return gen.awgn(-60, int(seconds * RATE), np.random.default_rng(seed))


def put(x: np.ndarray, at: float, samples: np.ndarray) -> np.ndarray:
    start = int(at * RATE)
    x[start:start + len(samples)] += samples[: len(x) - start]
    return x


def cas(seconds: float = 0.08, level: float = -20.0, dev: float = 0.0) -> np.ndarray:
    return gen.tones([2130 * (1 + dev), 2750 * (1 - dev)], [level, level], int(seconds * RATE))


def periods(x: np.ndarray, size: int = 160) -> list[tuple[np.ndarray, float]]:
    pcm = gen.saturate(x)
    return [(pcm[k:k + size], k / RATE) for k in range(0, len(pcm), size)]


def detect_cas(x: np.ndarray) -> list:
    det = CasDetector()
    out = []
    for block, t0 in periods(x, 333):
        out += det.feed(block, t0)
    return out + det.flush()


@pytest.mark.parametrize(("seconds", "level", "dev"), [(0.08, -20.0, 0.0), (0.075, -32.0, 0.005),
                                                      (0.11, -15.0, -0.005)])
def test_a_cas_is_detected_once_with_its_time(seconds, level, dev):
    found = detect_cas(put(noise(2), 0.7, cas(seconds, level, dev)))
    assert len(found) == 1
    assert found[0].fields["kind"] == "cas"
    assert abs(found[0].start - 0.7) <= 0.011 and abs(found[0].end - (0.7 + seconds)) <= 0.011


@pytest.mark.parametrize("signal", [
    gen.tones([2130], [-20.0], 640),                      # one of the two tones
    gen.tones([2130, 2750], [-20.0, -20.0], 240),         # 30 ms: too short
    gen.tones([2130, 2750], [-20.0, -20.0], 2400),        # 300 ms: a steady tone, not an alert
    gen.tones([2130, 2750], [-50.0, -50.0], 640),         # below the level
    gen.dtmf_sequence("0123456789*#ABCD", -10.0, 0.08, 0.08),
])
def test_what_is_not_a_cas_is_not_reported(signal):
    assert detect_cas(put(noise(4), 0.5, signal)) == []


def test_speech_and_call_progress_tones_hold_no_cas():
    rng = np.random.default_rng(11)
    n = 20 * RATE
    envelope = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1), 1600)[:n]
    x = noise(24) + np.concatenate([gen.awgn(-15, n, rng) * envelope, np.zeros(4 * RATE)])
    for region in ("US", "EU", "JP"):
        plan = PROFILES[region].tones["busy"]
        x = put(x, 20.0, gen.cadence(plan.freqs, -10.0, plan.cadence, 4.0, plan.am_hz))
        assert detect_cas(x) == []


def line_run(x: np.ndarray, in_call: bool | None, size: int = 160) -> tuple[list, LineDsp]:
    dsp = LineDsp("US")
    out = []
    for block, t0 in periods(x, size):
        dsp.in_call = in_call
        out += dsp.feed(block, t0)
    return out + dsp.flush(), dsp


def type_ii(x: np.ndarray, at: float, *, alert: bool) -> np.ndarray:
    if alert:
        put(x, at, cas())
    return put(x, at + 0.25, callerid.signal(MESSAGE, "bell202", -13.5, seizure_bits=0, mark_bits=80))


@pytest.mark.parametrize("size", [160, 8000])   # 20 ms periods, and 1 s ones (alert and message in one batch)
def test_in_a_call_type_ii_caller_id_after_a_cas_is_decoded(size):
    found, dsp = line_run(type_ii(noise(12), 6.0, alert=True), in_call=True, size=size)
    cid = [d for d in found if d.type == "caller_id"]
    assert len(cid) == 1 and cid[0].fields["valid"] and cid[0].fields["number"] == "2125550199"
    assert 6.24 <= cid[0].start < 6.4
    assert [d.fields["kind"] for d in found if d.type == "tone"] == ["cas"]
    # the receiver ran in the window only: 3 s of a 12 s call, in 60 ms batches
    assert dsp.runs["caller_id"] <= (3.0 + 0.5) / 0.06


def test_in_a_call_fsk_without_a_cas_is_not_caller_id():
    found, _ = line_run(type_ii(noise(12), 6.0, alert=False), in_call=True)
    assert [d for d in found if d.type == "caller_id"] == []


def test_unknown_call_state_runs_every_detector_as_before():
    found, dsp = line_run(type_ii(noise(12), 6.0, alert=False), in_call=None)
    assert [d.fields["number"] for d in found if d.type == "caller_id"] == ["2125550199"]
    assert dsp.runs["caller_id"] == dsp.runs["tones"] == 200


def test_on_hook_caller_id_is_decoded_and_call_progress_tones_are_not_looked_for():
    plan = PROFILES["US"].tones["busy"]
    x = put(noise(12), 1.0, callerid.signal(MESSAGE, "bell202"))
    x = put(x, 5.0, gen.cadence(plan.freqs, -10.0, plan.cadence, 5.0, plan.am_hz))
    found, dsp = line_run(x, in_call=False)
    assert [d.fields["number"] for d in found if d.type == "caller_id"] == ["2125550199"]
    assert [d for d in found if d.type == "tone"] == [] and dsp.runs["tones"] == 0


def test_a_call_starting_mid_stream_hears_its_tones_from_the_start():
    plan = PROFILES["US"].tones["busy"]
    x = put(noise(12), 4.0, gen.cadence(plan.freqs, -10.0, plan.cadence, 6.0, plan.am_hz))
    dsp = LineDsp("US")
    found = []
    for block, t0 in periods(x):
        dsp.in_call = t0 >= 3.0
        found += dsp.feed(block, t0)
    found += dsp.flush()
    busy = [d for d in found if d.type == "tone" and d.fields["kind"] == "busy"]
    assert busy and busy[0].fields["state"] == "on" and abs(busy[0].start - 4.0) < 0.1
