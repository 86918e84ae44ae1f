"""The DTMF receiver against each ITU-T Q.24 limit, AT&T and NTT columns (docs/dsp.md)."""

import numpy as np
import pytest
from callrec.dsp import g711, gen
from callrec.dsp.dtmf import ATT, NTT, DtmfDetector, DtmfProfile


def heard(signal: np.ndarray, profile: DtmfProfile = ATT, chunk: int = 160, law: str | None = None):
    det = DtmfDetector(profile)
    x = g711.round_trip(gen.saturate(signal), law)
    out = []
    for i in range(0, len(x), chunk):
        out += det.feed(x[i:i + chunk], i / 8000)
    return out + det.flush()


def digits(signal: np.ndarray, **kw) -> str:
    return "".join(d.fields["digit"] for d in heard(signal, **kw))


PAD = np.zeros(400)


@pytest.mark.parametrize("profile,accept", [(ATT, 0.015), (NTT, 0.018)])
@pytest.mark.parametrize("group", ["low", "high"])
def test_every_tone_within_the_accept_deviation_is_heard(profile, accept, group):
    for digit in gen.KEYPAD:
        for sign in (1, -1):
            sig = gen.dtmf(digit, -10, 0.05, 0.05, **{f"{group}_dev": sign * accept})
            assert digits(sig, profile=profile) == digit, (digit, sign)


@pytest.mark.parametrize("profile,reject", [(ATT, 0.035), (NTT, 0.030)])
@pytest.mark.parametrize("group", ["low", "high"])
def test_every_tone_beyond_the_reject_deviation_is_refused(profile, reject, group):
    for digit in gen.KEYPAD:
        for sign in (1, -1):
            sig = gen.dtmf(digit, -10, 0.05, 0.05, **{f"{group}_dev": sign * reject})
            assert digits(sig, profile=profile) == "", (digit, sign)


@pytest.mark.parametrize("profile", [ATT, NTT])
def test_low_group_8_db_louder_and_high_group_6_db_louder_are_both_accepted(profile):
    for digit in "159D*":
        assert digits(gen.dtmf(digit, low_level=-6, high_level=-14), profile=profile) == digit
        assert digits(gen.dtmf(digit, low_level=-12, high_level=-6), profile=profile) == digit


def test_twist_beyond_the_limits_is_refused():
    assert digits(gen.dtmf("5", low_level=-4, high_level=-15)) == ""   # 11 dB, low louder
    assert digits(gen.dtmf("5", low_level=-14, high_level=-4)) == ""   # 10 dB, high louder


@pytest.mark.parametrize("law", [None, "ulaw", "alaw"])
def test_a_40_ms_tone_is_heard_at_every_alignment_and_a_24_ms_tone_never(law):
    for offset in range(0, 160, 7):
        lead = np.zeros(offset)
        assert digits(np.concatenate([lead, gen.dtmf("8", -10, 0.040, 0.1)]), law=law) == "8", offset
        assert digits(np.concatenate([lead, gen.dtmf("8", -10, 0.024, 0.1)]), law=law) == "", offset


def test_a_10_ms_interruption_is_bridged_into_one_digit():
    for offset in range(0, 102, 17):
        sig = np.concatenate([np.zeros(offset), gen.dtmf("3", -10, 0.05, 0.010), gen.dtmf("3", -10, 0.05, 0.1)])
        assert digits(sig) == "3", offset


@pytest.mark.parametrize("pause", [0.030, 0.040])
def test_a_30_ms_pause_separates_two_equal_digits(pause):
    for offset in range(0, 102, 17):
        sig = np.concatenate([np.zeros(offset), gen.dtmf("0", -10, 0.04, pause), gen.dtmf("0", -10, 0.04, 0.1)])
        assert digits(sig) == "00", offset


def test_fastest_ntt_digit_rate_120_ms_per_digit_is_followed():
    seq = gen.dtmf_sequence("0123456789*#", -10, 0.05, 0.03)   # 80 ms per digit, faster than both columns
    assert digits(seq, profile=NTT) == "0123456789*#"


@pytest.mark.parametrize("profile,accept,reject", [(ATT, -25.0, -55.0), (NTT, -24.0, -29.0)])
def test_levels_follow_the_columns_accept_and_reject_limits(profile, accept, reject):
    assert digits(gen.dtmf("2", accept), profile=profile) == "2"
    assert digits(gen.dtmf("2", -3.0), profile=profile) == "2"
    assert digits(gen.dtmf("2", reject), profile=profile) == ""


def test_att_profile_also_hears_0_dbm0():
    assert digits(gen.dtmf("A", 0.0)) == "A"


def test_reported_times_are_those_of_the_tone_within_a_few_ms():
    sig = np.concatenate([np.zeros(int(1.23 * 8000)), gen.dtmf("5", -10, 0.08, 0.1)])
    (d,) = heard(sig)
    assert d.as_dict()["digit"] == "5"
    assert abs(d.start - 1.23) < 0.006 and abs(d.end - 1.31) < 0.006


def test_result_does_not_depend_on_period_size():
    seq = gen.dtmf_sequence("147*2580369#ABCD", -12, 0.045, 0.04)
    ref = [(d.fields["digit"], round(d.start, 4)) for d in heard(seq, chunk=160)]
    for chunk in (1, 37, 51, 102, 1000):
        assert [(d.fields["digit"], round(d.start, 4)) for d in heard(seq, chunk=chunk)] == ref


def test_t0_of_the_period_sets_the_reported_time():
    det = DtmfDetector()
    x = gen.saturate(gen.dtmf("9", -10, 0.06, 0.1))
    out = []
    for i in range(0, len(x), 160):
        out += det.feed(x[i:i + 160], 100.0 + i / 8000)
    assert len(out) == 1 and 100.0 <= out[0].start < 100.01
