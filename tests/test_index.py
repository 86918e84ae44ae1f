"""The call index on a real sqlite file: contents, ordering, lookups, TinyDB coherence, crashes."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from callrec.store import CallIndex
from callrec.store.sqlite_storage import SQLiteTinyDB
from tinydb import Query

# Shared by the test and the child processes it kills, so both build the very same records.
RECORD_SOURCE = """
def call_record(i, line=1, caller="0312345678", dialed=None, status="complete"):
    second = i % 60
    return {
        "call_id": f"20261128T{i // 3600 % 24:02d}{i // 60 % 60:02d}{second:02d}Z-L{line}-{i:08d}",
        "line": line,
        "direction": "in",
        "started_at": f"2026-11-28T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{second:02d}.000Z",
        "answered_at": f"2026-11-28T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{second:02d}.500Z",
        "ended_at": None,
        "duration_s": 61.25,
        "rings": 3,
        "flashes": 0,
        "caller_number": caller,
        "dialed_number": dialed,
        "recording": {
            "path": f"recordings/2026/11/28/{i:08d}.flac",
            "format": "flac",
            "bytes": 123456 + i,
            "sha256": "ab" * 32,
            "sample_rate": 8000,
        },
        "announcement": {"file": "notice_ja.wav", "sha256": "cd" * 32, "started_s": 0.4, "ended_s": 3.9},
        "status": status,
        "errors": [],
        "tags": ["follow-up", "見積"],
        "marks": [{"at_s": 12.5, "note": "price quoted"}],
        "pauses": [{"from_s": 20.0, "to_s": 31.5, "by": "console"}],
        "digits": [{"digit": "1", "at_s": 2.0}, {"digit": "#", "at_s": 2.5}],
    }


def big_call_record(i):
    # Larger than three sqlite pages, so a kill can land between the frames of one commit.
    return {**call_record(i), "transcript": "話" * 4000}
"""
_namespace: dict[str, Any] = {}
exec(RECORD_SOURCE, _namespace)
call_record = _namespace["call_record"]
big_call_record = _namespace["big_call_record"]


@pytest.fixture
def index(tmp_path: Path) -> CallIndex:
    idx = CallIndex(tmp_path / "data" / "index.sqlite")
    yield idx
    idx.close()


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["call_id"] for r in records]


# -- contents ----------------------------------------------------------------------------------------


def test_add_then_get_returns_every_field_and_extra_field_unchanged(index: CallIndex) -> None:
    record = call_record(7, line=2, caller="09011112222", dialed="0312345678")
    index.add(record)
    assert index.get(record["call_id"]) == record


def test_index_file_and_its_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "index.sqlite"
    CallIndex(path).close()
    assert path.is_file()


def test_get_of_unknown_call_id_is_none(index: CallIndex) -> None:
    assert index.get("20261128T000000Z-L1-nope") is None


def test_adding_the_same_call_id_again_replaces_the_document(index: CallIndex) -> None:
    first = call_record(1)
    index.add(first)
    second = {"call_id": first["call_id"], "line": 1, "status": "recovered", "errors": ["capture overrun"]}
    index.add(second)
    assert index.get(first["call_id"]) == second
    assert index.count() == 1


def test_reopening_the_index_keeps_every_call(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with CallIndex(path) as idx:
        for i in range(30):
            idx.add(call_record(i))
    with CallIndex(path) as idx:
        assert idx.count() == 30
        assert idx.get(call_record(29)["call_id"]) == call_record(29)


def test_update_merges_top_level_fields_and_returns_the_stored_record(index: CallIndex) -> None:
    record = call_record(3)
    index.add(record)
    merged = index.update(record["call_id"], {"status": "discarded", "tags": ["spam"], "reviewed_by": "sato"})
    assert merged == {**record, "status": "discarded", "tags": ["spam"], "reviewed_by": "sato"}
    assert index.get(record["call_id"]) == merged


def test_update_of_unknown_call_raises_key_error(index: CallIndex) -> None:
    with pytest.raises(KeyError):
        index.update("20261128T000000Z-L1-nope", {"status": "failed"})


def test_update_that_would_make_the_record_invalid_is_refused_and_changes_nothing(index: CallIndex) -> None:
    record = call_record(3)
    index.add(record)
    with pytest.raises(ValueError, match="'rings'"):
        index.update(record["call_id"], {"rings": "three"})
    with pytest.raises(ValueError, match="call_id"):
        index.update(record["call_id"], {"call_id": "other"})
    assert index.get(record["call_id"]) == record


def test_remove_deletes_one_call_and_reports_whether_it_was_there(index: CallIndex) -> None:
    index.add(call_record(1))
    index.add(call_record(2))
    assert index.remove(call_record(1)["call_id"]) is True
    assert index.remove(call_record(1)["call_id"]) is False
    assert _ids(index.latest()) == [call_record(2)["call_id"]]


# -- validation --------------------------------------------------------------------------------------


def test_record_without_call_id_is_refused_naming_call_id(index: CallIndex) -> None:
    record = call_record(1)
    del record["call_id"]
    with pytest.raises(ValueError, match="call_id"):
        index.add(record)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("call_id", 12),
        ("call_id", ""),
        ("line", "1"),
        ("line", True),
        ("direction", 1),
        ("started_at", 1764333296.0),
        ("started_at", "yesterday"),
        ("ended_at", "2026-11-28T12:00:00+09:00"),
        ("duration_s", "61"),
        ("rings", 2.0),
        ("flashes", None),
        ("caller_number", 312345678),
        ("dialed_number", ["0312345678"]),
        ("recording", "rec.flac"),
        ("announcement", ["notice.wav"]),
        ("status", "done"),
        ("errors", "none"),
    ],
)
def test_wrong_typed_core_field_is_refused_naming_the_field(index: CallIndex, field: str, value: Any) -> None:
    record = {**call_record(1), field: value}
    with pytest.raises(ValueError, match=f"'{field}'"):
        index.add(record)
    assert index.count() == 0


@pytest.mark.parametrize(
    ("field", "sub", "value"),
    [
        ("recording", "bytes", "123"),
        ("recording", "sample_rate", 8000.0),
        ("announcement", "started_s", "0.4"),
    ],
)
def test_wrong_typed_nested_field_is_refused_naming_its_path(
    index: CallIndex, field: str, sub: str, value: Any
) -> None:
    record = call_record(1)
    record[field] = {**record[field], sub: value}
    with pytest.raises(ValueError, match=f"'{field}.{sub}'"):
        index.add(record)


def test_extra_field_that_json_cannot_hold_is_refused_naming_it(index: CallIndex) -> None:
    with pytest.raises(ValueError, match="'level'"):
        index.add({**call_record(1), "level": float("nan")})


def test_a_bad_record_in_a_batch_stores_none_of_the_batch(index: CallIndex) -> None:
    with pytest.raises(ValueError, match="'line'"):
        index.add_many([call_record(1), {**call_record(2), "line": "2"}])
    assert index.count() == 0


# -- lookups -----------------------------------------------------------------------------------------


def test_latest_lists_newest_call_id_first_up_to_the_limit(index: CallIndex) -> None:
    order = list(range(50))
    random.Random(4).shuffle(order)
    for i in order:
        index.add(call_record(i))
    assert _ids(index.latest(5)) == [call_record(i)["call_id"] for i in range(49, 44, -1)]
    assert len(index.latest()) == 20
    assert index.latest(0) == []


def test_latest_of_one_line_lists_only_that_lines_calls(index: CallIndex) -> None:
    for i in range(12):
        index.add(call_record(i, line=1 + i % 3))
    assert _ids(index.latest(3, line=2)) == [call_record(i, line=2)["call_id"] for i in (10, 7, 4)]
    assert index.latest(line=9) == []


def test_negative_limit_is_refused(index: CallIndex) -> None:
    with pytest.raises(ValueError, match="limit"):
        index.latest(-1)


def test_find_by_number_matches_caller_and_dialed_number_newest_first(index: CallIndex) -> None:
    index.add(call_record(1, caller="0312345678"))
    index.add(call_record(2, caller="0600000000", dialed="0312345678"))
    index.add(call_record(3, caller="0312345679"))
    index.add(call_record(4, caller="0312345678", dialed="0312345678"))
    found = index.find_by_number("0312345678")
    assert _ids(found) == [call_record(i)["call_id"] for i in (4, 2, 1)]
    assert _ids(index.find_by_number("0312345678", limit=2)) == [call_record(i)["call_id"] for i in (4, 2)]
    assert index.find_by_number("031234567") == []


def test_find_by_number_suffix_and_contains_match_part_of_either_number(index: CallIndex) -> None:
    index.add(call_record(1, caller="0312345678"))
    index.add(call_record(2, caller="0600000000", dialed="0399995678"))
    index.add(call_record(3, caller="0656781234"))
    assert _ids(index.find_by_number("5678", match="suffix")) == [call_record(i)["call_id"] for i in (2, 1)]
    assert _ids(index.find_by_number("5678", match="contains")) == [call_record(i)["call_id"] for i in (3, 2, 1)]


def test_find_by_number_treats_like_wildcards_literally(index: CallIndex) -> None:
    index.add(call_record(1, caller="0312345678"))
    index.add(call_record(2, caller="03_%"))
    assert _ids(index.find_by_number("_%", match="suffix")) == [call_record(2)["call_id"]]
    with pytest.raises(ValueError, match="match"):
        index.find_by_number("1", match="regex")


def test_count_counts_all_calls_or_those_of_one_status(index: CallIndex) -> None:
    for i, status in enumerate(["complete", "complete", "failed", "recovered", "complete"]):
        index.add(call_record(i, status=status))
    assert index.count() == 5
    assert index.count("complete") == 3
    assert index.count("discarded") == 0
    assert index.count_by_status() == {"complete": 3, "recovered": 1, "discarded": 0, "failed": 1}
    with pytest.raises(ValueError, match="status"):
        index.count("done")


def test_calls_since_counts_calls_started_at_or_after_a_time_given_in_any_offset(index: CallIndex) -> None:
    for i in (0, 3599, 3600, 7200):  # 00:00:00, 00:59:59, 01:00:00, 02:00:00 UTC
        index.add(call_record(i))
    assert index.calls_since("2026-11-28T01:00:00Z") == 2
    assert index.calls_since("2026-11-28T10:00:00+09:00") == 2  # the same instant, as a Tokyo clock says it
    assert index.calls_since("2026-11-27T00:00:00Z") == 4
    with pytest.raises(ValueError, match="UTC offset"):
        index.calls_since("2026-11-28T01:00:00")


def test_started_between_lists_calls_of_a_period_newest_first(index: CallIndex) -> None:
    for i in (0, 3599, 3600, 7200):
        index.add(call_record(i))
    found = index.started_between("2026-11-28T00:30:00Z", "2026-11-28T02:00:00Z")
    assert _ids(found) == [call_record(i)["call_id"] for i in (3600, 3599)]


def test_iterating_the_index_yields_every_call_oldest_first(index: CallIndex) -> None:
    index.add_many(call_record(i) for i in range(1203))
    ids = [r["call_id"] for r in index]
    assert ids == [call_record(i)["call_id"] for i in range(1203)]


# -- TinyDB coherence --------------------------------------------------------------------------------


def test_generic_tinydb_search_sees_a_call_added_after_the_same_search_was_cached(index: CallIndex) -> None:
    calls = index.db.table("calls")
    on_line_2 = Query().line == 2
    assert calls.search(on_line_2) == []  # now cached by TinyDB
    index.add(call_record(1, line=2))
    assert [dict(d) for d in calls.search(on_line_2)] == [call_record(1, line=2)]
    index.update(call_record(1, line=2)["call_id"], {"line": 3})
    assert calls.search(on_line_2) == []


def test_generic_tinydb_search_sees_a_call_added_through_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with CallIndex(path) as reader, CallIndex(path) as writer:
        failed = Query().status == "failed"
        assert reader.db.table("calls").search(failed) == []
        writer.add(call_record(1, status="failed"))
        assert len(reader.db.table("calls").search(failed)) == 1


def test_generic_tinydb_writes_are_seen_by_the_index_and_take_fresh_doc_ids(index: CallIndex) -> None:
    index.add_many(call_record(i) for i in range(3))
    calls = index.db.table("calls")
    doc_id = calls.insert(call_record(10))
    assert doc_id == 4
    assert index.get(call_record(10)["call_id"]) == call_record(10)
    calls.update({"status": "failed"}, Query().call_id == call_record(1)["call_id"])
    assert index.get(call_record(1)["call_id"])["status"] == "failed"
    calls.remove(Query().call_id == call_record(2)["call_id"])
    assert index.count() == 3
    assert calls.get(doc_id=doc_id) == call_record(10)
    assert len(calls) == 3


def test_lookups_and_counts_follow_changes_made_through_every_write_path(index: CallIndex) -> None:
    first, second = call_record(1), call_record(2)
    index.add(first)
    index.db.table("calls").insert(second)
    index.add({**first, "line": 3, "status": "failed"})  # upsert through the index
    index.db.table("calls").update({"caller_number": "0799999999"}, Query().call_id == second["call_id"])
    index.update(second["call_id"], {"dialed_number": "0311112222"})
    assert _ids(index.latest(line=3)) == [first["call_id"]]
    assert _ids(index.find_by_number("0799999999")) == [second["call_id"]]
    assert _ids(index.find_by_number("0311112222")) == [second["call_id"]]
    assert index.find_by_number(first["caller_number"]) == [index.get(first["call_id"])]
    assert index.count_by_status() == {"complete": 1, "recovered": 0, "discarded": 0, "failed": 1}
    index.db.table("calls").remove(Query().status == "failed")
    index.db.drop_table("calls")
    assert index.count() == 0
    assert index.count_by_status() == dict.fromkeys(("complete", "recovered", "discarded", "failed"), 0)


def test_stock_tinydb_whole_database_read_and_write_keep_tables_apart(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with SQLiteTinyDB(path) as db:
        db.table("a").insert_multiple([{"x": 1}, {"x": 2}])
        db.table("b").insert({"y": "ü"})
        db.table("empty", persist_empty=True)
        assert db.storage.read() == {"a": {"1": {"x": 1}, "2": {"x": 2}}, "b": {"1": {"y": "ü"}}, "empty": {}}
        db.drop_table("a")
        assert db.tables() == {"b", "empty"}
        db.table("b").truncate()
        assert len(db.table("b")) == 0
        db.drop_tables()
        assert db.storage.read() is None


def test_index_of_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    CallIndex(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        CallIndex(path)


# -- concurrency and crashes -------------------------------------------------------------------------


def test_threads_sharing_one_index_lose_no_call(index: CallIndex) -> None:
    def add_range(start: int) -> None:
        for i in range(start, start + 40):
            index.add(call_record(i, line=1 + start // 1000))
            index.latest(5)

    threads = [threading.Thread(target=add_range, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert index.count() == 160


def _child(path: Path, body: str, *args: str) -> subprocess.Popen[str]:
    """A separate Python process running `body` against the index at `path` (argv[1]; extras follow)."""
    imports = "import sys\nfrom pathlib import Path\nfrom callrec.store.index import CallIndex\n"
    script = f"{imports}{RECORD_SOURCE}\n{body}"
    return subprocess.Popen(
        [sys.executable, "-c", script, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_another_process_writing_at_the_same_time_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with CallIndex(path) as idx:
        child = _child(
            path,
            "ix = CallIndex(Path(sys.argv[1]))\nfor i in range(100):\n    ix.add(call_record(i, line=2))",
        )
        for i in range(100):
            idx.add(call_record(i, line=1))
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert idx.count() == 200
        assert len(idx.latest(200, line=2)) == 100


def test_kill_9_while_inserting_leaves_a_sound_index_holding_a_committed_prefix(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    rng = random.Random(9)
    start = 0
    for _ in range(3):
        child = _child(
            path,
            "ix = CallIndex(Path(sys.argv[1]))\ni = int(sys.argv[2])\n"
            "while True:\n    ix.add(big_call_record(i))\n    print(i, flush=True)\n    i += 1",
            str(start),
        )
        assert child.stdout is not None
        acknowledged = start - 1
        while acknowledged < start + 20:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            acknowledged = int(line)
        time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with CallIndex(path) as idx:
            stored = list(idx)
            assert acknowledged + 1 <= len(stored)
            assert stored == [big_call_record(i) for i in range(len(stored))]
            start = len(stored)


# -- hostile rows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["[" * 100_000, "1" * 5000, "[1, 2]", "not json", '{"call_id": 1e999'])
def test_a_row_edited_behind_the_index_is_skipped_and_reported_never_a_traceback(tmp_path: Path, body: str,
                                                                               caplog: pytest.LogCaptureFixture
                                                                               ) -> None:
    """A careless or hostile hand in index.sqlite must not stop `calls list`, retention or `recover`:
    the row reads as not indexed (so `recover` indexes the call again from its sidecar and `verify`
    names it), and the log says which row."""
    path = tmp_path / "index.sqlite"
    with CallIndex(path) as index:
        index.add(call_record(1))
        index.add(call_record(2))
    victim = call_record(1)["call_id"]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE documents SET body = ? WHERE call_id = ?", (body, victim))
    with CallIndex(path) as index:
        assert index.get(victim) is None
        assert _ids(list(index)) == [call_record(2)["call_id"]]
        assert _ids(index.latest(10)) == [call_record(2)["call_id"]]
        with pytest.raises(KeyError):
            index.update(victim, {"tags": ["x"]})
        index.add(call_record(1))   # as `recover` does from the sidecar: the row is whole again
        assert index.get(victim) == call_record(1)
    assert f"index row of {victim} is not a call record" in caplog.text
