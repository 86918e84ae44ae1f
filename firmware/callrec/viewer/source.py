"""Where the viewer's calls come from: a device's data directory, or the office archive.

Both give the same things: call records, a file's bytes by its path in the record, the chain,
a quick verification of one call against its chain entry, and an audit log to write every login,
playback, download, note, export and hold into (the device's own with `--data`; with `--archive`,
the office's, kept beside the annotations).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from callrec.archive import ArchiveError, ArchiveTarget
from callrec.evidence import AuditLog, Evidence, record_sha256, sidecar_of
from callrec.store import CallIndex


@dataclass(frozen=True)
class CallCheck:
    ok: bool
    problems: list[str]


class CallSource(Protocol):
    name: str
    audit: AuditLog
    can_hold: bool

    def records(self, after: str = "") -> Iterator[dict[str, Any]]: ...
    def get(self, call_id: str) -> dict[str, Any] | None: ...
    def read(self, record: dict[str, Any], which: str = "recording") -> bytes | None: ...
    def entries(self) -> list[dict[str, Any]]: ...
    def public_key(self) -> str | None: ...
    def check(self, record: dict[str, Any]) -> CallCheck: ...
    def hold(self, call_id: str, reason: str, who: str) -> None: ...
    def release(self, call_id: str, reason: str, who: str) -> None: ...


def _check(record: dict[str, Any], entry: dict[str, Any] | None, audio: bytes | None,
           sidecar: bytes | None) -> CallCheck:
    problems = []
    if entry is None:
        return CallCheck(False, ["not in the evidence chain"])
    if audio is None:
        problems.append("recording file missing")
    elif hashlib.sha256(audio).hexdigest() != entry.get("recording_sha256"):
        problems.append("recording altered (SHA-256 differs from its chain entry)")
    if sidecar is None:
        problems.append("sidecar missing")
    elif hashlib.sha256(sidecar).hexdigest() != entry.get("sidecar_sha256"):
        problems.append("sidecar altered")
    if record_sha256(record) != entry.get("record_sha256"):
        problems.append("call record differs from the sealed one")
    return CallCheck(not problems, problems)


class DataDirSource:
    """A device's data directory (the one-box office, or a copy of the card)."""

    can_hold = True

    def __init__(self, data_dir: Path) -> None:
        self.name = str(data_dir)
        self.data_dir = data_dir
        self.evidence = Evidence.open(data_dir)
        self.audit = self.evidence.audit
        self.index = CallIndex(data_dir / "index.sqlite", readonly=True)

    def records(self, after: str = "") -> Iterator[dict[str, Any]]:
        return self.index.after(after)

    def get(self, call_id: str) -> dict[str, Any] | None:
        return self.index.get(call_id)

    def read(self, record: dict[str, Any], which: str = "recording") -> bytes | None:
        path = (record.get("recording") or {}).get("path")
        if not path:
            return None
        audio = self.data_dir / path
        target = audio if which == "recording" else sidecar_of(audio)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None

    def entries(self) -> list[dict[str, Any]]:
        return list(self.evidence.chain.entries())

    def public_key(self) -> str | None:
        return self.evidence.key.public_id if self.evidence.key is not None else None

    def check(self, record: dict[str, Any]) -> CallCheck:
        entry = self.evidence.chain.sealed().get(record["call_id"])
        if record.get("offloaded_at"):
            return CallCheck(True, ["the local copy was offloaded: it is in the archive"])
        return _check(record, entry, self.read(record), self.read(record, "sidecar"))

    def hold(self, call_id: str, reason: str, who: str) -> None:
        with CallIndex(self.data_dir / "index.sqlite") as index:
            self.evidence.hold(index, call_id, reason=reason, by=who)

    def release(self, call_id: str, reason: str, who: str) -> None:
        with CallIndex(self.data_dir / "index.sqlite") as index:
            self.evidence.release(index, call_id, reason=reason, by=who)


class ArchiveSource:
    """The office archive, every device in it (or one); read-only: holds are placed on the device."""

    can_hold = False
    refresh_s = 60.0   # listing a bucket is not free: new calls show within a minute

    def __init__(self, target: ArchiveTarget, audit_dir: Path, device: str | None = None) -> None:
        from callrec.archive import DeviceArchive, devices

        self.name = target.url
        self.target = target
        names = [device] if device else devices(target)
        self.devices = {name: DeviceArchive(target, name) for name in names}
        audit_dir.mkdir(parents=True, exist_ok=True)
        self.audit = Evidence.open(audit_dir).audit   # the office's own audit log, signed by its own key
        self._device_of: dict[str, str] = {}
        self._sealed: dict[str, dict[str, Any]] = {}

    def records(self, after: str = "") -> Iterator[dict[str, Any]]:
        for name, device in self.devices.items():
            device.forget()
            for record in device.records(after):
                call_id = str(record.get("call_id"))
                if call_id > after:
                    self._device_of[call_id] = name
                    yield {**record, "device_id": name}

    def get(self, call_id: str) -> dict[str, Any] | None:
        return None   # the archive's records do not change after the upload

    def read(self, record: dict[str, Any], which: str = "recording") -> bytes | None:
        device = self.devices.get(self._device_of.get(str(record.get("call_id")), ""))
        path = (record.get("recording") or {}).get("path")
        if device is None or not path:
            return None
        if which != "recording":
            path = str(Path(path).with_name(f"{record['call_id']}.json"))
        return device.read(path)

    def entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for device in self.devices.values():
            out += device.entries()
        return out

    def public_key(self) -> str | None:
        for device in self.devices.values():
            return device.public_key()
        return None

    def check(self, record: dict[str, Any]) -> CallCheck:
        if not self._sealed:
            for device in self.devices.values():
                for entry in device.entries():
                    if entry.get("kind") == "call":
                        self._sealed[str(entry.get("call_id"))] = entry
        clean = {k: v for k, v in record.items() if k != "device_id"}
        try:
            return _check(clean, self._sealed.get(record["call_id"]), self.read(record), self.read(record, "sidecar"))
        except ArchiveError as error:
            return CallCheck(False, [str(error)])

    def hold(self, call_id: str, reason: str, who: str) -> None:
        raise PermissionError("holds are placed on the device (`callrec hold` there), not in the archive")

    def release(self, call_id: str, reason: str, who: str) -> None:
        raise PermissionError("holds are released on the device (`callrec release` there), not in the archive")


