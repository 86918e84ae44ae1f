"""A full disk: recording goes on as far as space allows, alarms say so, and it heals by itself.

Real small disks (tmpfs of a few MB) under the data directory. Regression tests for issue 9 item 1:
the recorder thread died journaling its own storage alarm, `simulate` hung, and calls went on
being announced while nothing was recorded.
"""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import soundfile
from callrec.control import ControlClient, ServiceUnreachable
from conftest import callrec, noise_wav, scenario_toml
from disk_support import fill_disk
from fault_support import small_disk, start_simulate  # noqa: F401 - fixture

LOUD = 0.3   # noise that FLAC cannot shrink much: the disk fills as it would with speech


def test_a_disk_that_fills_mid_call_fails_that_call_with_an_alarm_and_the_run_ends(tmp_path, small_disk):  # noqa: F811 - the fixture
    disk = small_disk("4m")
    noise_wav(tmp_path / "line1.wav", 200, level=LOUD)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (1.0, "hook", "off"), (90.0, "hook", "on"), (95.0, "hook", "off"), (190.0, "hook", "on")]}]))
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(disk / "data"), timeout=120)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    started = [e["call_id"] for e in events if e["type"] == "call.started"]
    ended = {e["call_id"]: e["status"] for e in events if e["type"] == "call.ended"}
    assert len(started) == 2 and set(ended) == set(started), "every call ends, whatever its recording"
    assert ended[started[0]] == "complete" and ended[started[1]] == "failed"
    assert any(e["type"] == "alarm.raised" and e["id"] == f"recording:{started[1]}" for e in events)
    assert "Traceback" not in out.stderr
    listing = callrec("calls", "list", "--data", str(disk / "data"))
    assert listing.returncode == 0 and "failed" in listing.stdout and "Traceback" not in listing.stderr
    recover = callrec("recover", "--data", str(disk / "data"))
    assert "Traceback" not in recover.stderr
    assert recover.returncode == 1 and "NOT RECOVERED" in recover.stdout, "the disk is still full: not a success"
    assert list((disk / "data").rglob("*.pcm.part")), "the failed call's audio is kept for recover"


def test_a_call_that_cannot_be_recorded_is_not_announced_and_its_line_shows_fault(tmp_path, small_disk):  # noqa: F811 - the fixture
    disk = small_disk("4m")
    noise_wav(tmp_path / "line1.wav", 20, level=LOUD)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (2.0, "ring", "on"), (3.0, "ring", "off"), (3.5, "hook", "off"), (12.0, "hook", "on")]}]))
    (disk / "data").mkdir()   # the appliance's data directory exists; then the disk fills up
    filler = fill_disk(disk)
    run = start_simulate(tmp_path / "s.toml", disk / "data", "--realtime", "--work", str(tmp_path / "work"))
    run.until(lambda e: e["type"] == "call.started")
    time.sleep(1.5)
    client = ControlClient(disk / "data" / "control.sock")
    try:
        state = {s["line"]: s for s in client.status()}[1]
        alarms = {a["id"] for a in client.alarms()}
    except ServiceUnreachable as error:
        raise AssertionError(f"the service is not reachable: {error}") from None
    assert state["state"] == "fault", state
    assert "storage" in alarms or "journal" in alarms, alarms
    assert run.finish() == 0, run.stderr_tail()
    filler.unlink()
    assert not run.of_type("announcement.played"), "no notice for a call that is not being recorded"
    (ended,) = run.of_type("call.ended")
    assert ended["status"] == "failed"
    played, _ = soundfile.read(str(tmp_path / "work" / "played_card0.wav"), dtype="int16")
    assert not np.any(played), "nothing was played into the line"


def test_space_freed_during_a_call_lets_the_next_call_record_with_no_restart(tmp_path, small_disk):  # noqa: F811 - the fixture
    disk = small_disk("4m")
    noise_wav(tmp_path / "line1.wav", 27, level=LOUD)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (1.0, "hook", "off"), (10.0, "hook", "on"), (15.0, "ring", "on"), (16.0, "ring", "off"),
        (16.5, "hook", "off"), (23.0, "hook", "on")]}]))
    data = disk / "data"
    data.mkdir()
    filler = fill_disk(disk)
    run = start_simulate(tmp_path / "s.toml", data, "--realtime")
    first = run.until(lambda e: e["type"] == "call.started")
    started = time.monotonic()
    # the recorder's first refusal seen (on a loaded machine it can come seconds after the off-hook,
    # and, the recorder being another thread, it may also be printed before call.started), and the
    # call at least 3 s old: what it missed is a gap of a few seconds (12 s: with the appliance VM
    # test's emulated guest on the other core it was seen later than 8 s; freed by 14 s the second
    # call, at 16.5 s, still finds room)
    run.seen_or_until(lambda e: e["type"] == "alarm.raised" and e.get("id") == "storage", timeout=12)
    time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
    filler.unlink()   # the technician makes room while the first call goes on
    assert run.finish() == 0, run.stderr_tail()
    ended = {e["call_id"]: e for e in run.of_type("call.ended")}
    (second,) = [e for e in run.of_type("call.started") if e["call_id"] != first["call_id"]]
    assert ended[second["call_id"]]["status"] == "complete"
    assert [e for e in run.of_type("announcement.played") if e["call_id"] == second["call_id"]]
    raised = {e["id"] for e in run.of_type("alarm.raised")}
    cleared = {e["id"] for e in run.of_type("alarm.cleared")}
    assert "storage" in raised and "storage" in cleared
    # every event the journal could not take at first was journaled later, under its own seq, in order
    with sqlite3.connect(data / "journal.sqlite") as db:
        journaled = [row[0] for row in db.execute("SELECT seq FROM events ORDER BY seq")]
    printed = [e["seq"] for e in run.events]
    assert printed == sorted(printed) and set(printed) <= set(journaled), (printed[:10], journaled[:10])
    record = json.loads(callrec("calls", "show", first["call_id"], "--data", str(data)).stdout)
    # the first call started on a full disk: it was recorded from when room came back, the gap stated,
    # and announced then (a call is never recorded unannounced)
    assert record["status"] == "complete", record["errors"]
    (gap,) = record["gaps"]
    assert gap["cause"] == "storage" and gap["at_s"] == -1.0 and 2.0 <= gap["duration_s"] <= 9.0, gap
    assert any("started late" in error for error in record["errors"])
    assert [e for e in run.of_type("announcement.played") if e["call_id"] == first["call_id"]]
    info = soundfile.info(str(data / record["recording"]["path"]))
    assert abs(info.duration - (1.0 + 9.0)) < 0.1, "the file keeps the line's timeline: silence in the gap"
