"""Files among the recordings that are not exactly what the chain and the index say is there.

`verify` re-hashes the files the chain names; this finds the others. Every file under
`recordings/` must be the sealed (or indexed) recording or sidecar of a call that still has its
local copy, or a part file of a call being recorded (a process owns the data directory) or
waiting to be finalized (indexed as `failed`). Anything else is named with its path: a copy of a
recording under its id in another day's folder, `<id>.wav` beside `<id>.flac`, an `.mp3`, a
sidecar on its own, a part file of a finished call or of no call, a file of a deleted call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

AUDIO_ENDINGS = (".flac", ".wav", ".flac.age", ".wav.age", ".pcm.age-frames")
PART_ENDINGS = (".pcm.part", ".pcm.age.part", ".part.json", ".part.reserve", ".tmp")
PLANTED, UNINDEXED = "file planted", "file nobody indexed"


@dataclass
class Expected:
    """What may lie under `recordings/`, from the chain and the index."""

    files: dict[str, str] = field(default_factory=dict)     # relative path -> its call id
    finished: dict[str, str] = field(default_factory=dict)  # call id -> its recording's relative path
    waiting: set[str] = field(default_factory=set)          # indexed calls whose audio waits as a part
    gone: dict[str, str] = field(default_factory=dict)      # call id -> why none of its files may be here

    def expect(self, call_id: str, recording: str, sidecar: str) -> None:
        self.files[recording] = call_id
        self.files[sidecar] = call_id
        self.finished.setdefault(call_id, recording)


def unexpected_files(data_dir: Path, expected: Expected, *,
                     newer_than: float | None = None) -> Iterator[tuple[str | None, str, str]]:
    """(call id or None, problem kind, detail) for every file under recordings/ that should not be.
    `newer_than`: when the chain and the index were read; while a process records, a recording or
    sidecar of an unknown call written since then is a call finalized meanwhile, not a stray."""
    recording_now = owner_alive(data_dir)
    root = data_dir / "recordings"
    with contextlib.suppress(OSError):
        for directory, _dirs, files in sorted(os.walk(root)):
            for name in sorted(files):
                relative = str((Path(directory) / name).relative_to(data_dir))
                if relative in expected.files:
                    continue
                if recording_now and newer_than is not None and _newer(Path(directory) / name, newer_than) \
                        and name.split(".", 1)[0] not in expected.finished and name.endswith((*AUDIO_ENDINGS, ".json")):
                    continue
                found = _judge(relative, name, expected, recording_now)
                if found is not None:
                    yield found


def _judge(relative: str, name: str, expected: Expected, recording_now: bool) -> tuple[str | None, str, str] | None:
    call_id = name.split(".", 1)[0]
    finished, gone = expected.finished.get(call_id), expected.gone.get(call_id)
    if name.endswith(PART_ENDINGS):
        if finished is not None:
            return call_id, PLANTED, f"{relative}: a part file of call {call_id}, which is finished ({finished})"
        if gone is not None:
            return call_id, PLANTED, f"{relative}: a part file of call {call_id}, which was {gone}"
        if call_id in expected.waiting or recording_now:
            return None   # being recorded, or waiting to be finalized (`callrec recover` retries it)
        return call_id, UNINDEXED, (f"{relative}: a part file no recorder is writing (a crash leftover that "
                                    "`callrec recover` registers, or planted)")
    if name.endswith((*AUDIO_ENDINGS, ".json")):
        if finished is not None:
            return call_id, PLANTED, (f"{relative} is not a file of call {call_id} (its recording is {finished}, "
                                      "its sidecar beside it)")
        if gone is not None:
            return call_id, PLANTED, f"{relative}: call {call_id} was {gone}; no file of it belongs here"
        return call_id, UNINDEXED, f"{relative} is in neither the index nor the chain"
    return None, PLANTED, f"{relative}: not a kind of file callrec writes"


def _newer(path: Path, moment: float) -> bool:
    try:
        return path.stat().st_mtime >= moment - 1.0   # a second's slack for coarse file times
    except OSError:
        return True   # gone meanwhile: renamed into place, or pruned


def owner_alive(data_dir: Path) -> bool:
    """A process owns the data directory now (store.DataLock writes its pid into DATA/.lock), so a
    part file may be a call being recorded. Read only: taking the lock, even shared, could make
    the service fail to start at that moment."""
    try:
        pid = int((data_dir / ".lock").read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass   # alive, another user's
    except OSError:
        return False
    try:   # a stale pid taken by some other program since is not a recorder
        return b"callrec" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
