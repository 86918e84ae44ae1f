"""The office side: what an archive holds, read without the device. `verify --archive` checks a
device's whole history from the archive alone (its chain and audit segments, its public key, every
object re-hashed); `archive list` and `export --archive` find and bundle calls from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from callrec.archive.port import ArchiveError, ArchiveTarget, sha256_of
from callrec.evidence import Report, check_lines, parse_public, record_sha256

SEGMENT = re.compile(r"^(chain|audit)-(\d{10})-(\d{10})\.jsonl$")


@dataclass
class DeviceArchive:
    """One device's part of an archive."""

    target: ArchiveTarget
    device_id: str
    _keys: list[str] | None = field(default=None, repr=False)

    def forget(self) -> None:
        """List the archive again at the next question (new calls arrived)."""
        self._keys = None

    def keys(self) -> list[str]:
        if self._keys is None:
            self._keys = self.target.list(self.device_id)
        return self._keys

    def segments(self, name: str) -> list[str]:
        found = []
        for key in self.keys():
            match = SEGMENT.match(key.rsplit("/", 1)[-1])
            if key.startswith(f"{self.device_id}/chain/") and match and match.group(1) == name:
                found.append((int(match.group(2)), key))
        return [key for _, key in sorted(found)]

    def ledger_lines(self, name: str) -> list[bytes]:
        """The ledger's lines in order. Segments that overlap (a device that crashed between shipping
        a segment and noting it, before it learnt to resume) repeat entries byte for byte: a repeat is
        read once; an entry that differs from the one of the same place stays, for the check to name."""
        lines: list[bytes] = []
        seen: set[bytes] = set()
        for key in self.segments(name):
            for line in self.target.get(key).splitlines():
                if line.strip() and line not in seen:
                    seen.add(line)
                    lines.append(line + b"\n")
        return lines

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.ledger_lines("chain"):
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def public_key(self) -> str | None:
        try:
            return self.target.get(f"{self.device_id}/chain/device.pub").decode("ascii").strip()
        except (ArchiveError, UnicodeDecodeError):
            return None

    def records(self, after: str = "") -> Iterator[dict[str, Any]]:
        """Every archived call record (the sidecars) whose call id sorts after `after`, oldest first."""
        for key in self.keys():
            if key.startswith(f"{self.device_id}/recordings/") and key.endswith(".json") \
                    and key.rsplit("/", 1)[-1].removesuffix(".json") > after:
                try:
                    record = json.loads(self.target.get(key))
                except (ValueError, ArchiveError):
                    continue
                if isinstance(record, dict):
                    yield record

    def read(self, relative: str) -> bytes | None:
        try:
            return self.target.get(f"{self.device_id}/{relative}")
        except ArchiveError:
            return None


def devices(target: ArchiveTarget) -> list[str]:
    """The devices an archive holds (each has `<device_id>/chain/`)."""
    return sorted({key.split("/", 1)[0] for key in target.list("") if "/chain/" in key})


def verify_archive(device: DeviceArchive, *, pinned: str | None = None, lock_days: int | None = None) -> Report:
    report = Report()
    stored_key = device.public_key()
    key_text = pinned or stored_key
    public = None
    if key_text is None:
        report.add(None, "device key missing", f"{device.device_id}/chain/device.pub is not in the archive")
    else:
        public = parse_public(key_text)
        report.public_key = key_text
        if pinned and stored_key and stored_key != pinned:
            report.add(None, "device key differs", f"the archive's key {stored_key} is not the pinned one")
    problems, report.chain_entries = check_lines(device.ledger_lines("chain"), public)
    for problem in problems:
        report.add(None, problem.kind, f"chain entry {problem.line} (seq {problem.seq}): {problem.message}")
    audit_problems, report.audit_entries = check_lines(device.ledger_lines("audit"), public)
    for problem in audit_problems:
        report.add(None, "audit log broken", f"audit entry {problem.line} (seq {problem.seq}): {problem.message}")
    entries = device.entries()
    report.head = str(entries[-1]["hash"]) if entries else None
    sealed: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    for entry in entries:
        call_id = str(entry.get("call_id"))
        if entry.get("kind") == "call":
            sealed[call_id] = entry
        elif entry.get("kind") == "deleted":
            deleted.add(call_id)
    report.deleted = len(deleted)
    keys = set(device.keys())
    for call_id, entry in sorted(sealed.items()):
        if call_id in deleted:
            continue
        report.calls += 1
        relative = entry.get("recording")
        if not relative:
            continue
        key = f"{device.device_id}/{relative}"
        if key not in keys:
            report.add(call_id, "file missing", f"{key} is not in the archive")
            continue
        data = device.target.get(key)
        if sha256_of(data) != entry.get("recording_sha256"):
            expected = entry.get("recording_bytes")
            kind = "file truncated" if isinstance(expected, int) and len(data) < expected else "file altered"
            report.add(call_id, kind, f"{key}: not the sealed recording ({len(data)} bytes)")
        sidecar_key = key.rsplit("/", 1)[0] + f"/{call_id}.json"
        if sidecar_key not in keys:
            report.add(call_id, "sidecar missing", f"{sidecar_key} is not in the archive")
        else:
            sidecar = device.target.get(sidecar_key)
            if sha256_of(sidecar) != entry.get("sidecar_sha256"):
                report.add(call_id, "sidecar altered", f"{sidecar_key} differs from the sealed one")
            else:
                try:
                    if record_sha256(json.loads(sidecar)) != entry.get("record_sha256"):
                        report.add(call_id, "sidecar altered", f"{sidecar_key}: its record is not the sealed one")
                except ValueError:
                    report.add(call_id, "sidecar altered", f"{sidecar_key} is not JSON")
        if lock_days is not None:
            _check_lock(device, key, entry, lock_days, report, call_id)
    for key in sorted(keys):
        if not key.startswith(f"{device.device_id}/recordings/") or key.endswith(".json"):
            continue
        call_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
        if call_id not in sealed:
            report.add(call_id, "file nobody indexed", f"{key} is in no chain entry of {device.device_id}")
    return report


def _check_lock(device: DeviceArchive, key: str, entry: dict[str, Any], days: int, report: Report,
                call_id: str) -> None:
    import datetime as dt

    stored = device.target.head(key)
    if stored is None:
        return
    if stored.retain_until is None:
        report.add(call_id, "object lock missing", f"{key} is not under Object Lock (COMPLIANCE)")
        return
    started = _call_start(call_id)
    if started is not None:
        needed = started + dt.timedelta(days=days) - dt.timedelta(seconds=1)
        if dt.datetime.fromisoformat(stored.retain_until) < needed:
            report.add(call_id, "object lock too short", f"{key} is locked until {stored.retain_until}, "
                                                          f"less than {days} days after the call")


def _call_start(call_id: str) -> Any:
    import datetime as dt

    try:
        return dt.datetime.strptime(call_id[:18], "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
