"""G.711 codecs: bit-exact with the reference tables, so battery results after a round trip mean
what they say."""

import warnings

import numpy as np
import pytest
from callrec.dsp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_encode_and_decode_match_the_reference_for_every_sample():
    assert (np.frombuffer(audioop.lin2ulaw(ALL.tobytes(), 2), np.uint8) == g711.ulaw_encode(ALL)).all()
    ref = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), np.int16)
    assert (ref == g711.ulaw_decode(np.arange(256))).all()


def test_alaw_encode_and_decode_match_the_reference_for_every_sample():
    assert (np.frombuffer(audioop.lin2alaw(ALL.tobytes(), 2), np.uint8) == g711.alaw_encode(ALL)).all()
    ref = np.frombuffer(audioop.alaw2lin(bytes(range(256)), 2), np.int16)
    assert (ref == g711.alaw_decode(np.arange(256))).all()


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_round_trip_keeps_a_speech_level_sine_within_g711_quantisation_noise(law):
    t = np.arange(8000) / 8000
    x = (3000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    y = g711.round_trip(x, law).astype(float)
    snr = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean((y - x) ** 2))
    assert snr > 33


def test_unknown_law_is_an_error():
    with pytest.raises(ValueError):
        g711.round_trip(ALL, "g726")
