"""kill -9 in the middle of a call loses at most about a second, and the next start recovers it.

The simulator runs at wall-clock pace (private PulseAudio) so the kill lands mid-call for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import soundfile
from conftest import callrec, noise_wav, scenario_toml


def _start_call_and_kill(tmp_path: Path, seconds_into_call: float) -> tuple[Path, str, float]:
    noise_wav(tmp_path / "line1.wav", 60)
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav",
                                        "events": [(0.0, "ring", "on"), (1.0, "ring", "off"),
                                                   (1.0, "hook", "off"), (50.0, "hook", "on")]}]))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(scenario), "--data", str(data),
                             "--realtime"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    call_id = None
    assert proc.stdout is not None
    for raw in proc.stdout:
        event = json.loads(raw)
        if event["type"] == "call.started":
            call_id = event["call_id"]
            started = time.monotonic()
            break
    assert call_id is not None, proc.stderr.read() if proc.stderr else ""
    time.sleep(seconds_into_call)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic() - started
    proc.wait(timeout=10)
    return data, call_id, killed_at


def test_kill_9_mid_call_then_recover_registers_the_partial_recording(tmp_path):
    data, call_id, killed_at = _start_call_and_kill(tmp_path, 4.0)
    parts = list(data.rglob("*.pcm.part"))
    assert len(parts) == 1, "the partial recording must be on disk"
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert call_id in out.stdout
    assert not list(data.rglob("*.part")) and not list(data.rglob("*.part.json"))
    record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
    assert record["status"] == "recovered"
    info = soundfile.info(str(data / record["recording"]["path"]))
    # the recording holds the pre-roll plus what reached the disk: at most about a second lost
    expected = 1.0 + killed_at
    assert expected - 1.6 <= info.duration <= expected + 0.3, (info.duration, expected)
    assert record["announcement"]["sha256"], "the proof of notice survives the crash"


def test_next_simulate_start_recovers_a_killed_recording_first(tmp_path):
    data, call_id, _ = _start_call_and_kill(tmp_path, 2.5)
    short = tmp_path / "short.toml"
    short.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": []}]))
    out = callrec("simulate", str(short), "--data", str(data))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    ended = [e for e in events if e["type"] == "call.ended"]
    assert ended and ended[0]["call_id"] == call_id and ended[0]["status"] == "recovered"
    assert not list(data.rglob("*.part"))


def test_recover_refuses_to_run_beside_a_live_service_on_the_same_data(tmp_path):
    noise_wav(tmp_path / "line1.wav", 30)
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav",
                                        "events": [(1.0, "hook", "off"), (25.0, "hook", "on")]}]))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(scenario), "--data", str(data),
                             "--realtime"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if json.loads(raw)["type"] == "call.started":
                break
        out = callrec("recover", "--data", str(data))
        assert out.returncode == 1 and "in use by another callrec process" in out.stderr
        assert list(data.rglob("*.pcm.part")), "the live call's part is untouched"
        second = callrec("simulate", str(scenario), "--data", str(data))
        assert second.returncode == 1 and "storage.data_dir" in second.stderr
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_deeply_nested_part_metadata_or_sidecar_is_damaged_metadata_not_a_traceback(tmp_path):
    """Anyone with the card can write these files; json raises RecursionError on deep nesting, and a
    traceback at start would be a crash loop. The audio is still recovered, the index rebuilt."""
    data, call_id, _killed_at = _start_call_and_kill(tmp_path, 3.0)
    (meta,) = data.rglob("*.part.json")
    meta.write_text("[" * 100_000)
    out = callrec("recover", "--data", str(data))
    assert "Traceback" not in out.stderr, out.stderr
    record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
    assert record["status"] == "recovered"
    (sidecar,) = data.rglob(f"{call_id}.json")
    sidecar.write_text("[" * 100_000)
    (data / "index.sqlite").unlink()
    out = callrec("recover", "--data", str(data))
    assert "Traceback" not in out.stderr, out.stderr
    assert call_id in callrec("calls", "list", "--data", str(data)).stdout
