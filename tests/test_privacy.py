"""Encryption at rest with age: no plaintext audio on the disk, the stock `age` CLI decrypts, a
crash mid-call loses at most about a second and needs no key on the device (issue 11)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import callrec, noise_wav, scenario_toml

AGE = shutil.which("age")


def _office_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "office.key"
    out = callrec("keygen", "--out", str(key))
    assert out.returncode == 0, out.stderr
    recipient = out.stdout.strip()
    assert recipient.startswith("age1") and key.stat().st_mode & 0o077 == 0
    return key, recipient


def _encrypted_config(tmp_path: Path, recipient: str, extra: str = "") -> Path:
    config = tmp_path / "enc.toml"
    config.write_text(f'[privacy]\nrecipient = ["{recipient}"]\n{extra}')
    return config


def _one_call(tmp_path: Path, config: Path) -> tuple[Path, dict]:
    noise_wav(tmp_path / "line1.wav", 20, seed=7)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (1.0, "hook", "off"), (14.0, "hook", "on")]}]))
    data = tmp_path / "data"
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    listed = callrec("calls", "list", "--json", "--data", str(data)).stdout
    (record,) = [json.loads(line) for line in listed.splitlines()]
    return data, record


def _chunk_of(recording: Path, at_s: float = 11.0) -> bytes:
    """128 bytes of PCM the line carried (as recorded: the line's audio with what was played into
    it), from late in the call."""
    samples, rate = soundfile.read(str(recording), dtype="int16")
    at = int(at_s * rate)
    return np.asarray(samples[at:at + 64]).astype("<i2").tobytes()


def _files_holding(data: Path, chunk: bytes) -> list[Path]:
    return [path for path in data.rglob("*") if path.is_file() and chunk in path.read_bytes()]


def test_a_recipient_keeps_plaintext_audio_off_the_disk_and_the_stock_age_cli_decrypts(tmp_path):
    assert AGE, "the Debian package age is installed by .ci/install"
    key, recipient = _office_key(tmp_path)
    data, record = _one_call(tmp_path, _encrypted_config(tmp_path, recipient, '[storage]\nformat = "wav"\n'))
    audio = data / record["recording"]["path"]
    assert audio.name.endswith(".wav.age") and record["recording"]["encryption"] == "age"
    plain = tmp_path / "stock.wav"
    subprocess.run([AGE, "-d", "-i", str(key), "-o", str(plain), str(audio)], check=True)
    assert abs(soundfile.info(str(plain)).duration - 14.0) < 0.1, "the whole call, pre-roll included"
    chunk = _chunk_of(plain)
    assert chunk in plain.read_bytes()
    assert _files_holding(data, chunk) == [], "no plaintext PCM anywhere under the data dir"
    ours = tmp_path / "ours.wav"
    out = callrec("decrypt", "--identity", str(key), str(audio), "--out", str(ours))
    assert out.returncode == 0, out.stderr
    assert ours.read_bytes() == plain.read_bytes()
    verify = callrec("verify", "--data", str(data))
    assert verify.returncode == 0, verify.stdout   # the chain covers the ciphertext: no key needed


def test_without_a_recipient_the_same_search_finds_the_audio_and_check_config_says_so(tmp_path):
    config = tmp_path / "plain.toml"
    config.write_text('[storage]\nformat = "wav"\n')
    data, record = _one_call(tmp_path, config)
    recording = data / record["recording"]["path"]
    assert _files_holding(data, _chunk_of(recording)) == [recording]
    out = callrec("check-config", str(config))
    assert out.returncode == 0 and "UNENCRYPTED" in out.stdout


def test_a_bad_recipient_is_a_config_error_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[privacy]\nrecipient = "age1notakey"\n')
    out = callrec("check-config", str(config))
    assert out.returncode == 1 and "privacy.recipient" in out.stderr and "Traceback" not in out.stderr


def test_decrypt_with_the_wrong_identity_is_a_clear_error(tmp_path):
    _key, recipient = _office_key(tmp_path)
    data, record = _one_call(tmp_path, _encrypted_config(tmp_path, recipient))
    wrong = tmp_path / "wrong.key"
    assert callrec("keygen", "--out", str(wrong)).returncode == 0
    out = callrec("decrypt", "--identity", str(wrong), str(data / record["recording"]["path"]),
                  "--out", str(tmp_path / "x.flac"))
    assert out.returncode == 1 and "cannot decrypt" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.flac").exists() and not (tmp_path / "x.flac.tmp").exists()


def test_kill_9_mid_call_with_encryption_recovers_without_a_key_and_decrypts_with_at_most_a_second_lost(tmp_path):
    key, recipient = _office_key(tmp_path)
    config = _encrypted_config(tmp_path, recipient)
    noise_wav(tmp_path / "line1.wav", 60)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.0, "ring", "on"), (1.0, "ring", "off"), (1.0, "hook", "off"), (50.0, "hook", "on")]}]))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                             str(data), "--config", str(config), "--realtime"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    call_id = None
    for raw in proc.stdout:
        event = json.loads(raw)
        if event["type"] == "call.started":
            call_id, started = event["call_id"], time.monotonic()
            break
    assert call_id is not None
    time.sleep(5.0)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic() - started
    proc.wait(timeout=10)
    parts = list(data.rglob("*.pcm.age.part"))
    assert len(parts) == 1 and not list(data.rglob("*.pcm.part"))
    out = callrec("recover", "--data", str(data), "--config", str(config))   # no key on the device
    assert out.returncode == 0 and call_id in out.stdout, out.stdout + out.stderr
    record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
    assert record["status"] == "recovered" and record["recording"]["encryption"] == "age-frames"
    frames = data / record["recording"]["path"]
    assert frames.name == f"{call_id}.pcm.age-frames"
    wav = tmp_path / "recovered.wav"
    done = callrec("decrypt", "--identity", str(key), str(frames), "--out", str(wav))
    assert done.returncode == 0, done.stderr
    duration = soundfile.info(str(wav)).duration
    assert _files_holding(data, _chunk_of(wav, 3.0)) == [], "the recovered part holds no plaintext"
    expected = 1.0 + killed_at   # the pre-roll, then the call up to the kill
    assert expected - 1.6 <= duration <= expected + 0.3, (duration, expected)
    assert callrec("verify", "--data", str(data)).returncode == 0


@pytest.mark.parametrize("rate", [8000])
def test_the_age_frames_format_survives_a_torn_last_frame(tmp_path, rate):
    from callrec.privacy import EncryptedPartFile, Recipients, decrypt_frames, new_identity, scan_frames
    from pyrage import x25519

    identity, recipient = new_identity()
    part = EncryptedPartFile(tmp_path / "c.pcm.age.part", Recipients.parse([recipient]), rate)
    samples = (np.arange(rate * 3) % 3000).astype(np.int16)
    part.write(samples)
    part.sync()
    part.close()
    size = (tmp_path / "c.pcm.age.part").stat().st_size
    with open(tmp_path / "c.pcm.age.part", "ab") as handle:
        handle.write(b"\x00\x00\x10\x00\x00\x00\x0f\xa0partial")   # a frame the crash cut short
    info = scan_frames(tmp_path / "c.pcm.age.part")
    assert info.frames == len(samples) and info.whole_bytes == size and info.rate == rate
    back = np.concatenate(list(decrypt_frames(tmp_path / "c.pcm.age.part", [x25519.Identity.from_str(identity)])))
    assert np.array_equal(back, samples)
