"""The journal stays bounded: overflow drops the oldest events with a count and an alarm, never crashes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from callrec.events import Event
from callrec.mqtt import JournalKeeper
from callrec.store import Journal
from mqtt_support import Broker, Rig, wait_until

pytest_plugins = ["conftest_mqtt"]

DAY = 86_400.0


def _journal_with(path: Path, stamps: list[float]) -> Journal:
    journal = Journal(path)
    for ts in stamps:
        journal.append(Event("line.ring", 1, None, ts, {}))
    return journal


def test_prune_drops_the_oldest_beyond_the_count_delivered_or_not(tmp_path: Path) -> None:
    now = time.time()
    journal = _journal_with(tmp_path / "j.sqlite", [now] * 10)
    journal.mark_delivered([1, 2, 3])
    keeper = JournalKeeper(journal.path)
    result = keeper.prune(max_events=4, max_days=30, now=now)
    assert (result.dropped, result.undelivered) == (6, 3)
    assert [e.seq for e in journal] == [7, 8, 9, 10]
    assert journal.append(Event("line.ring", 1, None, now, {})).seq == 11, "seq never reused"
    keeper.close()
    journal.close()


def test_prune_by_age_takes_only_the_old_prefix(tmp_path: Path) -> None:
    now = time.time()
    # A Pi that booted without a clock stamps an event in 1970 between two current ones: age pruning
    # must not use it to throw away the current event before it.
    journal = _journal_with(tmp_path / "j.sqlite", [now - 40 * DAY, now - 31 * DAY, now, 10.0, now])
    keeper = JournalKeeper(journal.path)
    result = keeper.prune(max_events=100, max_days=30, now=now)
    assert result.dropped == 2
    assert [e.seq for e in journal] == [3, 4, 5]
    assert keeper.prune(max_events=100, max_days=30, now=now).dropped == 0
    keeper.close()
    journal.close()


def test_backlog_size_counts_undelivered_events(tmp_path: Path) -> None:
    journal = _journal_with(tmp_path / "j.sqlite", [time.time()] * 5)
    journal.mark_delivered([1, 2])
    keeper = JournalKeeper(journal.path)
    assert keeper.backlog_size() == 3
    keeper.close()
    journal.close()


def test_overflow_during_an_outage_raises_an_alarm_with_the_count_and_keeps_recording(
    rig_factory, tmp_path: Path
) -> None:
    dead = Broker(tmp_path / "not-started")
    rig: Rig = rig_factory(dead, journal_max_events=50, outage_alarm_after_s=3600)
    rig.services.clear()
    service = rig.new_service(housekeeping_interval_s=0.05)
    service.start()
    for i in range(200):
        rig.emit("line.ring", 1, n=i)
    assert wait_until(lambda: any(e.event.type == "alarm.raised" for e in rig.journal))
    alarm = next(e for e in rig.journal if e.event.type == "alarm.raised").event.fields
    assert alarm["id"] == "mqtt.journal_overflow" and alarm["kind"] == "mqtt"
    assert "were dropped before MQTT delivered them" in alarm["message"]
    assert wait_until(lambda: service.dropped_undelivered >= 150)  # pruning runs on its own clock

    def journal_size() -> int:
        with sqlite3.connect(rig.journal_path) as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    assert wait_until(lambda: journal_size() <= 50)
    assert rig.emit("line.ring", 1) > 200


def test_overflow_alarm_clears_once_the_backlog_has_drained(rig_factory, broker: Broker) -> None:
    broker.stop()
    rig: Rig = rig_factory(broker, journal_max_events=50, outage_alarm_after_s=3600)
    rig.services.clear()
    service = rig.new_service(housekeeping_interval_s=0.05)
    service.start()
    for i in range(100):
        rig.emit("line.ring", 1, n=i)
    assert wait_until(lambda: any(e.event.type == "alarm.raised" for e in rig.journal))
    broker.start()
    assert wait_until(lambda: any(e.event.type == "alarm.cleared" for e in rig.journal), timeout=20)
    assert rig.device.active_alarms() == []
