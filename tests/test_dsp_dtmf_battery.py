"""The spandsp dtmf_rx_tests battery, each test with its own pass criterion, on linear audio and
after µ-law and A-law round trips; plus talk-off on the free speech-and-music corpus."""

import os
import shutil

import pytest
from callrec.dsp import LineDsp, battery
from callrec.dsp.dtmf import ATT, DtmfDetector

LAWS = [None, "ulaw", "alaw"]


def ours(x) -> str:
    det = DtmfDetector(ATT)
    out = []
    for i in range(0, len(x), 160):
        out += det.feed(x[i:i + 160], i / 8000)
    return "".join(d.fields["digit"] for d in out + det.flush())


@pytest.mark.parametrize("law", LAWS)
def test_decode_check_hears_each_of_160_bursts_exactly_once(law):
    r = battery.decode(ours, law)
    assert r.passed, r


@pytest.mark.parametrize("law", LAWS)
def test_recognition_bandwidth_is_between_3_and_15_percent_for_every_tone(law):
    for r in battery.bandwidth(ours, law):
        assert r.passed, r
        # and inside Q.24: accept 1.8 % (NTT) either way, reject 3.0 % (NTT) either way
        assert 1.8 <= r.extra["max_pos_pct"] < 3.0 and 1.8 <= r.extra["max_neg_pct"] < 3.0, r


@pytest.mark.parametrize("law", LAWS)
def test_twist_of_8_db_low_louder_and_4_db_high_louder_is_accepted(law):
    for r in battery.twist(ours, law):
        assert r.passed, r


@pytest.mark.parametrize("law", LAWS)
def test_dynamic_range_is_at_least_35_db(law):
    r = battery.dynamic_range(ours, law)
    assert r.passed, r


@pytest.mark.parametrize("law", LAWS)
def test_guard_time_lies_between_the_q24_reject_and_accept_durations(law):
    r = battery.guard_time(ours, law)      # spandsp reports it only; Q.24 bounds it: 24 < guard < 40 ms
    assert 24 < r.figure < 40, r


@pytest.mark.parametrize("law", LAWS)
def test_all_1000_bursts_are_heard_at_26_db_signal_to_noise_or_worse(law):
    r = battery.signal_to_noise(ours, law)
    assert r.passed, r


@pytest.mark.parametrize("law", LAWS)
def test_digits_are_heard_over_dial_tone_up_to_10_db_louder_than_required(law):
    r = battery.dial_tone(ours, law)
    assert r.passed, r


@pytest.mark.parametrize("law", LAWS)
def test_q24_frequency_duration_interruption_and_pause_limits_over_all_16_digits(law):
    for r in battery.q24(ours, law):
        assert r.passed, r


CORPUS = battery.talkoff_files()
needs_corpus = pytest.mark.skipif(not CORPUS, reason="apt-get install asterisk-core-sounds-en-wav "
                                                     "asterisk-moh-opsound-wav")


@needs_corpus
def test_no_talk_off_on_asterisk_prompts_and_music_on_hold():
    r = battery.talk_off(ours, None, CORPUS)
    assert r.extra["minutes"] > 40 and r.passed, r


@needs_corpus
def test_no_talk_off_after_ulaw_at_a_loud_minus_5_dbm0():
    r = battery.talk_off(ours, "ulaw", CORPUS, level_dbm0=-5.0)
    assert r.passed, r


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_no_talk_off_on_espeak_english_and_japanese(tmp_path):
    files = battery.espeak_corpus(str(tmp_path))
    for law, level in ((None, None), ("ulaw", -10.0), ("alaw", -20.0)):
        r = battery.talk_off(ours, law, files, level_dbm0=level)
        assert r.passed, (law, r)


@needs_corpus
def test_speech_and_music_give_no_caller_id_and_no_dtmf_on_any_region():
    import soundfile as sf

    for region in ("JP", "US", "EU"):
        found = []
        for path in CORPUS[::7]:
            x, _ = sf.read(path, dtype="int16")
            dsp = LineDsp(region)
            for i in range(0, len(x), 160):
                found += dsp.feed(x[i:i + 160], i / 8000)
            found += dsp.flush()
        assert [d for d in found if d.type in ("dtmf", "caller_id")] == [], region


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("CALLREC_SOAK") != "1", reason="set CALLREC_SOAK=1")
@needs_corpus
@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("level", [-30.0, -20.0, -10.0, -5.0])
def test_soak_no_talk_off_at_every_level_and_law(law, level):
    r = battery.talk_off(ours, law, CORPUS, level_dbm0=level)
    assert r.passed, r
