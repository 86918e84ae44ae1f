"""Call-progress tones per region (plans from callrec.regions): kind, start and end."""

import numpy as np
import pytest
from callrec.config import PROFILES
from callrec.dsp import g711, gen
from callrec.dsp.tones import ToneDetector


def tones(signal: np.ndarray, region: str, law: str | None = None, final_only: bool = True):
    det = ToneDetector(region)
    x = g711.round_trip(gen.saturate(signal), law)
    out = []
    for i in range(0, len(x), 160):
        out += det.feed(x[i:i + 160], i / 8000)
    out += det.flush()
    return [d for d in out if d.end is not None] if final_only else out


CASES = [(region, kind) for region, p in PROFILES.items() for kind in p.tones]


@pytest.mark.parametrize("region,kind", CASES)
def test_each_regional_tone_is_reported_with_its_kind_and_times(region, kind):
    tone = PROFILES[region].tones[kind]
    length = 14.0 if kind == "ringback" else 6.0
    sig = np.concatenate([np.zeros(8000), gen.cadence(tone.freqs, -22, tone.cadence, length, tone.am_hz),
                          np.zeros(6 * 8000)])
    (d,) = tones(sig, region, law="ulaw" if region != "EU" else "alaw")
    expected = "busy" if (region, kind) == ("JP", "reorder") else kind   # same signal in Japan
    assert d.fields["kind"] == expected
    assert abs(d.start - 1.0) < 0.03
    if tone.cadence:
        period = sum(tone.cadence[:2])
        last_on = 1.0 + (length // period) * period
        last_end = min(last_on + tone.cadence[0], 1.0 + length) if last_on < 1.0 + length else \
            1.0 + length - tone.cadence[1]
        assert abs(d.end - last_end) < 0.05
    else:
        assert abs(d.end - (1.0 + length)) < 0.03


def test_busy_is_announced_while_it_goes_on():
    tone = PROFILES["JP"].tones["busy"]
    sig = gen.cadence(tone.freqs, -20, tone.cadence, 3.0)
    out = tones(sig, "JP", final_only=False)
    assert out[0].end is None and out[0].fields == {"kind": "busy", "state": "on"}
    assert out[-1].end is not None


def test_a_wrong_cadence_is_not_reported():
    sig = gen.cadence((480.0, 620.0), -20, (0.8, 0.8), 8.0)    # neither busy nor reorder
    assert tones(sig, "US") == []


def test_a_foreign_dial_tone_is_not_taken_for_the_local_one():
    sig = gen.cadence((350.0, 440.0), -20, (), 4.0)             # US dial tone on a Japanese line
    assert tones(sig, "JP") == []


def test_a_short_steady_tone_is_not_dial_tone():
    sig = np.concatenate([gen.cadence((425.0,), -20, (), 0.9), np.zeros(8000)])
    assert tones(sig, "EU") == []


def test_tone_under_speech_level_noise_is_still_found():
    tone = PROFILES["US"].tones["busy"]
    sig = gen.cadence(tone.freqs, -20, tone.cadence, 4.0) + gen.awgn(-40, 32000, np.random.default_rng(1))
    assert [d.fields["kind"] for d in tones(sig, "US")] == ["busy"]
