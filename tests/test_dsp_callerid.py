"""Caller ID: Bell 202 SDMF/MDMF, ETSI V.23, NTT Number Display and DTMF CLIP, and the rule that a
message failing its checksum or CRC is reported invalid, never as a (wrong) number."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr
from callrec.dsp import LineDsp, g711, gen
from callrec.dsp import callerid as C


def ids(signal: np.ndarray, law: str | None = None, noise_dbm0: float | None = None) -> list[dict]:
    if noise_dbm0 is not None:
        signal = signal + gen.awgn(noise_dbm0, len(signal), np.random.default_rng(7))
    x = g711.round_trip(gen.saturate(signal), law)
    det = C.CallerIdDetector()
    out = []
    for i in range(0, len(x), 160):
        out += det.feed(x[i:i + 160], i / 8000)
    return [d.as_dict() for d in out + det.flush()]


def burst(message: bytes, standard: str, **kw) -> np.ndarray:
    return np.concatenate([np.zeros(4000), C.signal(message, standard, **kw), np.zeros(4000)])


MDMF = C.mdmf_message([(0x01, b"03141530"), (0x02, b"0312345678"), (0x07, b"TANAKA TARO")])


@pytest.mark.parametrize("law", [None, "ulaw", "alaw"])
def test_bell202_sdmf_gives_number_and_date(law):
    (d,) = ids(burst(C.sdmf_message("03141530", "0312345678"), "bell202"), law)
    assert d["type"] == "caller_id" and d["standard"] == "bell202" and d["valid"] is True
    assert d["number"] == "0312345678" and d["datetime"] == "03141530" and d["reason"] is None
    assert abs(d["start"] - 0.5) < 0.01


@pytest.mark.parametrize("letter,reason", [("P", "private"), ("O", "unavailable")])
def test_bell202_sdmf_reason_instead_of_number(letter, reason):
    (d,) = ids(burst(C.sdmf_message("12312359", reason=letter), "bell202"))
    assert d["valid"] and d["number"] is None and d["reason"] == reason


@pytest.mark.parametrize("law", [None, "ulaw"])
def test_bell202_mdmf_gives_number_name_and_date(law):
    (d,) = ids(burst(MDMF, "bell202"), law)
    assert (d["standard"], d["number"], d["name"], d["datetime"]) == ("bell202", "0312345678", "TANAKA TARO",
                                                                       "03141530")


def test_mdmf_private_number_and_unavailable_name():
    msg = C.mdmf_message([(0x01, b"01010000"), (0x04, b"P"), (0x08, b"O")])
    (d,) = ids(burst(msg, "bell202"))
    assert d["valid"] and d["number"] is None and d["reason"] == "private" and d["name_reason"] == "unavailable"


@pytest.mark.parametrize("law", [None, "alaw"])
def test_etsi_v23_clip_is_told_apart_from_bell202(law):
    (d,) = ids(burst(MDMF, "etsi"), law)
    assert d["standard"] == "etsi" and d["valid"] and d["number"] == "0312345678" and d["name"] == "TANAKA TARO"


def test_etsi_after_line_reversal_with_only_80_mark_bits():
    (d,) = ids(burst(C.mdmf_message([(0x02, b"4930123456")]), "etsi", seizure_bits=0, mark_bits=80))
    assert d["standard"] == "etsi" and d["number"] == "4930123456"


@pytest.mark.parametrize("law", [None, "ulaw"])
def test_ntt_number_display_gives_number(law):
    (d,) = ids(burst(C.ntt_message([(0x02, b"0312345678")]), "ntt"), law)
    assert d["standard"] == "ntt" and d["valid"] and d["number"] == "0312345678"


@pytest.mark.parametrize("letter,reason", [("P", "private"), ("O", "unavailable"), ("C", "payphone"),
                                           ("S", "service_conflict")])
def test_ntt_reasons_for_no_number(letter, reason):
    (d,) = ids(burst(C.ntt_message([(0x04, letter.encode())]), "ntt"))
    assert d["valid"] and d["number"] is None and d["reason"] == reason


def test_ntt_frame_with_a_dle_byte_in_the_data_is_unstuffed():
    number = b"0901234567890123"   # 16 digits: the parameter length byte is 0x10 = DLE
    (d,) = ids(burst(C.ntt_message([(0x02, number)]), "ntt"))
    assert d["valid"] and d["number"] == number.decode()


def test_crc_16_kermit_check_value():
    assert C.crc16_kermit(b"123456789") == 0x2189


def test_bell_checksum_failure_is_invalid_without_number():
    bad = bytearray(MDMF)
    bad[12] ^= 0x01            # one digit of the number changed
    (d,) = ids(burst(bytes(bad), "bell202"))
    assert d["valid"] is False and d["number"] is None and d["name"] is None and d["reason"] is None


def test_ntt_crc_failure_is_invalid_without_number():
    bad = bytearray(C.ntt_message([(0x02, b"0312345678")]))
    bad[-1] ^= 0x40
    (d,) = ids(burst(bytes(bad), "ntt"))
    assert d["standard"] == "ntt" and d["valid"] is False and d["number"] is None


def test_ntt_data_corruption_with_good_parity_is_caught_by_the_crc():
    good = C.ntt_message([(0x02, b"0312345678")])
    bad = bytearray(good)
    bad[9] = C._even_parity(ord("9"))     # '0' → '9', parity still right
    (d,) = ids(burst(bytes(bad), "ntt"))
    assert d["valid"] is False and d["number"] is None


def test_message_cut_short_is_invalid():
    sig = C.signal(MDMF, "bell202")
    (d,) = ids(np.concatenate([np.zeros(4000), sig[: len(sig) - 1500], np.zeros(8000)]))
    assert d["valid"] is False and d["number"] is None


def test_heavy_noise_never_yields_a_wrong_number():
    for seed_level in (-20.0, -18.0, -16.0, -14.0):
        for d in ids(burst(MDMF, "bell202", level_dbm0=-13.5), noise_dbm0=seed_level):
            assert d["number"] in (None, "0312345678")


def test_weak_caller_id_at_minus_40_dbm0_is_read():
    (d,) = ids(burst(MDMF, "bell202", level_dbm0=-40))
    assert d["number"] == "0312345678"


@pytest.mark.skipif(shutil.which("minimodem") is None, reason="minimodem not installed")
def test_bell202_bytes_modulated_by_minimodem_are_read(tmp_path):
    out = tmp_path / "mm.wav"
    # At 8 kHz minimodem rounds a bit to 7 samples (1143 bit/s); 48 kHz gives exactly 40.
    subprocess.run(["minimodem", "--tx", "-R", "48000", "-f", str(out), "1200"], input=MDMF, check=True)
    data, rate = sf.read(out, dtype="float64")
    data = soxr.resample(data, rate, 8000)
    lead = C.signal(b"", "bell202")[: int(480 * 8000 / 1200)]   # seizure + marks
    sig = np.concatenate([np.zeros(4000), lead, data * 32768 * 0.3, gen.tones((1200.0,), (-13.5,), 400),
                          np.zeros(4000)])
    (d,) = ids(sig)
    assert d["valid"] and d["number"] == "0312345678"


@pytest.mark.parametrize("text,number,reason", [("A0312345678C", "0312345678", None),
                                                ("A0312345678#", "0312345678", None),
                                                ("D0312345678C", "0312345678", None),
                                                ("B00C", None, "unavailable"), ("B10C", None, "private"),
                                                ("D1#", None, "private"), ("D3#", None, "unavailable")])
def test_dtmf_clip_formats(text, number, reason):
    sig = np.concatenate([np.zeros(2000), gen.dtmf_sequence(text, -10, 0.06, 0.06), np.zeros(2000)])
    dsp = LineDsp("EU")
    x = gen.saturate(sig)
    found = []
    for i in range(0, len(x), 160):
        found += dsp.feed(x[i:i + 160], i / 8000)
    found = [d.as_dict() for d in found + dsp.flush() if d.type == "caller_id"]
    assert len(found) == 1
    (d,) = found
    assert d["standard"] == "dtmf" and d["valid"] and d["number"] == number and d["reason"] == reason


def test_dtmf_clip_with_redirecting_number():
    assert C.parse_dtmf_clip("A0312345678D0612345678C") == {
        "number": "0312345678", "name": None, "reason": None, "redirecting_number": "0612345678"}


def test_digits_typed_in_a_call_are_not_caller_id():
    assert C.parse_dtmf_clip("1234#") is None
