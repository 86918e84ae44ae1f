"""The ledgers' heads journaled as they move (issue 22 item 4): the watcher's events, and finding the
newest one in a long journal."""

from __future__ import annotations

import time
from pathlib import Path

from callrec.events import Event, EventBus
from callrec.evidence import Evidence, Heads, HeadWatcher, latest_head, read_heads
from callrec.store import Journal


def _bus(data: Path) -> tuple[EventBus, list[Event]]:
    seen: list[Event] = []
    bus = EventBus(Journal(data / "journal.sqlite"))
    bus.subscribe(lambda stamped: seen.append(stamped.event))
    return bus, seen


def test_the_watcher_journals_a_moved_head_once_and_not_again_after_a_restart(tmp_path):
    evidence = Evidence.open(tmp_path)
    evidence.audit.record("export", "cli:test", {"calls": ["a"]})
    bus, seen = _bus(tmp_path)
    watcher = HeadWatcher(tmp_path, bus, poll_s=3600)
    watcher.start()
    assert watcher.check() and not watcher.check(), "once per move"
    (event,) = [e for e in seen if e.type == "evidence.head"]
    heads = read_heads(tmp_path)
    assert Heads.from_fields(event.fields) == heads and event.fields["chain"] is None
    assert event.fields["audit"] == {"seq": 1, "hash": heads.audit.hash}
    watcher.stop()
    bus.journal.close()

    bus, seen = _bus(tmp_path)   # a restart: the journal already holds these heads
    again = HeadWatcher(tmp_path, bus, poll_s=3600)
    again.start()
    assert not again.check()
    evidence.chain.note("hold", "c1", by="cli:test", reason="claim")   # another process appends
    assert again.check()
    assert [e.fields["chain"]["seq"] for e in seen if e.type == "evidence.head"] == [1]
    again.stop()
    bus.journal.close()


def test_the_newest_head_is_found_however_far_back_it_is(tmp_path):
    bus, _ = _bus(tmp_path)
    assert latest_head(bus.journal) is None
    first = {"chain": {"seq": 1, "hash": "aa" * 32}, "audit": None}
    bus.emit(Event("evidence.head", None, None, time.time(), first))
    for _ in range(2500):   # more than two pages of other events
        bus.emit(Event("line.ring", 1, None, time.time(), {"state": "on"}))
    assert latest_head(bus.journal) == Heads.from_fields(first)
    newer = {"chain": {"seq": 2, "hash": "bb" * 32}, "audit": {"seq": 7, "hash": "cc" * 32}}
    bus.emit(Event("evidence.head", None, None, time.time(), newer))
    bus.emit(Event("line.ring", 1, None, time.time(), {"state": "off"}))
    assert latest_head(bus.journal) == Heads.from_fields(newer)
    bus.journal.close()


def test_the_newest_head_is_found_across_a_jump_in_seq(tmp_path):
    """`seq` jumps ahead after events were stamped that a full journal never took (store/journal.py):
    the search for the newest head must not read such a jump as the journal's start."""
    bus, _ = _bus(tmp_path)
    first = {"chain": {"seq": 3, "hash": "dd" * 32}, "audit": None}
    bus.emit(Event("evidence.head", None, None, time.time(), first))
    for seq in range(3000, 3006):   # numbers held while the journal was full: a gap of ~3000
        bus.journal.append(Event("line.ring", 1, None, time.time(), {"state": "on"}), seq=seq)
    assert latest_head(bus.journal) == Heads.from_fields(first)
    bus.journal.close()


def test_heads_the_journal_bound_pruned_are_witnessed_again(tmp_path):
    """A quiet line for longer than the journal keeps events: the device's own witness must not go."""
    import sqlite3

    evidence = Evidence.open(tmp_path)
    evidence.audit.record("export", "cli:test", {"calls": ["a"]})
    bus, seen = _bus(tmp_path)
    watcher = HeadWatcher(tmp_path, bus, poll_s=3600)
    watcher.start()
    assert watcher.check()
    assert not watcher.refresh(), "still in the journal: nothing to add"
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:   # as the bound prunes the oldest events
        db.execute("DELETE FROM events")
    assert latest_head(bus.journal) is None
    assert watcher.refresh()
    assert latest_head(bus.journal) == read_heads(tmp_path)
    assert len([e for e in seen if e.type == "evidence.head"]) == 2
    watcher.stop()
    bus.journal.close()


def _cut_last_line(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))


def test_a_chain_cut_while_the_service_watches_is_not_witnessed_and_raises_an_alarm(tmp_path):
    """Cut the last hold, let the device append a `deleted` as the new last seq: the witness must
    stay at the head it saw, or `verify` would find the rewritten chain matching its witness."""
    from callrec.evidence import verify_data

    evidence = Evidence.open(tmp_path)
    evidence.chain.note("hold", "c1", by="cli:test", reason="one")
    evidence.chain.note("hold", "c2", by="cli:test", reason="two")
    bus, seen = _bus(tmp_path)
    watcher = HeadWatcher(tmp_path, bus, poll_s=3600)
    watcher.start()
    assert watcher.check()
    witnessed = latest_head(bus.journal)
    assert witnessed is not None and witnessed.chain is not None and witnessed.chain.seq == 2
    _cut_last_line(tmp_path / "evidence" / "chain.jsonl")
    assert not watcher.check()
    evidence.chain.note("deleted", "c2", by="device:retention", reason="due")   # seq 2 again, another hash
    assert not watcher.check()
    assert latest_head(bus.journal) == witnessed
    alarms = [e.fields for e in seen if e.type == "alarm.raised"]
    assert [(a["id"], a["severity"]) for a in alarms] == [("evidence.rewritten:chain", "critical")]
    evidence.audit.record("export", "cli:test", {})   # the other ledger is still witnessed as it grows
    assert watcher.check()
    newest = latest_head(bus.journal)
    assert newest is not None and newest.chain == witnessed.chain and newest.audit is not None
    watcher.stop()
    kinds = {p.kind for p in verify_data(tmp_path).problems}
    assert "chain rewritten" in kinds
    bus.journal.close()


def test_after_a_restart_a_chain_that_lost_the_witnessed_head_is_not_witnessed(tmp_path):
    evidence = Evidence.open(tmp_path)
    evidence.chain.note("hold", "c1", by="cli:test", reason="one")
    evidence.chain.note("hold", "c2", by="cli:test", reason="two")
    bus, _ = _bus(tmp_path)
    watcher = HeadWatcher(tmp_path, bus, poll_s=3600)
    watcher.start()
    assert watcher.check()
    watcher.stop()
    bus.journal.close()
    _cut_last_line(tmp_path / "evidence" / "chain.jsonl")   # while the service was down

    bus, seen = _bus(tmp_path)
    again = HeadWatcher(tmp_path, bus, poll_s=3600)
    again.start()
    assert not again.check()
    assert [e.fields["id"] for e in seen if e.type == "alarm.raised"] == ["evidence.rewritten:chain"]
    assert latest_head(bus.journal).chain.seq == 2
    again.stop()
    bus.journal.close()


def test_an_entry_far_from_the_end_is_found_by_its_seq(tmp_path):
    """`hash_at` reads back from the end in growing windows: a witnessed head is usually among the
    last entries, but one far back (a quiet device's old witness) is found too, and a missing one is not."""
    from callrec.evidence import Ledger

    evidence = Evidence.open(tmp_path)
    entries = [evidence.chain.note("hold", f"c{n}", by="cli:test", reason="r" * 200) for n in range(600)]
    ledger = Ledger(tmp_path / "evidence" / "chain.jsonl")
    assert (tmp_path / "evidence" / "chain.jsonl").stat().st_size > 4 * 64 * 1024
    for entry in (entries[0], entries[299], entries[-1]):
        assert ledger.hash_at(entry["seq"]) == entry["hash"]
    assert ledger.hash_at(len(entries) + 1) is None and ledger.hash_at(0) is None
