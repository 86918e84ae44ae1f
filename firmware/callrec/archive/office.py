"""The office side: what an archive holds, read without the device. `verify --archive` checks a
device's whole history from the archive alone (its chain and audit segments, with no gap between
them and none after the newest witnessed head, its public key, every object re-hashed); `archive
list` and `export --archive` find and bundle calls from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from callrec.archive.port import ArchiveError, ArchiveTarget, sha256_of
from callrec.evidence import (
    Heads,
    Report,
    Witness,
    WitnessUnavailable,
    check_heads,
    check_lines,
    parse_json,
    parse_line,
    parse_public,
    read_witness_document,
    record_sha256,
)

SEGMENT = re.compile(r"^(chain|audit)-(\d{10})-(\d{10})\.jsonl$")
WITNESS = re.compile(r"^heads-\d{10}-\d{10}\.json$")


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
        return [key for _, _, key in self.segment_ranges(name)]

    def segment_ranges(self, name: str) -> list[tuple[int, int, str]]:
        """(first seq, last seq, key) of each segment of the ledger `name`, in order."""
        found = []
        for key in self.keys():
            match = SEGMENT.match(key.rsplit("/", 1)[-1])
            if key.startswith(f"{self.device_id}/chain/") and match and match.group(1) == name:
                found.append((int(match.group(2)), int(match.group(3)), key))
        return sorted(found)

    def newest_witness(self) -> tuple[str, bytes] | None:
        """(key, bytes) of the newest witness of the heads (their names sort by time), or None."""
        keys = [key for key in self.keys()
                if key.startswith(f"{self.device_id}/witness/") and WITNESS.match(key.rsplit("/", 1)[-1])]
        if not keys:
            return None
        key = max(keys)
        return key, self.target.get(key)

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

    def entries(self, name: str = "chain") -> list[dict[str, Any]]:
        out = []
        for raw in self.ledger_lines(name):
            try:
                out.append(parse_line(raw))
            except ValueError:
                continue
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
                    record = parse_json(self.target.get(key))
                except (ValueError, ArchiveError):
                    continue
                if isinstance(record, dict):
                    yield record

    def read(self, relative: str) -> bytes | None:
        try:
            return self.target.get(f"{self.device_id}/{relative}")
        except ArchiveError:
            return None


def _newest_witness(device: DeviceArchive, public: Any) -> tuple[str, Heads, str | None, bool] | None:
    """(key, heads, when, signed) of the archive's newest witness of the heads, or None when it holds
    none; ValueError when it is unreadable, ArchiveError when the archive cannot be read."""
    found = device.newest_witness()
    if found is None:
        return None
    key, raw = found
    try:
        return (key, *read_witness_document(raw, public))
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None


def archive_witness(device: DeviceArchive, public: Any) -> Witness | None:
    """The archive's newest witness of this device's heads, for `verify` on the device (None: the
    archive holds none yet). WitnessUnavailable when it cannot be used; ArchiveError when the
    archive cannot be read."""
    try:
        found = _newest_witness(device, public)
    except ValueError as error:
        raise WitnessUnavailable(f"the archive's witness is unreadable ({error})") from None
    if found is None:
        return None
    key, heads, at, signed = found
    if not signed:
        raise WitnessUnavailable(f"the archive's witness {key} is not signed by this device's key: not compared")
    return Witness(f"the archive ({key})", at, heads)


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
    _check_segments(device, report)
    _check_witness(device, public, {"chain": entries, "audit": device.entries("audit")}, report)
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
                    record = parse_json(sidecar)
                    if not isinstance(record, dict) or record_sha256(record) != entry.get("record_sha256"):
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


def _check_segments(device: DeviceArchive, report: Report) -> None:
    """Each ledger's segments follow one another from seq 1: a gap is a segment deleted."""
    for name, kind in (("chain", "chain segment missing"), ("audit", "audit segment missing")):
        expected, before = 1, None
        for first, last, key in device.segment_ranges(name):
            if first > expected:
                between = f"between {before} and {key}" if before else f"before {key}"
                report.add(None, kind, f"{device.device_id}/chain/{name}-{expected:010d}-{first - 1:010d}.jsonl: "
                                       f"entries seq {expected}–{first - 1} are not in the archive ({between})")
            expected, before = max(expected, last + 1), key


def _check_witness(device: DeviceArchive, public: Any, ledgers: dict[str, list[dict[str, Any]]],
                   report: Report) -> None:
    """The archive's ledgers against its newest signed witness: a tail segment deleted is named."""
    try:
        found = _newest_witness(device, public)
    except ValueError as error:
        report.add(None, "witness unreadable", str(error))
        return
    if found is None:
        report.notes.append(f"{device.device_id}/witness/ holds no witness of the heads (archived by a device "
                            "from before witnesses): a deleted tail segment cannot be told")
        return
    key, heads, at, signed = found
    if not signed:
        report.add(None, "witness signature invalid", f"{key} is not signed by the device key {report.public_key}")
        return
    check_heads([Witness(f"the archive's witness {key}", at, heads)], ledgers, report,
                where="the archive's segments")


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
