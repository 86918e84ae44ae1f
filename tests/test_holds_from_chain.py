"""Legal holds decided from the signed chain (issue 22 item 3): retention and the disk guard keep a
call either the chain or the index holds, say so when they disagree, and read the chain only as far
as it grew; `Evidence.hold`/`release` are the one way a hold is placed (CLI and viewer alike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from callrec.config import RetentionConfig
from callrec.events import Event, EventBus
from callrec.evidence import Evidence, UnknownCall
from callrec.privacy import ALARM_FULL, DiskState, Keeper
from callrec.store import CallIndex, Journal

OLD = "2026-01-01T00:00:0{n}.000Z"
LATER = 4_102_444_800.0   # 2100-01-01


def _record(n: int, **fields: Any) -> dict[str, Any]:
    call_id = f"20260101T00000{n}000Z-L1-a{n}"
    return {"call_id": call_id, "line": 1, "started_at": OLD.format(n=n), "direction": "inbound",
            "recording": {"path": f"recordings/{call_id}.flac", "format": "flac", "bytes": 4, "sample_rate": 8000},
            **fields}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    evidence = Evidence.open(data)
    index = CallIndex(data / "index.sqlite")
    journal = Journal(data / "journal.sqlite")
    seen: list[Event] = []
    bus = EventBus(journal)
    bus.subscribe(lambda stamped: seen.append(stamped.event))

    class Store:
        pass

    box = Store()
    box.data, box.evidence, box.index, box.bus, box.seen = data, evidence, index, bus, seen  # type: ignore[attr-defined]
    yield box
    index.close()
    journal.close()


def _add(store: Any, *records: dict[str, Any]) -> None:
    for record in records:
        store.index.add(record)
        (store.data / record["recording"]["path"]).write_bytes(b"flac")


def _keeper(store: Any, free: int = 900) -> Keeper:
    return Keeper(store.data, store.index, store.evidence.chain, store.evidence.audit, RetentionConfig(days=30),
                  store.bus, disk=lambda: DiskState(1000, free))


def test_a_hold_only_the_chain_knows_keeps_the_call_and_raises_an_alarm(store):
    held, other = _record(1), _record(2)
    _add(store, held, other)
    store.evidence.chain.note("hold", held["call_id"], by="cli:test", reason="claim")
    deleted = _keeper(store).prune(LATER)
    assert [r["call_id"] for r in deleted] == [other["call_id"]]
    assert store.index.get(held["call_id"]) is not None
    raised = [e.fields for e in store.seen if e.type == "alarm.raised"]
    assert [(a["id"], a["kind"]) for a in raised] == [(f"hold:{held['call_id']}", "evidence")]
    assert "index does not" in raised[0]["message"]


def test_a_hold_only_the_index_knows_still_keeps_the_call(store):
    held = _record(1, hold={"reason": "claim", "by": "cli:test", "at": "2026-01-02T00:00:00.000Z"})
    _add(store, held)
    assert _keeper(store).prune(LATER) == []
    raised = [e.fields for e in store.seen if e.type == "alarm.raised"]
    assert [a["id"] for a in raised] == [f"hold:{held['call_id']}"]
    assert "no hold for it" in raised[0]["message"]


def test_evidence_hold_writes_the_chain_the_index_and_the_audit_log_at_once(store):
    record = _record(1)
    _add(store, record)
    hold = store.evidence.hold(store.index, record["call_id"], reason="court 4", by="viewer:olga")
    chain = [json.loads(line) for line in (store.data / "evidence" / "chain.jsonl").read_text().splitlines()]
    audit = [json.loads(line) for line in (store.data / "evidence" / "audit.jsonl").read_text().splitlines()]
    assert chain[-1]["kind"] == "hold" and chain[-1]["by"] == "viewer:olga" and chain[-1]["at"] == hold["at"]
    assert store.index.get(record["call_id"])["hold"] == hold == {"reason": "court 4", "by": "viewer:olga",
                                                                  "at": hold["at"]}
    assert [(e["action"], e["who"], e["what"]["call_id"]) for e in audit] == [("hold", "viewer:olga",
                                                                               record["call_id"])]
    assert _keeper(store).prune(LATER) == [] and not [e for e in store.seen if e.type == "alarm.raised"]
    with pytest.raises(UnknownCall, match="no call 'nope'"):
        store.evidence.hold(store.index, "nope", reason="x", by="cli:test")


def test_release_ends_a_hold_the_index_lost(store):
    record = _record(1)
    _add(store, record)
    store.evidence.hold(store.index, record["call_id"], reason="claim", by="cli:test")
    store.index.update(record["call_id"], {"hold": None})   # edited behind the device's back
    assert store.evidence.release(store.index, record["call_id"], reason="settled", by="cli:test") is True
    assert store.evidence.chain.holds() == {}
    assert store.evidence.release(store.index, record["call_id"], reason="again", by="cli:test") is False
    assert [r["call_id"] for r in _keeper(store).prune(LATER)] == [record["call_id"]]


def test_the_chains_holds_are_read_only_as_far_as_the_chain_grew(store):
    chain = store.evidence.chain
    for n in range(300):
        chain.note("deleted", f"call-{n}", by="device:retention", reason="retention: older than 90 days")
    assert chain.holds() == {}
    size = (store.data / "evidence" / "chain.jsonl").stat().st_size
    first = chain._holds.bytes_read
    assert first == size
    chain.note("hold", "call-x", by="cli:test", reason="claim")
    assert set(chain.holds()) == {"call-x"}
    grown = (store.data / "evidence" / "chain.jsonl").stat().st_size - size
    assert chain._holds.bytes_read - first == grown, "only the new entry is read"
    assert set(chain.holds()) == {"call-x"} and chain._holds.bytes_read - first == grown, "nothing new: nothing read"


def test_a_shorter_or_rewritten_chain_is_read_again_from_the_start_keeping_the_holds_it_had(store):
    """Read again from the start (what it says now counts), but a cut cannot release what was held."""
    chain = store.evidence.chain
    path = store.data / "evidence" / "chain.jsonl"
    chain.note("hold", "call-a", by="cli:test", reason="one")
    chain.note("hold", "call-b", by="cli:test", reason="two")
    assert set(chain.holds()) == {"call-a", "call-b"}
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0])   # the last hold cut
    assert set(chain.holds()) == {"call-a", "call-b"} and "got shorter" in str(chain.rewritten())
    path.write_bytes(lines[0].replace(b'"kind":"hold"', b'"kind":"held"'))   # same length, rewritten
    assert set(chain.holds()) == {"call-a", "call-b"} and "no longer holds" in str(chain.rewritten())
    path.write_bytes(b"".join(lines))
    chain.note("hold", "call-c", by="cli:test", reason="three")
    assert set(chain.holds()) == {"call-a", "call-b", "call-c"}, "what is appended afterwards still counts"


def test_the_disk_guard_says_what_is_true_when_nothing_is_left_to_delete(store):
    _keeper(store, free=50).guard()
    (alarm,) = [e.fields for e in store.seen if e.type == "alarm.raised" and e.fields["id"] == ALARM_FULL]
    assert "only held or marked recordings remain" not in alarm["message"]
    assert "no recordings are left" in alarm["message"] and "other data" in alarm["message"]


def test_the_disk_guard_counts_what_it_keeps(store):
    _add(store, _record(1), _record(2, tags=["good example"]))
    store.evidence.hold(store.index, _record(1)["call_id"], reason="claim", by="cli:test")
    _keeper(store, free=50).guard()
    (alarm,) = [e.fields for e in store.seen if e.type == "alarm.raised" and e.fields["id"] == ALARM_FULL]
    assert "1 held and 1 marked recording(s) are kept" in alarm["message"], alarm["message"]


# ---- only what the device wrote ends a hold (review of issue 22) --------------------------------------


def _append_line(store: Any, entry: dict[str, Any]) -> None:
    with open(store.data / "evidence" / "chain.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def test_a_release_planted_in_the_chain_does_not_end_the_hold(store):
    held = _record(1)
    _add(store, held)
    store.evidence.hold(store.index, held["call_id"], reason="claim", by="cli:test")
    head = store.evidence.chain.ledger.head_entry()
    _append_line(store, {"seq": head.seq + 1, "kind": "release", "call_id": held["call_id"], "prev": head.hash,
                         "hash": "00" * 32, "sig": None})
    store.index.update(held["call_id"], {"hold": None})
    assert held["call_id"] in store.evidence.chain.holds(), "an unlinked release is not the device's word"
    assert _keeper(store).prune(LATER) == []
    assert store.index.get(held["call_id"]) is not None


def test_a_release_with_a_forged_signature_does_not_end_the_hold(store):
    from callrec.evidence.ledger import entry_hash

    held = _record(1)
    _add(store, held)
    store.evidence.hold(store.index, held["call_id"], reason="claim", by="cli:test")
    head = store.evidence.chain.ledger.head_entry()
    forged = {"seq": head.seq + 1, "at": "2026-02-01T00:00:00.000Z", "kind": "release", "call_id": held["call_id"],
              "by": "cli:test", "reason": "x", "prev": head.hash}
    forged["hash"] = entry_hash(forged)   # the hash recomputes, but nobody without the device key can sign it
    forged["sig"] = "AAAA"
    _append_line(store, forged)
    assert held["call_id"] in store.evidence.chain.holds()


def test_holds_known_before_the_chain_was_cut_stay_while_the_process_runs(store):
    held = _record(1)
    _add(store, held)
    store.evidence.hold(store.index, held["call_id"], reason="claim", by="cli:test")
    chain = store.evidence.chain
    assert held["call_id"] in chain.holds()
    path = store.data / "evidence" / "chain.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))   # the hold line cut
    store.index.update(held["call_id"], {"hold": None})
    assert held["call_id"] in chain.holds()
    assert chain.rewritten() is not None


def test_prune_deletes_nothing_while_the_chain_lacks_the_head_the_device_witnessed(store):
    """A fresh process (`callrec prune`) cannot remember holds a cut took away: it refuses to delete
    while the chain does not hold the head the event journal witnessed."""
    from callrec.evidence import Heads, LedgerHead, Witness

    held, other = _record(1), _record(2)
    _add(store, held, other)
    store.evidence.hold(store.index, held["call_id"], reason="claim", by="cli:test")
    witnessed = store.evidence.chain.ledger.head_entry()
    path = store.data / "evidence" / "chain.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))   # the hold line cut, and the index's hold taken out
    store.index.update(held["call_id"], {"hold": None})
    witness = Witness("the event journal", None, Heads(LedgerHead(witnessed.seq, witnessed.hash), None))
    keeper = Keeper(store.data, store.index, store.evidence.chain, store.evidence.audit, RetentionConfig(days=30),
                    store.bus, disk=lambda: DiskState(1000, 900), witness=lambda: witness)
    assert keeper.prune(LATER) == []
    assert store.index.get(held["call_id"]) is not None and store.index.get(other["call_id"]) is not None
    assert keeper.suspended is not None and f"entry seq {witnessed.seq}" in keeper.suspended
    raised = {e.fields["id"]: e.fields for e in store.seen if e.type == "alarm.raised"}
    assert raised["retention.suspended"]["severity"] == "critical"
    keeper_full = Keeper(store.data, store.index, store.evidence.chain, store.evidence.audit,
                         RetentionConfig(days=30, min_free_percent=10), store.bus, disk=lambda: DiskState(1000, 10),
                         witness=lambda: witness)
    keeper_full.guard()
    assert store.index.get(other["call_id"]) is not None, "the disk guard deletes nothing either"
