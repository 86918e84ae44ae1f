"""A damaged index or journal heals itself; the disk and the index agree again; nothing is silent.

Regression tests for issue 9 items 2 and 3: random bytes in index.sqlite or journal.sqlite stopped
every entry point; a 0-byte index was taken as empty and its recordings never re-indexed; a broken
`.part.json` sent the audio to an undocumented quarantine; a deleted recording still read
`complete`; a read-only data directory broke the read-only commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import callrec, noise_wav, scenario_toml
from fault_support import read_only

TWO_CALLS = [(1.0, "hook", "off"), (5.0, "hook", "on"), (7.0, "hook", "off"), (11.0, "hook", "on")]


def _simulate(work: Path, data: Path, events: list, seconds: float = 14) -> list[dict]:
    if not (work / "line1.wav").exists():
        noise_wav(work / "line1.wav", seconds)
    (work / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": events}]))
    out = callrec("simulate", str(work / "s.toml"), "--data", str(data))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding two finished calls (copied for each test)."""
    work = tmp_path_factory.mktemp("recorded")
    _simulate(work, work / "data", TWO_CALLS)
    return work / "data"


@pytest.fixture
def data(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(recorded, copy)
    return copy


def _ids(data: Path) -> list[str]:
    out = callrec("calls", "list", "--json", "--data", str(data))
    assert out.returncode == 0, out.stderr
    return sorted(json.loads(line)["call_id"] for line in out.stdout.splitlines())


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "random bytes":
        path.write_bytes(np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes())
    elif how == "truncated":
        with open(path, "r+b") as handle:
            handle.truncate(max(size // 2, 100))
    elif how == "zeroed":
        path.write_bytes(bytes(size))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "overwritten middle":
        with open(path, "r+b") as handle:
            handle.seek(size // 3)
            handle.write(np.random.default_rng(6).integers(0, 256, 4096, dtype=np.uint8).tobytes())


DAMAGES = ["random bytes", "truncated", "zeroed", "empty", "overwritten middle"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_index_is_moved_aside_and_rebuilt_and_the_next_call_is_recorded(data, tmp_path, how):
    before = _ids(data)
    _damage(data / "index.sqlite", how)
    listing = callrec("calls", "list", "--data", str(data))
    assert "Traceback" not in listing.stderr
    if listing.returncode != 0:
        assert "index" in listing.stderr and "callrec recover" in listing.stderr, listing.stderr
    events = _simulate(tmp_path, data, [(1.0, "hook", "off"), (5.0, "hook", "on")], seconds=8)
    after = _ids(data)
    new = [e["call_id"] for e in events if e["type"] == "call.started"]
    assert after == sorted(before + new), "the old calls are indexed again, the new one is recorded"
    if how != "empty":   # an empty file is an empty index, not a damaged one: re-indexing suffices
        raised = [e for e in events if e["type"] == "alarm.raised" and e["id"] == "index.damaged"]
        assert raised and "moved aside" in raised[0]["message"]
        assert list(data.glob("index.sqlite.damaged-*")), "the damaged file is kept for a look"


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_journal_is_replaced_and_seq_continues_from_the_highest_known(data, tmp_path, how):
    with sqlite3.connect(data / "journal.sqlite") as db:
        last = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    _damage(data / "journal.sqlite", how)
    logs = callrec("calls", "list", "--data", str(data))
    assert logs.returncode == 0 and "Traceback" not in logs.stderr
    events = _simulate(tmp_path, data, [(1.0, "hook", "off"), (5.0, "hook", "on")], seconds=8)
    seqs = [e["seq"] for e in events]
    assert min(seqs) > last, "a seq is never handed out twice, even when the journal was lost"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    if how != "empty":
        assert any(e["type"] == "alarm.raised" and e["id"] == "journal.damaged" for e in events)


@pytest.mark.parametrize("command", [["recover"], ["calls", "list"], ["calls", "show", "X"]])
def test_no_command_ends_in_a_traceback_on_a_damaged_index(data, command):
    _damage(data / "index.sqlite", "random bytes")
    out = callrec(*command, "--data", str(data))
    assert "Traceback" not in out.stderr and "DatabaseError" not in out.stderr
    if command == ["recover"]:
        assert out.returncode == 0, out.stderr
        assert "moved aside" in out.stdout and out.stdout.count("indexed again") == 2


def test_recover_indexes_again_what_a_zero_byte_index_lost(data):
    before = _ids(data)
    (data / "index.sqlite").write_bytes(b"")
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("indexed again") == 2 and "nothing to recover" not in out.stdout
    assert _ids(data) == before


def test_recordings_without_their_sidecar_are_indexed_from_the_audio_alone(data):
    ids = _ids(data)
    (data / "index.sqlite").write_bytes(b"")
    for sidecar in data.rglob("*.json"):
        sidecar.unlink()
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0 and out.stdout.count("rebuilt from the recording file") == 2, out.stdout
    record = json.loads(callrec("calls", "show", ids[0], "--data", str(data)).stdout)
    assert record["status"] == "recovered" and record["metadata_lost"] is True
    assert record["recording"]["sha256"] and record["duration_s"] > 3


def test_a_deleted_recording_is_shown_missing_not_complete(data):
    ids = _ids(data)
    show = json.loads(callrec("calls", "show", ids[0], "--data", str(data)).stdout)
    audio = data / show["recording"]["path"]
    kept = audio.read_bytes()
    audio.unlink()
    listing = callrec("calls", "list", "--data", str(data)).stdout
    assert re.search(rf"{ids[0]}\s.*MISSING", listing), listing
    out = callrec("calls", "show", ids[0], "--data", str(data))
    assert json.loads(out.stdout)["missing_since"] and "missing from the disk" in out.stderr
    recover = callrec("recover", "--data", str(data))
    assert recover.returncode == 1 and f"MISSING {ids[0]}" in recover.stdout
    audio.write_bytes(kept)   # found again (a backup restored): no longer missing
    assert callrec("recover", "--data", str(data)).returncode == 0
    assert json.loads(callrec("calls", "show", ids[0], "--data", str(data)).stdout).get("missing_since") is None


def _part(data: Path, call_id: str, seconds: float, meta: bytes | None) -> Path:
    directory = data / "recordings" / "2026" / "11" / "28"
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f"{call_id}.pcm.part"
    part.write_bytes(np.full(int(seconds * 8000), 700, dtype="<i2").tobytes() + b"\x01")   # half a frame at the end
    if meta is not None:
        (directory / f"{call_id}.part.json").write_bytes(meta)
    return part


@pytest.mark.parametrize("meta", [b'{"call_id": "x", "line": 1, "sample_r', b"\xff\xfe garbage", None])
def test_a_part_with_broken_metadata_is_still_recovered_as_audio_and_says_so(data, meta):
    call_id = "20261128T101500123Z-L2-ab12"
    _part(data, call_id, 6.0, meta)
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert f"recovered {call_id}" in out.stdout
    record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
    assert record["status"] == "recovered" and record["line"] == 2
    assert record["started_at"] == "2026-11-28T10:15:00.123Z"
    assert any("inferred from the file name" in error for error in record["errors"])
    assert soundfile.info(str(data / record["recording"]["path"])).frames == 6 * 8000
    assert not list(data.rglob("*.part*")) and not (data / "quarantine").exists()


def test_a_part_that_names_no_call_goes_to_quarantine_which_recover_lists(data):
    _part(data, "holiday-recording", 2.0, None)
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 1 and "QUARANTINED holiday-recording.pcm.part" in out.stdout
    listing = callrec("recover", "--list-quarantine", "--data", str(data))
    assert listing.returncode == 0 and "holiday-recording.pcm.part" in listing.stdout


def test_read_only_commands_work_on_a_read_only_data_directory(data):
    ids = _ids(data)
    with read_only(data):
        listing = callrec("calls", "list", "--data", str(data))
        assert listing.returncode == 0, listing.stderr
        assert all(call_id in listing.stdout for call_id in ids)
        show = callrec("calls", "show", ids[0], "--data", str(data))
        assert show.returncode == 0 and json.loads(show.stdout)["call_id"] == ids[0]
        run = callrec("run", "--data", str(data), timeout=30)
        assert run.returncode == 1 and "storage.data_dir" in run.stderr and "Traceback" not in run.stderr
        assert not os.access(data, os.W_OK)
