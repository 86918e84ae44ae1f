"""`callrec analyze`: any WAV in, one JSON line per detection out, in time order; bad input exits 2."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf
import soxr
from callrec.dsp import callerid as C
from callrec.dsp import gen


def silence(s: float) -> np.ndarray:
    return np.zeros(int(s * 8000))


NTT = C.signal(C.ntt_message([(0x02, b"0312345678")]), "ntt")
DIGIT_AT = 0.5 + len(NTT) / 8000 + 1.0


def scenario() -> np.ndarray:
    return np.concatenate([silence(0.5), NTT, silence(1.0),
                           gen.dtmf_sequence("5", -10, 0.08, 0.05), silence(0.6),
                           gen.cadence((400.0,), -20, (0.5, 0.5), 4.0), silence(1.0)])


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callrec.dsp.analyze", *args], capture_output=True, text=True,
                          timeout=120)


def test_json_lines_for_a_44k_stereo_24_bit_file_in_time_order(tmp_path):
    x = gen.saturate(scenario()).astype(np.float64) / 32768
    stereo = np.stack([np.zeros_like(x), x], axis=1)
    path = tmp_path / "call.wav"
    sf.write(path, soxr.resample(stereo, 8000, 44100), 44100, subtype="PCM_24")
    res = analyze(str(path), "--region", "JP", "--json", "--channel", "1")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [d["type"] for d in lines] == ["caller_id", "dtmf", "tone"]
    cid, digit, tone = lines
    assert list(cid)[:7] == ["type", "standard", "valid", "number", "name", "reason", "start"]
    assert (cid["standard"], cid["valid"], cid["number"], cid["name"], cid["reason"]) == \
        ("ntt", True, "0312345678", None, None)
    assert abs(cid["start"] - 0.5) < 0.01
    assert list(digit)[:4] == ["type", "digit", "start", "end"] and digit["digit"] == "5"
    assert abs(digit["start"] - DIGIT_AT) < 0.006 and abs(digit["end"] - DIGIT_AT - 0.08) < 0.006
    assert list(tone)[:4] == ["type", "kind", "start", "end"] and tone["kind"] == "busy"
    assert abs(tone["end"] - (tone["start"] + 3.5)) < 0.06


def test_channel_0_of_that_file_is_silent(tmp_path):
    x = gen.saturate(scenario()).astype(np.float64) / 32768
    path = tmp_path / "call.wav"
    sf.write(path, np.stack([np.zeros_like(x), x], axis=1), 8000, subtype="PCM_16")
    res = analyze(str(path), "--json")
    assert res.returncode == 0 and res.stdout == ""


def test_table_output_names_each_detection(tmp_path):
    path = tmp_path / "call.wav"
    sf.write(path, gen.saturate(scenario()), 8000, subtype="PCM_16")
    res = analyze(str(path), "--region", "JP")
    assert res.returncode == 0
    assert "0312345678" in res.stdout and "DTMF      5" in res.stdout and "busy" in res.stdout


def test_unreadable_file_is_a_clear_error_and_exit_2(tmp_path):
    bad = tmp_path / "not.wav"
    bad.write_text("hello")
    res = analyze(str(bad))
    assert res.returncode == 2 and "cannot read" in res.stderr and res.stdout == ""
    res = analyze(str(tmp_path / "missing.wav"))
    assert res.returncode == 2


def test_missing_channel_is_exit_2(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, np.zeros(800, dtype=np.int16), 8000)
    res = analyze(str(path), "--channel", "3")
    assert res.returncode == 2 and "channel" in res.stderr


def test_register_adds_the_analyze_subcommand():
    import argparse

    from callrec.dsp import analyze as mod

    parser = argparse.ArgumentParser()
    mod.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", "x.wav", "--region", "US", "--json"])
    assert args.func is mod.run and args.region == "US" and args.json and args.channel == 0
