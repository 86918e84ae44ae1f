"""Clock trust end to end: calls made before the clock synchronised say so, and are annotated with
the offset NTP corrected once it has; a step of the wall clock mid-call changes no duration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import noise_wav, scenario_toml


def _simulate(tmp_path: Path, faults: str, lines: list[dict],
              events: list[dict] | None = None) -> dict[int, list[dict]]:
    """Run the scenario; the call records by line (and the events printed, into `events`)."""
    for line in lines:
        noise_wav(tmp_path / line["audio"], 40, seed=line["line"])
    (tmp_path / "s.toml").write_text(scenario_toml(lines) + faults)
    done = subprocess.run([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    if events is not None:
        events.extend(map(json.loads, done.stdout.splitlines()))
    listing = subprocess.run([sys.executable, "-m", "callrec", "calls", "list", "--json", "--data",
                              str(tmp_path / "data")], capture_output=True, text=True, check=True)
    records: dict[int, list[dict]] = {}
    for record in map(json.loads, listing.stdout.splitlines()):
        records.setdefault(record["line"], []).append(record)
    return {line: sorted(rs, key=lambda r: r["call_id"]) for line, rs in records.items()}


def test_calls_before_the_clock_synchronised_are_marked_then_annotated_with_the_offset(tmp_path: Path) -> None:
    faults = ('\n[[fault]]\nat = 0.0\nkind = "clock_unsynchronised"\nseconds = 15.0\n'
              '\n[[fault]]\nat = 15.0\nkind = "clock_step"\nseconds = 3600.0\n')
    events: list[dict] = []
    records = _simulate(tmp_path, faults, [
        {"line": 1, "audio": "l1.wav", "events": [(1.0, "hook", "off"), (10.0, "hook", "on"),
                                                  (22.0, "hook", "off"), (27.0, "hook", "on")]},
        {"line": 2, "audio": "l2.wav", "events": [(12.0, "hook", "off"), (30.0, "hook", "on")]},
    ], events)
    before, after = records[1]
    during = records[2][0]
    assert before["clock_trusted"] is False and during["clock_trusted"] is False
    assert after["clock_trusted"] is True and after.get("clock_correction") is None
    for record in (before, during):   # the hour NTP put right, measured on the monotonic clock
        assert record["clock_correction"]["offset_s"] == pytest.approx(3600.0, abs=0.1)
    assert before["duration_s"] == pytest.approx(9.0, abs=0.05)
    assert during["duration_s"] == pytest.approx(18.0, abs=0.05), "the step mid-call changes no duration"
    verify = subprocess.run([sys.executable, "-m", "callrec", "verify", "--data", str(tmp_path / "data")],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # every event says whether its `ts` can be believed: those of the calls made before the sync not
    assert all(isinstance(e["clock_trusted"], bool) for e in events), [e for e in events if "clock_trusted" not in e]
    def trust(record: dict, types: tuple[str, ...]) -> set[bool]:
        return {e["clock_trusted"] for e in events if e["call_id"] == record["call_id"] and e["type"] in types}

    assert trust(before, ("call.started", "call.ended")) == {False}
    assert trust(during, ("call.started",)) == {False}, "begun before the sync"
    assert trust(during, ("call.ended",)) == {True}, "ended after it"
    assert trust(after, ("call.started", "call.ended")) == {True}


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_a_wall_clock_step_of_an_hour_mid_call_changes_no_duration(tmp_path: Path, step: float) -> None:
    records = _simulate(tmp_path, f'\n[[fault]]\nat = 10.0\nkind = "clock_step"\nseconds = {step}\n',
                        [{"line": 1, "audio": "l1.wav", "events": [(2.0, "hook", "off"), (32.0, "hook", "on")]}])
    (call,) = records[1]
    assert call["duration_s"] == pytest.approx(30.0, abs=0.05)
    assert call["clock_trusted"] is True
