"""A full disk loses audio, never the recorder: alarms, a `failed` call that still ends, recovery after.

Real filesystem trouble: a tiny tmpfs as the recordings' disk (needs root to mount; skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from callrec.events import EventBus
from callrec.recording import Audio, Begin, Finish, Recorder
from callrec.store import CallIndex, Journal


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    done = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:   # never leave a mount behind, and say why it was busy
        subprocess.run(["umount", "-l", str(mount)], check=False)
        pytest.fail(f"umount {mount} failed: {done.stderr.strip()} (a file left open?)")


def record(call_id: str, line: int = 1) -> dict:
    return {"call_id": call_id, "line": line, "direction": "inbound", "started_at": "2026-11-28T10:00:00.000Z",
            "answered_at": None, "ended_at": "2026-11-28T10:00:05.000Z", "duration_s": 5.0, "rings": 1,
            "flashes": 0, "caller_number": None, "dialed_number": None, "announcement": None, "errors": []}


def test_full_disk_fails_the_call_raises_an_alarm_and_the_next_call_records_again(tmp_path, small_disk: Path):
    journal = Journal(tmp_path / "journal.sqlite")
    index = CallIndex(tmp_path / "index.sqlite")
    bus = EventBus(journal)
    events: list[dict] = []
    bus.subscribe(lambda e: events.append(e.as_dict()))
    recorder = Recorder(small_disk, "flac", 8000, index, bus, sync_interval_s=0.2)
    recorder.start()
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 900_000)
    directory = small_disk / "recordings"
    audio = np.full(8000, 1000, dtype=np.int16)
    try:
        recorder.submit(Begin("c1", 1, directory, {"call_id": "c1", "line": 1, "sample_rate": 8000,
                                                   "started_wall": 0.0, "record": {}}, audio))
        for _ in range(20):   # 20 s of audio: far more than the 100 kB left
            recorder.submit(Audio("c1", audio))
        recorder.submit(Finish("c1", record("c1"), None, False, 0.0))
        assert recorder.wait_idle(10)
        assert recorder.alive, "a full disk must not end the recorder thread"
        ended = [e for e in events if e["type"] == "call.ended"]
        assert ended and ended[0]["status"] == "failed"
        assert any(e["type"] == "alarm.raised" and e["kind"] == "storage" for e in events)
        failed = index.get("c1")
        assert failed["status"] == "failed" and any("could not be written" in err or "finalize failed" in err
                                                     for err in failed["errors"])
        assert not list(small_disk.rglob("*.tmp")), "no half-written file left behind"

        filler.unlink()    # space again: the next call records normally
        recorder.submit(Begin("c2", 1, directory, {"call_id": "c2", "line": 1, "sample_rate": 8000,
                                                   "started_wall": 0.0, "record": {}}, audio))
        recorder.submit(Audio("c2", audio))
        recorder.submit(Finish("c2", record("c2"), None, False, 0.0))
        assert recorder.wait_idle(10)
        assert index.get("c2")["status"] == "complete"
    finally:
        recorder.stop()
        index.close()
        journal.close()
