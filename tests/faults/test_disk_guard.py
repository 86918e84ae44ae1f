"""The disk guard (issue 11 item 4) on a real small disk: a warning at twice `min_free_percent`,
then the oldest unheld recordings go; when only held ones remain, a critical alarm, and the call in
progress is still recorded; the index stays whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from callrec.config import RetentionConfig
from callrec.events import EventBus
from callrec.evidence import Evidence
from callrec.privacy import ALARM_FULL, ALARM_LOW, DiskState, Keeper
from callrec.store import CallIndex, Journal
from conftest import callrec, listed_calls, noise_wav, scenario_toml
from fault_support import small_disk  # noqa: F401 - fixture

LOUD = 0.3


def _run(tmp_path: Path, data: Path, config: Path, name: str, events: list) -> list[dict]:
    noise_wav(tmp_path / f"{name}.wav", 12, level=LOUD, seed=len(name))
    (tmp_path / f"{name}.toml").write_text(scenario_toml([{"line": 1, "audio": f"{name}.wav", "events": events}]))
    out = callrec("simulate", str(tmp_path / f"{name}.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_the_guard_deletes_the_oldest_unheld_recording_and_keeps_held_ones(tmp_path, small_disk):  # noqa: F811
    disk = small_disk("8m")
    data = disk / "data"
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nformat = "wav"\n[retention]\nmin_free_percent = 30\n')
    _run(tmp_path, data, config, "first", [(0.5, "hook", "off"), (3.5, "hook", "on"),
                                           (5.0, "hook", "off"), (8.0, "hook", "on")])
    held, oldest_unheld = listed_calls(data)
    assert callrec("hold", held["call_id"], "--reason", "claim", "--data", str(data)).returncode == 0
    total, _used, free = shutil.disk_usage(disk)
    ballast = disk / "ballast"
    ballast.write_bytes(b"\1" * (free - int(total * 0.30) + 60_000))   # just under the floor
    events = _run(tmp_path, data, config, "second", [(0.5, "hook", "off"), (4.0, "hook", "on")])
    ended = [e for e in events if e["type"] == "call.ended"]
    assert [e["status"] for e in ended] == ["complete"], "the call is recorded to its end"
    deleted = [e for e in events if e["type"] == "recording.deleted"]
    # (a simulation's call ids run ahead of the real clock, so the new call may sort among the old)
    assert oldest_unheld["call_id"] in [e["call_id"] for e in deleted], deleted
    assert held["call_id"] not in [e["call_id"] for e in deleted]
    assert all("disk guard" in e["reason"] for e in deleted)
    left = {r["call_id"] for r in listed_calls(data)}
    assert held["call_id"] in left and oldest_unheld["call_id"] not in left
    raised = {e["id"] for e in events if e["type"] == "alarm.raised"}
    assert ALARM_LOW in raised
    assert callrec("verify", "--data", str(data)).returncode == 0, "deletions are chain entries, not gaps"


def test_only_held_recordings_left_is_a_critical_alarm_and_nothing_held_is_deleted(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    evidence = Evidence.open(data)
    index = CallIndex(data / "index.sqlite")
    for n in range(3):
        index.add({"call_id": f"20260101T00000{n}000Z-L1-aa", "line": 1, "started_at": f"2026-01-01T00:00:0{n}.000Z",
                   "hold": {"reason": "court", "by": "cli:test", "at": "2026-01-02T00:00:00.000Z"},
                   "recording": {"path": f"recordings/{n}.wav", "format": "wav", "bytes": 1, "sample_rate": 8000}})
        evidence.chain.note("hold", f"20260101T00000{n}000Z-L1-aa", by="cli:test", reason="court")   # as `hold` does
    journal = Journal(data / "journal.sqlite")
    seen: list = []
    bus = EventBus(journal)
    bus.subscribe(lambda stamped: seen.append(stamped.event))
    state = DiskState(total=1000, free=50)
    keeper = Keeper(data, index, evidence.chain, evidence.audit, RetentionConfig(min_free_percent=10), bus,
                    disk=lambda: state)
    keeper.guard()
    keeper.guard()   # raised once, not on every pass
    raised = [(e.fields["id"], e.fields.get("severity")) for e in seen if e.type == "alarm.raised"]
    assert raised == [(ALARM_FULL, "critical"), (ALARM_LOW, "warning")]
    assert index.count() == 3
    state = DiskState(total=1000, free=500)
    keeper.guard()
    cleared = {e.fields["id"] for e in seen if e.type == "alarm.cleared"}
    assert cleared == {ALARM_FULL, ALARM_LOW}
    index.close()
    journal.close()
