"""A call that ends on a full disk, then the process exits: what it knew must survive (issue 22 item 5).

The recorder, the finisher, the journal and the index all on one real small disk (a tmpfs): the
disk fills in the middle of a call, room comes back for a moment, the disk fills again, the call
ends and cannot be finalized, the process goes away. `recover` while the disk is still full must
say so and exit non-zero; once space is back it must register the call with its real length, the
storage gap where it was, and a reason that names the full disk, never "power loss or crash".
No event `seq` handed out before the exit may be handed out again, and the `call.ended` that the
full journal could not take must be journaled.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from callrec.events import Event, EventBus
from callrec.mqtt.backlog import JournalKeeper
from callrec.privacy import Recipients, decrypt_frames, new_identity
from callrec.recording import Audio, Begin, Finish, Recorder, recover_all
from callrec.recording.diskerrors import describe_error
from callrec.recording.files import PartWriter, finalize
from callrec.store import CallIndex, Journal
from conftest import callrec, noise_wav, scenario_toml
from disk_support import fill_disk, grow_disk
from fault_support import mounted_tmpfs, small_disk  # noqa: F401 - fixture

RATE = 8000
CALL_ID = "20261128T100000000Z-L1-5ca1ab1e"
STARTED_WALL = 1795860000.0    # 2026-11-28T10:00:00Z, as the call id says
PREROLL_S = 1.0
BEFORE_S, LOST_S, AFTER_S = 3.0, 5.0, 2.0   # the call: recorded, the disk full, recorded again
CALL_S = BEFORE_S + LOST_S + AFTER_S
PAGE_S = 4096 / 2 / RATE    # a tmpfs page of 16-bit samples: what still fits the last page of a full disk


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 0.3 * 32767).clip(-32768, 32767).astype(np.int16)


@dataclass
class EndedOnFullDisk:
    data: Path
    filler: Path
    events: list[dict[str, Any]] = field(default_factory=list)   # what the first process told (stdout, MQTT)


@dataclass(frozen=True)
class Privacy:
    """`[privacy] recipient` set (the part is age-frames) or not; `identity` is the office's key."""

    identity: str | None = None
    recipients: Recipients | None = None

    @classmethod
    def of(cls, encrypted: bool) -> Privacy:
        if not encrypted:
            return cls()
        identity, recipient = new_identity()
        return cls(identity, Recipients.parse([recipient]))


PLAIN_OR_ENCRYPTED = pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])


def _record() -> dict[str, Any]:
    return {"call_id": CALL_ID, "line": 1, "direction": "inbound", "started_at": "2026-11-28T10:00:00.000Z",
            "ended_at": "2026-11-28T10:00:10.000Z", "duration_s": CALL_S, "rings": 1, "preroll_s": PREROLL_S,
            "errors": []}


def _end_a_call_on_a_full_disk(disk: Path, privacy: Privacy = Privacy(), data: Path | None = None) -> EndedOnFullDisk:
    """The first process: a call whose middle the disk refused and whose end it could not finalize.
    `data` elsewhere than on `disk` (with `disk` mounted as its recordings): only the audio is refused."""
    data = data or disk / "data"
    journal = Journal(data / "journal.sqlite")
    index = CallIndex(data / "index.sqlite")
    bus = EventBus(journal)
    run = EndedOnFullDisk(data, disk / "filler")
    bus.subscribe(lambda e: run.events.append(e.as_dict()))
    recorder = Recorder(data, "flac", RATE, index, bus, sync_interval_s=0.2, recipients=privacy.recipients)
    recorder.start()
    directory = data / "recordings" / "2026" / "11" / "28"
    meta = {"call_id": CALL_ID, "line": 1, "sample_rate": RATE, "started_wall": STARTED_WALL,
            "preroll_s": PREROLL_S, "record": {"call_id": CALL_ID, "line": 1, "direction": "inbound",
                                               "started_at": "2026-11-28T10:00:00.000Z", "rings": 1}}
    try:
        recorder.submit(Begin(CALL_ID, 1, directory, meta, _noise(PREROLL_S, 1)))
        recorder.submit(Audio(CALL_ID, _noise(BEFORE_S, 2)))
        assert recorder.wait_idle(30, finished=False)
        fill_disk(disk)                                      # the disk fills in the middle of the call
        for second in range(int(LOST_S)):
            recorder.submit(Audio(CALL_ID, _noise(1.0, 10 + second)))
        assert recorder.wait_idle(30, finished=False)
        with open(run.filler, "r+b") as handle:              # a technician makes room for a moment
            handle.truncate(max(0, run.filler.stat().st_size - 400_000))
        recorder.submit(Audio(CALL_ID, _noise(AFTER_S, 3)))
        assert recorder.wait_idle(30, finished=False)
        fill_disk(disk)                                      # and the disk fills again before the end
        frames = int((PREROLL_S + CALL_S) * RATE)
        recorder.submit(Finish(CALL_ID, _record(), frames, False, STARTED_WALL + CALL_S))
        assert recorder.wait_idle(30)
    finally:
        recorder.stop()                                      # the process goes away, the disk still full
        index.close()
        journal.close()
    assert list(data.rglob("*.part")), "the call's audio is kept for recover"
    return run


def _line_heard_s(data: Path, record: dict[str, Any], privacy: Privacy) -> float:
    """How much of the line's timeline (from the pre-roll) the recording and its stated gaps cover:
    a plain recording holds silence in its gaps; a recovered age-frames one holds the audio only,
    and its record's gaps say where the line was not heard (docs/privacy.md)."""
    path = data / record["recording"]["path"]
    if privacy.identity is None:
        return float(soundfile.info(str(path)).frames / RATE)
    from pyrage import x25519
    audio = sum(len(chunk) for chunk in decrypt_frames(path, [x25519.Identity.from_str(privacy.identity)]))
    return audio / RATE + sum(gap["duration_s"] for gap in record["gaps"])


def _recover(data: Path) -> tuple[Any, list[dict[str, Any]]]:
    """A later process running `recover` (the store opened as `callrec recover` opens it)."""
    journal = Journal(data / "journal.sqlite", lazy=True)
    index = CallIndex(data / "index.sqlite", lazy=True)
    bus = EventBus(journal)
    told: list[dict[str, Any]] = []
    bus.subscribe(lambda e: told.append(e.as_dict()))
    try:
        result = recover_all(data, "flac", index, bus, rate=RATE, preroll_s=PREROLL_S)
        return result, told
    finally:
        index.close()
        journal.close()


def _journaled(data: Path) -> dict[int, dict[str, Any]]:
    with sqlite3.connect(data / "journal.sqlite") as db:
        return {seq: json.loads(body) for seq, body in db.execute("SELECT seq, body FROM events")}


def test_a_call_that_ended_on_a_full_disk_is_recovered_with_its_storage_gap_and_real_length(small_disk):  # noqa: F811
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk)
    run.filler.unlink()                                      # space comes back
    result, _ = _recover(run.data)
    (record,) = result.recovered
    assert record["status"] == "recovered"
    assert record["duration_s"] == CALL_S, "the real length the process measured, not what reached the disk"
    (gap,) = record["gaps"]
    assert gap["cause"] == "storage"
    # the disk refused the audio from where the part's last page was full (at most a page after)
    assert BEFORE_S <= gap["at_s"] <= BEFORE_S + PAGE_S, gap
    assert round(gap["at_s"] + gap["duration_s"], 3) == BEFORE_S + LOST_S, gap
    errors = " ".join(record["errors"])
    assert "power loss or crash" not in errors, record["errors"]
    assert "the disk is full" in errors, record["errors"]
    audio, rate = soundfile.read(str(run.data / record["recording"]["path"]), dtype="int16")
    assert len(audio) == (PREROLL_S + CALL_S) * RATE, "the file keeps the line's timeline"
    start, end = round((PREROLL_S + gap["at_s"]) * RATE), int((PREROLL_S + BEFORE_S + LOST_S) * RATE)
    assert not np.any(audio[start:end]), "silence where the disk refused the audio"
    assert np.array_equal(audio[end:], _noise(AFTER_S, 3)), "what was recorded after the gap is where it was"


@PLAIN_OR_ENCRYPTED
def test_a_call_that_ended_on_a_full_disk_gets_the_same_length_gap_and_notes_encrypted_or_not(
        small_disk, encrypted):  # noqa: F811
    privacy = Privacy.of(encrypted)
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk, privacy)
    assert list(run.data.rglob("*.pcm.age.part" if encrypted else "*.pcm.part"))
    run.filler.unlink()
    result, told = _recover(run.data)
    (record,) = result.recovered
    assert record["recording"]["encryption"] == ("age-frames" if encrypted else None)
    assert record["duration_s"] == CALL_S
    (gap,) = record["gaps"]
    assert gap["cause"] == "storage" and round(gap["at_s"] + gap["duration_s"], 3) == BEFORE_S + LOST_S, gap
    errors = " ".join(record["errors"])
    assert "neither as audio nor as a stated gap" not in errors, "the gap is stated: nothing is unaccounted"
    assert "the disk is full" in errors and "power loss or crash" not in errors, record["errors"]
    assert abs(_line_heard_s(run.data, record, privacy) - (PREROLL_S + CALL_S)) < 0.01, \
        "the recording and its gap cover the whole call"
    (ended,) = [e for e in told if e["type"] == "call.ended"]
    assert ended["duration_s"] == CALL_S


def test_recover_while_the_disk_is_still_full_keeps_the_part_and_says_the_disk_is_full(small_disk):  # noqa: F811
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk)
    result, told = _recover(run.data)
    assert not result.recovered and result.postponed, "nothing can be finalized on a full disk"
    assert list(run.data.rglob("*.pcm.part")), "the part stays for the next try"
    (alarm,) = [e for e in told if e["type"] == "alarm.raised" and e["id"] == f"recover:{CALL_ID}"]
    assert "the disk is full" in alarm["message"] and "flac decoder" not in alarm["message"], alarm
    run.filler.unlink()
    later, _ = _recover(run.data)
    (record,) = later.recovered
    assert record["duration_s"] == CALL_S and len(record["gaps"]) == 1


def test_finalizing_and_indexing_on_a_full_disk_say_the_disk_is_full_and_where(small_disk):  # noqa: F811
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk)
    (alarm,) = [e for e in run.events if e["type"] == "alarm.raised" and e["id"] == f"recording:{CALL_ID}"]
    assert "the disk is full" in alarm["message"], alarm["message"]
    assert str(run.data) in alarm["message"], "the message names the file the disk refused"
    assert "flac decoder" not in alarm["message"]
    (index_alarm,) = [e for e in run.events if e["type"] == "alarm.raised" and e["id"] == "index"]
    assert "the disk is full" in index_alarm["message"] and "index.sqlite" in index_alarm["message"], index_alarm


def test_finalize_onto_a_full_disk_raises_enospc_with_the_path(tmp_path, small_disk):  # noqa: F811
    disk = small_disk("1m")
    part = tmp_path / "c.pcm.part"
    part.write_bytes(_noise(10.0, 4).tobytes())
    fill_disk(disk)
    out = disk / "c.flac"
    with pytest.raises(OSError) as raised:
        finalize(part, out, "flac", RATE)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename is not None
    assert str(disk) in str(raised.value.filename)
    assert describe_error(raised.value).startswith("the disk is full")
    assert not list(disk.glob("c.flac*")), "no half-written file left behind"


def test_no_seq_handed_out_before_the_exit_is_handed_out_again(small_disk):  # noqa: F811
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk)
    told_first = {e["seq"]: e for e in run.events}
    _, told_full = _recover(run.data)                        # a recover while the disk is still full
    run.filler.unlink()
    _, told_later = _recover(run.data)
    assert told_full and told_later
    assert min(e["seq"] for e in told_full) > max(told_first), "a number the first process handed out"
    assert min(e["seq"] for e in told_later) > max(e["seq"] for e in told_full)
    for seq, body in _journaled(run.data).items():           # the journal never holds another event under it
        if seq in told_first:
            assert (body["type"], body["call_id"]) == (told_first[seq]["type"], told_first[seq]["call_id"]), seq


def test_the_call_ended_that_the_full_journal_lost_is_journaled_by_recover(small_disk):  # noqa: F811
    disk = small_disk("1m")
    run = _end_a_call_on_a_full_disk(disk)
    (first,) = [e for e in run.events if e["type"] == "call.ended"]
    assert first["status"] == "failed"
    journaled = _journaled(run.data)
    assert not any(b["type"] == "call.ended" for b in journaled.values()), "precondition: the journal was full"
    run.filler.unlink()
    _recover(run.data)
    ended = [b for b in _journaled(run.data).values() if b["type"] == "call.ended" and b["call_id"] == CALL_ID]
    assert len(ended) == 1, ended
    assert ended[0]["fields"]["status"] == "recovered" and ended[0]["fields"]["duration_s"] == CALL_S


def test_numbers_stamped_while_the_journal_could_not_be_written_are_known_never_to_have_reached_it(
        small_disk):  # noqa: F811
    """Not one event of the call reached the journal (the disk was full before the first): the
    journal that opens next still knows those numbers were never stored, not pruned, so recover
    tells their `call.ended` (it once missed it when no older row sat below the lost one)."""
    disk = small_disk("1m")
    journal = Journal(disk / "data" / "journal.sqlite")
    bus = EventBus(journal)
    try:
        stored = bus.emit(Event("line.ring", 1, None, STARTED_WALL, {}))
        filler = fill_disk(disk)
        held = [bus.emit(Event("line.ring", 1, None, STARTED_WALL + n, {})) for n in (1, 2, 3)]
    finally:
        journal.close()                                      # the process ends with them in memory
    filler.unlink()
    again = Journal(disk / "data" / "journal.sqlite")
    try:
        after = EventBus(again).emit(Event("line.ring", 1, None, STARTED_WALL + 4, {}))
        assert [again.never_stored(s.seq) for s in held] == [True, True, True]
        assert not again.never_stored(stored.seq) and not again.never_stored(after.seq)
    finally:
        again.close()
    assert after.seq > max(s.seq for s in held), "and no number is handed out twice"


def test_a_journal_seq_the_full_disk_refuses_is_said_once_not_at_every_retry(small_disk, caplog):  # noqa: F811
    """Every retry of a held event tries to reserve numbers in journal.seq; on a disk full from the
    start it cannot be allocated. One warning says so; a line per retry (ten a second) flooded the
    log, filled a reader's pipe and froze the service writing to it."""
    disk = small_disk("1m")
    fill_disk(disk)
    journal = Journal(disk / "journal.sqlite", lazy=True)
    bus = EventBus(journal)
    try:
        with caplog.at_level(logging.INFO, logger="callrec.store.journal"):
            for n in range(40):
                bus.emit(Event("line.ring", 1, None, STARTED_WALL + n, {}))
                bus.retry()
    finally:
        journal.close()
    refusals = [r for r in caplog.records if "journal.seq" in r.getMessage() and "cannot write" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals][:3]


@pytest.mark.parametrize("lost_how", ["pruned", "replaced"])
def test_a_call_ended_the_journal_took_is_not_journaled_again_once_the_journal_no_longer_holds_it(
        tmp_path, caplog, lost_how):
    """Only the recordings' disk is full: the journal takes the failed call's `call.ended`; later
    the journal's bound prunes it (or the journal is replaced after damage). Its absence then proves
    nothing: recover must not tell the call's end a second time."""
    data = tmp_path / "data"
    with contextlib.ExitStack() as stack:
        disk = stack.enter_context(mounted_tmpfs(data / "recordings", "1m"))
        run = _end_a_call_on_a_full_disk(disk, data=data)
        (first,) = [e for e in run.events if e["type"] == "call.ended"]
        assert _journaled(data)[first["seq"]]["type"] == "call.ended", "precondition: the journal took it"
        if lost_how == "pruned":   # as `mqtt.journal_max_events` does: the oldest rows, up to that seq
            newer = sum(1 for seq in _journaled(data) if seq > first["seq"])
            keeper = JournalKeeper(data / "journal.sqlite")
            try:
                keeper.prune(max_events=newer, max_days=3650, now=STARTED_WALL)
            finally:
                keeper.close()
            assert min(_journaled(data), default=first["seq"] + 1) > first["seq"], "pruned past it"
        else:                      # moved aside after damage: a new journal continues above journal.seq
            for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (data / name).rename(data / f"{name}.damaged-20261128T100100Z")
        run.filler.unlink()
        with caplog.at_level(logging.WARNING, logger="callrec.recording.recover"):
            result, told = _recover(data)
    (record,) = result.recovered
    assert record["status"] == "recovered"
    assert not [e for e in told if e["type"] == "call.ended"], "its end was told once already"
    assert not [b for b in _journaled(data).values() if b["type"] == "call.ended"]
    assert "may already have been told" in caplog.text, caplog.text


@PLAIN_OR_ENCRYPTED
def test_a_call_whose_process_went_away_on_a_full_disk_says_its_end_is_not_known(small_disk, encrypted):  # noqa: F811
    privacy = Privacy.of(encrypted)
    disk = small_disk("1m")
    data = disk / "data"
    journal = Journal(data / "journal.sqlite")
    index = CallIndex(data / "index.sqlite")
    recorder = Recorder(data, "flac", RATE, index, EventBus(journal), sync_interval_s=0.2,
                        recipients=privacy.recipients)
    recorder.start()
    meta = {"call_id": CALL_ID, "line": 1, "sample_rate": RATE, "started_wall": STARTED_WALL,
            "preroll_s": PREROLL_S, "record": {"call_id": CALL_ID, "line": 1, "direction": "inbound"}}
    try:
        recorder.submit(Begin(CALL_ID, 1, data / "recordings" / "2026" / "11" / "28", meta, _noise(PREROLL_S, 1)))
        recorder.submit(Audio(CALL_ID, _noise(BEFORE_S, 2)))
        assert recorder.wait_idle(30, finished=False)
        filler = fill_disk(disk)
        for second in range(int(LOST_S)):
            recorder.submit(Audio(CALL_ID, _noise(1.0, 10 + second)))
        assert recorder.wait_idle(30, finished=False)
    finally:
        recorder.stop()   # the process goes away in the middle of the call: the core never ended it
        index.close()
        journal.close()
    filler.unlink()
    result, _ = _recover(data)
    (record,) = result.recovered
    assert record["recording"]["encryption"] == ("age-frames" if encrypted else None)
    (gap,) = record["gaps"]
    assert gap["cause"] == "storage" and round(gap["at_s"] + gap["duration_s"], 3) == BEFORE_S + LOST_S, gap
    assert record["duration_s"] == BEFORE_S + LOST_S, "what is proven: the audio and the gap it knew of"
    assert record["ended_at"] == "2026-11-28T10:00:08.000Z"
    errors = " ".join(record["errors"])
    assert "its end was not recorded" in errors and "at least 8.0 s" in errors, record["errors"]
    assert "power loss or crash" not in errors, "the disk was full when it was last heard of"


def test_recover_exits_non_zero_for_parts_it_cannot_read_and_never_follows_a_link_or_a_fifo(tmp_path):
    day = tmp_path / "data" / "recordings" / "2026" / "11" / "28"
    day.mkdir(parents=True)
    (day / "20261128T100000000Z-L1-aaaa.pcm.age.part").write_bytes(np.random.default_rng(5).bytes(5000))
    secret = tmp_path / "secret"
    secret.write_bytes(b"\1" * 16000)
    (day / "20261128T100001000Z-L1-bbbb.pcm.part").symlink_to(secret)
    os.mkfifo(day / "20261128T100002000Z-L1-cccc.pcm.part")
    out = callrec("recover", "--data", str(tmp_path / "data"), timeout=60)   # a FIFO opened would hang here
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count("NOT RECOVERED") == 3, out.stdout
    assert "not an age-frames file" in out.stdout and "not a regular file" in out.stdout
    assert "callrec recover` again" in out.stdout and "Traceback" not in out.stderr
    assert not list(day.glob("*.flac")), "nothing registered from a link to another file"
    assert len(list(day.iterdir())) == 3, "every one kept as it was"


# ---- the issue's own scenario, through the command line -----------------------------------------------


def test_a_full_disk_then_the_process_exit_give_a_true_record(tmp_path, small_disk):  # noqa: F811
    """Issue 22 item 5 as filed: 3 MB, a 247.5 s call, non-paced `simulate`, `recover` full, then not."""
    disk = small_disk("3m")
    noise_wav(tmp_path / "line1.wav", 250, level=0.3)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (1.0, "hook", "off"), (248.5, "hook", "on")]}]))
    data = disk / "data"
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), timeout=300)
    assert out.returncode == 0, out.stderr
    printed = [json.loads(line) for line in out.stdout.splitlines()]
    (ended,) = [e for e in printed if e["type"] == "call.ended"]
    call_id = ended["call_id"]
    assert ended["status"] == "failed" and ended["duration_s"] == 247.5
    assert "flac decoder" not in out.stdout + out.stderr, "ENOSPC is reported as a full disk"

    full = callrec("recover", "--data", str(data))
    assert full.returncode != 0, "recover could not recover the call: it must not exit 0"
    said = full.stdout + full.stderr
    assert call_id in said and "the disk is full" in said and "callrec recover" in said, said
    assert "Traceback" not in said

    grow_disk(disk, "8m")
    later = callrec("recover", "--data", str(data))
    assert later.returncode == 0, later.stdout + later.stderr
    record = json.loads(callrec("calls", "show", call_id, "--data", str(data)).stdout)
    assert record["status"] == "recovered"
    assert record["duration_s"] == 247.5, "the real length, measured when the call ended"
    (gap,) = record["gaps"]
    info = soundfile.info(str(data / record["recording"]["path"]))
    assert gap["cause"] == "storage" and 0 < gap["at_s"] < 247.5
    assert abs(gap["at_s"] + gap["duration_s"] - 247.5) < 0.25, gap
    assert abs(info.duration - (1.0 + 247.5)) < 0.05, "pre-roll, the recorded audio, silence in the gap"
    assert not any("power loss or crash" in error for error in record["errors"]), record["errors"]
    assert any("the disk is full" in error for error in record["errors"]), record["errors"]
    journaled = _journaled(data)
    assert [b for b in journaled.values() if b["type"] == "call.ended" and b["call_id"] == call_id]
    for event in printed:                                    # no seq printed by simulate reused by recover
        body = journaled.get(event["seq"])
        assert body is None or (body["type"], body["call_id"]) == (event["type"], event["call_id"]), event


def test_a_reservation_written_by_the_firmware_before_is_honoured_and_made_rewritable_in_place(tmp_path):
    (tmp_path / "journal.seq").write_text("5000\n", encoding="ascii")   # the one-number form of before
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        stamped = EventBus(journal).emit(Event("line.ring", 1, None, STARTED_WALL, {}))
    finally:
        journal.close()
    assert stamped.seq == 5001, "an empty journal continues after the reservation it finds"
    assert (tmp_path / "journal.seq").stat().st_size == 1024, "allocated: later rewritten in place"


def test_audio_an_encrypted_part_held_when_the_full_disk_refused_its_sync_is_a_stated_gap(small_disk):  # noqa: F811
    """An age-frames part buffers up to a frame (0.5 s) before it writes; the periodic sync that the
    full disk refuses drops that audio, which must become a storage gap where it was, or every
    recovered encrypted call would be short by it, unexplained."""
    disk = small_disk("1m")
    writer = PartWriter(disk / "rec", CALL_ID, {"sample_rate": RATE}, Privacy.of(True).recipients)
    writer.write(_noise(1.0, 1))
    writer.sync()
    writer.write(_noise(0.3, 2))                             # held in memory until a frame is full or a sync
    fill_disk(disk)
    with pytest.raises(OSError):
        writer.sync()
    assert writer.meta["gaps"] == [{"frame": RATE, "frames": int(0.3 * RATE), "cause": "storage"}]
    writer.close()
