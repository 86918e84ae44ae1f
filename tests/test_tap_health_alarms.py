"""Tap-health alarms end to end: simulated lines built for each failure raise it, a normal call not.

Each line is a `callrec simulate` line whose audio is made for one failure (the signals of
test_tap_health.py); the events and the call records are read as a dashboard and the office would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from conftest import scenario_toml
from test_tap_health import RATE, conversation, hum, pcm, rms


def _run(tmp_path: Path, lines: dict[int, tuple[np.ndarray, list[tuple[float, str, str]]]],
         config: str = "") -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    entries = []
    for line, (audio, events) in lines.items():
        soundfile.write(str(tmp_path / f"line{line}.wav"), audio, RATE, subtype="PCM_16")
        entries.append({"line": line, "audio": f"line{line}.wav", "events": events})
    (tmp_path / "s.toml").write_text(scenario_toml(entries))
    (tmp_path / "c.toml").write_text('region = "EU"\n' + config)
    done = subprocess.run([sys.executable, "-m", "callrec", "--config", str(tmp_path / "c.toml"), "simulate",
                           str(tmp_path / "s.toml"), "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    listing = subprocess.run([sys.executable, "-m", "callrec", "calls", "list", "--json", "--limit", "50", "--data",
                              str(tmp_path / "data")], capture_output=True, text=True, check=True)
    records: dict[int, list[dict[str, Any]]] = {}
    for record in map(json.loads, listing.stdout.splitlines()):
        records.setdefault(record["line"], []).append(record)
    return events, records


def _alarms(events: list[dict[str, Any]], line: int) -> set[str]:
    return {e["kind"] for e in events if e["type"] == "alarm.raised" and e["line"] == line}


CALL = [(1.0, "hook", "off"), (61.0, "hook", "on")]


def test_a_normal_call_is_healthy_and_one_talker_only_is_one_sided(tmp_path: Path) -> None:
    audio = {1: (pcm(np.concatenate([conversation(1.0, near=None, far=None), conversation(62.0)])), CALL),
             2: (pcm(np.concatenate([conversation(1.0, near=None, far=None), conversation(62.0, far=None)])), CALL)}
    events, records = _run(tmp_path, audio)
    assert not {k for k in _alarms(events, 1) if k.startswith("tap_")}, _alarms(events, 1)
    assert records[1][0]["health"]["ok"] is True and records[1][0]["health"]["problems"] == []
    assert "tap_one_sided" in _alarms(events, 2)
    assert records[2][0]["health"]["problems"] == ["one_sided"]
    assert all(r["clock_trusted"] is True for rs in records.values() for r in rs)


def test_a_silent_call_alarms_during_the_call_and_a_humming_clipped_one_after_it(tmp_path: Path) -> None:
    n = 64 * RATE
    silent = pcm(np.random.default_rng(2).standard_normal(n) * rms(-75))
    humming_and_clipped = pcm(conversation(64.0) * 8 + hum(n, 50.0, -20.0))
    audio = {1: (silent, CALL), 2: (humming_and_clipped, CALL)}
    events, records = _run(tmp_path, audio)
    silent_at = next(e for e in events if e["type"] == "alarm.raised" and e["kind"] == "tap_silent")
    ended = next(e for e in events if e["type"] == "call.ended" and e["line"] == 1)
    assert silent_at["line"] == 1 and silent_at["seq"] < ended["seq"], "raised while the call goes on"
    assert "silent" in records[1][0]["health"]["problems"]
    assert "tap_hum" in _alarms(events, 2) and records[2][0]["health"]["hum_hz"] == 50
    assert "tap_clipping" in _alarms(events, 2) and records[2][0]["health"]["clipped_share"] > 0.01


def test_zero_audio_on_an_idle_line_and_a_stuck_hook_alarm(tmp_path: Path) -> None:
    zero = np.zeros(30 * RATE, dtype=np.int16)
    stuck = pcm(conversation(30.0))
    events, records = _run(tmp_path, {1: (zero, []), 2: (stuck, [(1.0, "hook", "off"), (28.0, "hook", "on")])},
                           config="[health]\nmax_call_hours = 0.002\n")
    assert "tap_zero" in _alarms(events, 1)
    assert "hook_stuck" in _alarms(events, 2)
    cleared = [e for e in events if e["type"] == "alarm.cleared" and e["kind"] == "hook_stuck"]
    assert cleared, "the alarm clears when the line goes on-hook"
    parts = sorted(records[2], key=lambda r: r["started_at"])
    assert len(parts) == 4 and all(r["duration_s"] <= 7.2 + 0.05 for r in parts), [r["duration_s"] for r in parts]
    assert abs(sum(r["duration_s"] for r in parts) - 27.0) < 0.1
