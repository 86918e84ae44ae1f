"""Whole calls through the real pipeline: alsa-lib file-plugin PCMs, the simulated line, the recorder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile
from conftest import RATE

INBOUND = [(0.0, "ring", "on"), (1.0, "ring", "off"), (3.0, "ring", "on"), (3.6, "hook", "off"),
           (20.0, "hook", "on")]


def test_inbound_call_with_two_rings_is_announced_recorded_and_indexed(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": INBOUND}])
    assert result.returncode == 0, result.stderr
    types = [e["type"] for e in result.events]
    assert types.count("call.started") == 1
    started = result.of_type("call.started")[0]
    assert started["direction"] == "inbound" and started["rings"] == 2
    ended = result.of_type("call.ended")[0]
    assert ended["status"] == "complete" and ended["direction"] == "inbound" and ended["rings"] == 2
    assert abs(ended["duration_s"] - 16.4) < 0.01
    assert result.of_type("announcement.played")[0]["completed"] is True
    seqs = [e["seq"] for e in result.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    record = result.record(started["call_id"])
    assert record["status"] == "complete" and record["rings"] == 2
    assert record["announcement"]["sha256"] and record["announcement"]["started_s"] >= 0
    assert record["announcement"]["ended_s"] > record["announcement"]["started_s"]


def test_recording_equals_line_audio_from_preroll_to_onhook_outside_the_announcement(simulate, tmp_path):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": INBOUND}])
    assert result.returncode == 0, result.stderr
    call_id = result.of_type("call.started")[0]["call_id"]
    record = result.record(call_id)
    recorded, rate = soundfile.read(str(result.data / record["recording"]["path"]), dtype="int16")
    line_audio, _ = soundfile.read(str(tmp_path / "line1.wav"), dtype="int16")
    assert rate == RATE
    start = int((3.6 - 1.0) * RATE)
    end = int(20.0 * RATE)
    assert len(recorded) == end - start
    expected = line_audio[start:end]
    announcement = record["announcement"]
    mix_from = int(round((1.0 + announcement["started_s"]) * RATE))
    mix_to = int(round((1.0 + announcement["ended_s"]) * RATE))
    outside = np.ones(len(recorded), dtype=bool)
    outside[mix_from:mix_to] = False
    assert np.array_equal(recorded[outside], expected[outside])
    assert not np.array_equal(recorded[mix_from:mix_to], expected[mix_from:mix_to]), "announcement not mixed"


def test_stored_sha256_matches_the_final_file(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": INBOUND}])
    saved = result.of_type("recording.saved")[0]
    path = result.data / saved["path"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert saved["sha256"] == digest and saved["bytes"] == path.stat().st_size
    record = result.record(saved["call_id"])
    assert record["recording"]["sha256"] == digest
    sidecar = path.with_suffix(".json").read_text()
    assert digest in sidecar
    assert not list(result.data.rglob("*.part")), "no .part litter after a clean run"


def test_outbound_call_has_no_rings_and_is_outbound(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(2.0, "hook", "off"), (12.0, "hook", "on")]}])
    started = result.of_type("call.started")[0]
    assert started["direction"] == "outbound" and started["rings"] == 0
    assert result.of_type("call.ended")[0]["status"] == "complete"


def test_hook_flash_mid_call_is_reported_and_the_call_goes_on(simulate):
    events = [(1.0, "hook", "off"), (6.0, "hook", "on"), (6.4, "hook", "off"), (15.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": "line1.wav", "events": events}])
    assert len(result.of_type("call.started")) == 1
    flash = result.of_type("line.flash")
    assert len(flash) == 1 and abs(flash[0]["duration_s"] - 0.4) < 0.01
    ended = result.of_type("call.ended")[0]
    assert abs(ended["duration_s"] - 14.0) < 0.01
    assert result.record(ended["call_id"])["flashes"] == 1


def test_bounce_storm_at_offhook_makes_exactly_one_call(simulate):
    bounces = []
    t = 2.0
    for i in range(12):
        bounces.append((round(t, 4), "hook", "off" if i % 2 == 0 else "on"))
        t += 0.003 + 0.001 * i
    bounces.append((round(t, 4), "hook", "off"))
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [*bounces, (12.0, "hook", "on")]}])
    assert len(result.of_type("call.started")) == 1
    assert len(result.of_type("call.ended")) == 1
    assert result.of_type("line.flash") == []


def test_chatter_while_idle_never_makes_a_phantom_call(simulate):
    chatter = []
    for i in range(40):
        chatter.append((2.0 + i * 0.05, "hook", "off"))
        chatter.append((2.0 + i * 0.05 + 0.01, "hook", "on"))
    result = simulate([{"line": 1, "audio": "line1.wav", "events": chatter}])
    assert result.returncode == 0, result.stderr
    assert result.of_type("call.started") == [] and result.of_type("call.ended") == []


def test_number_display_blip_before_the_first_ring_is_not_a_call(simulate):
    events = [(0.5, "ring", "on"), (1.0, "ring", "off"),          # CAR
              (1.3, "hook", "off"), (2.5, "hook", "on"),           # the terminal takes the caller ID
              (3.5, "ring", "on"), (4.5, "ring", "off"),           # real ringing
              (6.5, "ring", "on"), (7.0, "hook", "off"), (18.0, "hook", "on")]
    result = simulate([{"line": 1, "audio": "line1.wav", "events": events}])
    started = result.of_type("call.started")
    assert len(started) == 1, [e["type"] for e in result.events]
    assert started[0]["direction"] == "inbound" and started[0]["rings"] == 2
    assert len(result.of_type("call.ended")) == 1


def test_one_second_call_is_discarded_and_still_ends_with_an_event(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(2.0, "hook", "off"), (3.0, "hook", "on")]}])
    ended = result.of_type("call.ended")
    assert len(ended) == 1 and ended[0]["status"] == "discarded"
    assert result.of_type("recording.saved") == []
    assert not list((result.data / "recordings").rglob("*.flac"))
    assert not list(result.data.rglob("*.part"))
    assert result.record(ended[0]["call_id"])["status"] == "discarded"


def test_two_lines_at_once_are_recorded_separately(simulate, tmp_path):
    result = simulate([
        {"line": 1, "audio": "line1.wav", "events": INBOUND},
        {"line": 2, "audio": "line2.wav", "events": [(2.0, "hook", "off"), (14.0, "hook", "on")]},
    ])
    assert result.returncode == 0, result.stderr
    by_line = {e["line"]: e for e in result.of_type("call.ended")}
    assert by_line[1]["direction"] == "inbound" and by_line[2]["direction"] == "outbound"
    saved = {e["line"]: e for e in result.of_type("recording.saved")}
    audio2, _ = soundfile.read(str(result.data / saved[2]["path"]), dtype="int16")
    line2, _ = soundfile.read(str(tmp_path / "line2.wav"), dtype="int16")
    assert np.array_equal(audio2[:8000], line2[8000:16000])  # pre-roll from line 2's own audio


def test_wav_format_and_preroll_follow_the_configuration(simulate):
    config = 'region = "US"\n[storage]\nformat = "wav"\n[audio]\npreroll_seconds = 0.5\n'
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(2.0, "hook", "off"), (10.0, "hook", "on")]}],
                      config=config)
    assert result.returncode == 0, result.stderr
    saved = result.of_type("recording.saved")[0]
    assert saved["path"].endswith(".wav")
    info = soundfile.info(str(result.data / saved["path"]))
    assert abs(info.duration - 8.5) < 0.001
    assert "announcement_en" in result.of_type("announcement.played")[0]["file"]


def test_seq_continues_across_runs_on_the_same_data(simulate, tmp_path: Path):
    first = simulate([{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (5.0, "hook", "on")]}])
    second = simulate([{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (5.0, "hook", "on")]}],
                      data=first.data)
    assert second.events[0]["seq"] == first.events[-1]["seq"] + 1
