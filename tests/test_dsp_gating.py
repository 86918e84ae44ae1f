"""The detectors' quiet-audio shortcuts change no result: gated and ungated detectors, fed the same
line audio in the same periods, report the same detections at the same times.

The audio is an idle line's day in miniature: a quiet noise floor (what the shortcuts skip), caller
ID of each standard between rings, DTMF CLIP, digits, ringback, busy and dial tone with their
silences, speech-like noise, and signals that start and stop inside a batch or a period.
"""

from __future__ import annotations

import numpy as np
import pytest
from callrec.dsp import callerid as C
from callrec.dsp import gen
from callrec.dsp.pipeline import LineDsp

RATE = 8000


def _floor(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return gen.awgn(-70.0, int(seconds * RATE), rng)


def _line(region: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    standard = {"US": "bell202", "EU": "v23", "JP": "ntt"}[region]
    message = (C.ntt_message([(0x02, b"0312345678")]) if standard == "ntt"
               else C.mdmf_message([(0x02, b"2125551234"), (0x07, b"ACME")]))
    ringback = {"US": (440.0, 480.0), "EU": (425.0,), "JP": (400.0,)}[region]
    parts = [
        _floor(1.013, rng), C.signal(message, standard), _floor(0.77, rng),
        gen.dtmf_sequence(C.dtmf_clip_string("5551234"), -12, 0.07, 0.07), _floor(0.9, rng),
        gen.dtmf_sequence("19#*0", -8, 0.06, 0.06), _floor(0.4, rng),
        gen.cadence(ringback, -18, (1.0, 3.0) if region == "US" else (1.0, 2.0), 9.2), _floor(0.3, rng),
        gen.awgn(-20.0, int(2.5 * RATE), rng),    # speech-level noise: nothing to find, everything analysed
        gen.cadence((480.0, 620.0) if region == "US" else (425.0,) if region == "EU" else (400.0,), -20,
                    (0.5, 0.5), 4.3), _floor(0.61, rng),
        gen.cadence((350.0, 440.0) if region == "US" else (425.0,) if region == "EU" else (400.0,), -16, (), 3.1),
        _floor(1.5, rng), gen.dtmf_sequence("7", -30, 0.05, 0.05), _floor(2.0, rng),
    ]
    return gen.saturate(np.concatenate(parts)).astype(np.int16)


def _detect(x: np.ndarray, region: str, gate: bool, period: int) -> list[tuple]:
    dsp = LineDsp(region, gate=gate)
    out = []
    for i in range(0, len(x), period):
        out += dsp.feed(x[i:i + period], i / RATE)
    out += dsp.flush()
    return [(d.type, round(d.start, 9), None if d.end is None else round(d.end, 9), sorted(d.fields.items()))
            for d in out]


@pytest.mark.parametrize("region", ["US", "EU", "JP"])
@pytest.mark.parametrize("period", [160, 333])
def test_the_quiet_shortcuts_change_no_detection_and_no_time(region: str, period: int, monkeypatch) -> None:
    from callrec.dsp.dtmf import DtmfDetector
    from callrec.dsp.fsk import FskReceiver

    taken = {"dtmf": 0, "fsk": 0}
    for name, cls, method in (("dtmf", DtmfDetector, "_quiet"), ("fsk", FskReceiver, "_no_carrier")):
        original = getattr(cls, method)

        def spy(self, *args, _original=original, _name=name):
            skipped = _original(self, *args)
            taken[_name] += skipped is not False   # `_quiet` says whether it skipped; `_no_carrier` runs only then
            return skipped
        monkeypatch.setattr(cls, method, spy)
    x = _line(region, seed=len(region) + period)
    gated, full = _detect(x, region, True, period), _detect(x, region, False, period)
    assert gated == full
    assert taken["dtmf"] > 50 and taken["fsk"] > 50, taken   # the shortcuts were taken, often
    kinds = {d[0] for d in full}
    assert {"caller_id", "dtmf", "tone"} <= kinds, kinds   # the audio exercised every detector
