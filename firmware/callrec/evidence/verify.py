"""`callrec verify`: re-hash everything and name each problem by call id.

Reads the chain, the audit log, the index and the recordings directory; needs no key (the
hashes cover the ciphertext of encrypted recordings) and writes nothing. A problem is one of:
file altered, file truncated, file swapped, file missing, sidecar altered or missing, index entry
missing or altered, not in the chain, file nobody indexed, chain broken, audit log broken,
signature invalid. Deleted calls (a `deleted` chain entry) are not missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.evidence.audit import AuditLog
from callrec.evidence.chain import MUTABLE_FIELDS, Chain, file_sha256, record_sha256, sidecar_of
from callrec.evidence.keys import load_public, public_id
from callrec.store import CallIndex, StoreDamaged

AUDIO_ENDINGS = (".flac", ".wav", ".flac.age", ".wav.age", ".pcm.age-frames")


@dataclass(frozen=True)
class Problem:
    call_id: str | None
    kind: str
    detail: str

    def line(self) -> str:
        return f"{self.call_id or '-':<32} {self.kind}: {self.detail}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    calls: int = 0
    deleted: int = 0
    chain_entries: int = 0
    audit_entries: int = 0
    public_key: str | None = None
    head: str | None = None

    def add(self, call_id: str | None, kind: str, detail: str) -> None:
        self.problems.append(Problem(call_id, kind, detail))

    def document(self, **extra: Any) -> dict[str, Any]:
        """The report as `verify --json` prints it (local or from the archive)."""
        return {**extra, "ok": not self.problems, "calls": self.calls, "deleted": self.deleted,
                "chain_entries": self.chain_entries, "audit_entries": self.audit_entries,
                "device_public_key": self.public_key, "chain_head": self.head,
                "problems": [p.__dict__ for p in self.problems]}


def verify(data_dir: Path, *, since: str | None = None, pinned: Ed25519PublicKey | None = None) -> Report:
    """`since`: only calls started on or after this day (YYYY-MM-DD) are re-hashed; the chain
    and the audit log are always checked whole (they are small)."""
    report = Report()
    stored = load_public(data_dir)
    public = pinned or stored
    report.public_key = public_id(public) if public is not None else None
    if public is None:
        report.add(None, "device key missing", f"no device public key in {data_dir / 'evidence'}: signatures "
                                               "cannot be checked (pass --key ed25519:… to pin one)")
    elif pinned is not None and stored is not None and public_id(stored) != public_id(pinned):
        report.add(None, "device key differs", f"the data directory's key {public_id(stored)} is not the pinned one")
    chain = Chain(data_dir)
    problems, report.chain_entries = chain.ledger.check(public)
    entries = list(chain.entries())
    by_seq = {e.get("seq"): e for e in entries}
    for problem in problems:
        entry = by_seq.get(problem.seq) or {}
        report.add(entry.get("call_id"), problem.kind,
                   f"chain line {problem.line} (seq {problem.seq}): {problem.message}")
    audit_problems, report.audit_entries = AuditLog(data_dir).ledger.check(public)
    for problem in audit_problems:
        report.add(None, "audit log broken", f"audit line {problem.line} (seq {problem.seq}): {problem.message}")
    report.head = chain.head() if entries else None

    sealed: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    offloaded: set[str] = set()
    for entry in entries:
        call_id = str(entry.get("call_id"))
        if entry.get("kind") == "call":
            sealed[call_id] = entry
            deleted.discard(call_id)
        elif entry.get("kind") == "deleted":
            deleted.add(call_id)
        elif entry.get("kind") == "offloaded":
            offloaded.add(call_id)
    report.deleted = len(deleted)
    index, index_problem = _read_index(data_dir)
    if index_problem:
        report.add(None, "index unreadable", index_problem)
    on_disk = _recordings_on_disk(data_dir)
    day = since.replace("-", "") if since else ""
    owner_of = {str(e.get("recording_sha256")): cid for cid, e in sealed.items() if cid not in deleted}

    for call_id, entry in sorted(sealed.items()):
        if call_id in deleted or call_id < day:
            continue
        report.calls += 1
        _check_call(data_dir, call_id, entry, index.get(call_id) if index is not None else None,
                    index is not None, owner_of, report, local=call_id not in offloaded)
    if index is not None:
        for call_id, record in sorted(index.items()):
            if call_id < day or call_id in sealed or not record.get("recording"):
                continue
            report.add(call_id, "not in the chain", "the index holds this call but the evidence chain has no entry "
                                                    "for it (added behind the device's back, or sealed when the "
                                                    "chain could not be written)")
    for call_id, path in sorted(on_disk.items()):
        if call_id < day or call_id in sealed or (index is not None and call_id in index):
            continue
        report.add(call_id, "file nobody indexed",
                   f"{path.relative_to(data_dir)} is in neither the index nor the chain")
    return report


def _check_call(data_dir: Path, call_id: str, entry: dict[str, Any], record: dict[str, Any] | None,
                have_index: bool, owner_of: dict[str, str], report: Report, *, local: bool = True) -> None:
    """`local`: the files should be here (false once offloaded to the archive: `verify --archive`)."""
    relative = entry.get("recording") if local else None
    if relative:
        audio = data_dir / str(relative)
        if not audio.exists():
            report.add(call_id, "file missing", f"{relative} is gone and no deletion is recorded")
        else:
            digest = file_sha256(audio)
            if digest != entry.get("recording_sha256"):
                size, expected = audio.stat().st_size, entry.get("recording_bytes")
                other = owner_of.get(digest)
                if other is not None and other != call_id:
                    report.add(call_id, "file swapped", f"{relative} holds the recording of call {other}")
                elif isinstance(expected, int) and size < expected:
                    report.add(call_id, "file truncated", f"{relative} has {size} of its {expected} bytes")
                else:
                    report.add(call_id, "file altered", f"{relative}: SHA-256 {digest[:16]}… is not the sealed "
                                                        f"{str(entry.get('recording_sha256'))[:16]}…")
        sidecar = sidecar_of(audio)
    else:
        sidecar = None
    if sidecar is not None:
        if not sidecar.exists():
            report.add(call_id, "sidecar missing", f"{sidecar.relative_to(data_dir)} is gone")
        elif file_sha256(sidecar) != entry.get("sidecar_sha256"):
            report.add(call_id, "sidecar altered", f"{sidecar.relative_to(data_dir)} differs from the sealed one")
    if not have_index:
        return
    if record is None:
        report.add(call_id, "index entry missing", "the chain holds this call but the index does not")
    elif record_sha256(record) != entry.get("record_sha256"):
        report.add(call_id, "index entry altered", "the index's record differs from the sealed one "
                                                   f"(changed: {', '.join(_changed(record, data_dir, entry)) or '?'})")


def _changed(record: dict[str, Any], data_dir: Path, entry: dict[str, Any]) -> list[str]:
    """Which fields of the index record differ from its sidecar (when the sidecar is intact)."""
    relative = entry.get("recording")
    if not relative:
        return []
    sidecar = sidecar_of(data_dir / str(relative))
    try:
        if file_sha256(sidecar) != entry.get("sidecar_sha256"):
            return []
        sealed = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    keys = (set(sealed) | set(record)) - MUTABLE_FIELDS
    return sorted(key for key in keys if sealed.get(key) != record.get(key))


def _read_index(data_dir: Path) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    path = data_dir / "index.sqlite"
    if not path.exists():
        return None, f"no call index at {path}"
    try:
        with CallIndex(path, readonly=True) as index:
            return {str(r["call_id"]): r for r in index}, None
    except (StoreDamaged, sqlite3.Error, OSError) as error:
        return None, f"{path}: {error}"


def _recordings_on_disk(data_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    root = data_dir / "recordings"
    with contextlib.suppress(OSError):
        for directory, _dirs, files in os.walk(root):
            for name in files:
                if name.endswith(AUDIO_ENDINGS):
                    found[name.split(".", 1)[0]] = Path(directory) / name
    return found
