"""What the archive changes in retention and the disk guard (issue 12): archived local copies go
first when the disk is low, held calls stay whatever happens, retention reaches the archive only
when asked (`apply_retention`), and never before the upload is confirmed."""

from __future__ import annotations

import json
from pathlib import Path

from callrec.config import RetentionConfig
from callrec.events import EventBus
from callrec.evidence import Evidence
from callrec.privacy import DiskState, Keeper
from callrec.store import CallIndex, Journal
from conftest import callrec, noise_wav, scenario_toml


def _record(n: int, **fields: object) -> dict:
    call_id = f"20260101T00000{n}000Z-L1-a{n}"
    return {"call_id": call_id, "line": 1, "started_at": f"2026-01-01T00:00:0{n}.000Z",
            "recording": {"path": f"recordings/{call_id}.flac", "format": "flac", "bytes": 100, "sample_rate": 8000},
            **fields}


def test_a_low_disk_with_the_archive_down_offloads_archived_copies_first_and_keeps_held_calls(tmp_path):
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    evidence = Evidence.open(data)
    index = CallIndex(data / "index.sqlite")
    held = {"reason": "claim", "by": "cli:test", "at": "2026-01-02T00:00:00.000Z"}
    records = [_record(0, hold=held), _record(1), _record(2, archived_at="2026-01-01T01:00:00.000Z"),
               _record(3, archived_at="2026-01-01T01:00:00.000Z", hold=held)]
    for record in records:
        index.add(record)
        (data / record["recording"]["path"]).write_bytes(b"x" * 100)
    journal = Journal(data / "journal.sqlite")
    free = {"value": 50}
    keeper = Keeper(data, index, evidence.chain, evidence.audit, RetentionConfig(min_free_percent=10),
                    EventBus(journal), disk=lambda: DiskState(1000, free["value"]), keep_local_days=7.0)

    def removed() -> None:   # each recording the guard removes frees 60 of the 1000
        free["value"] += 60

    original = Path.unlink

    def counting_unlink(self: Path, missing_ok: bool = False) -> None:
        if self.suffix == ".flac" and self.exists():
            removed()
        original(self, missing_ok=missing_ok)

    Path.unlink = counting_unlink  # type: ignore[method-assign]
    try:
        keeper.guard()
    finally:
        Path.unlink = original  # type: ignore[method-assign]
    after = {r["call_id"]: r for r in index}
    assert after[records[2]["call_id"]]["offloaded_at"], "the archived copy goes first"
    assert records[1]["call_id"] in after, "one offload was enough: the unarchived call stays"
    assert (data / records[0]["recording"]["path"]).exists() and (data / records[3]["recording"]["path"]).exists()
    kinds = [json.loads(line)["kind"] for line in (data / "evidence" / "chain.jsonl").read_text().splitlines()]
    assert kinds == ["offloaded"]
    index.close()
    journal.close()


def test_retention_reaches_the_archive_only_with_apply_retention(tmp_path):
    noise_wav(tmp_path / "line1.wav", 12, seed=9)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "hook", "off"), (3.5, "hook", "on"), (5.0, "hook", "off"), (8.0, "hook", "on")]}]))
    for apply in (False, True):
        work = tmp_path / f"apply-{apply}"
        work.mkdir()
        archive = work / "archive"
        config = work / "c.toml"
        config.write_text(f'[mqtt]\ndevice_id = "d1"\n[archive]\nurl = "file://{archive}"\n'
                          f'apply_retention = {str(apply).lower()}\n')
        data = work / "data"
        assert callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config",
                       str(config)).returncode == 0
        flacs = sorted(archive.rglob("*.flac"))
        assert len(flacs) == 2
        assert callrec("prune", "--now", "2099-01-01T00:00:00Z", "--data", str(data), "--config",
                       str(config)).returncode == 0
        sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
        assert sync.returncode == 0, sync.stderr
        left = sorted(archive.rglob("*.flac"))
        assert left == ([] if apply else flacs), (apply, left)
        assert callrec("verify", "--archive", f"file://{archive}", "--config", str(config)).returncode == 0


def test_a_crash_between_a_ledger_segment_and_its_note_does_not_repeat_the_chain_in_the_archive(tmp_path):
    """kill -9 after a chain segment was put but before the queue noted it, while the chain grew: the
    next start finds the segment in the archive and goes on after it (write-once storage could not
    replace it, and a second segment from the same entry would repeat the chain)."""
    from callrec.archive.office import SEGMENT
    from callrec.archive.queue import ArchiveQueue

    noise_wav(tmp_path / "line1.wav", 6, seed=3)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "hook", "off"), (3.5, "hook", "on")]}]))
    archive = tmp_path / "archive"
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\ndevice_id = "d1"\n[archive]\nurl = "file://{archive}"\n')
    offline = tmp_path / "offline.toml"
    offline.write_text('[mqtt]\ndevice_id = "d1"\n')
    data = tmp_path / "data"
    assert callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config", str(config)).returncode == 0
    queue = ArchiveQueue(data / "archive.sqlite")   # the crash: the archive holds the segment, the queue does not know
    assert queue.ledger_seq("chain") > 0
    queue.set_ledger_seq("chain", 0)
    queue.close()
    # the chain grows before the uploader runs again (a call recorded while it was down)
    assert callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config", str(offline)).returncode == 0
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    segments = sorted(p.name for p in (archive / "d1" / "chain").iterdir())
    starts = [int(m.group(2)) for name in segments if (m := SEGMENT.match(name)) and m.group(1) == "chain"]
    assert len(starts) == 2 and len(set(starts)) == 2, segments
    check = callrec("verify", "--archive", f"file://{archive}", "--config", str(config))
    assert check.returncode == 0, check.stdout
