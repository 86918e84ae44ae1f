"""`callrec verify`: re-hash everything and name each problem by call id.

Reads the chain, the audit log, the index, the recordings directory and the newest witnesses of
the ledgers' heads; needs no key (the hashes cover the ciphertext of encrypted recordings) and
writes nothing. A problem is one of: file altered, file truncated, file swapped, file missing,
sidecar altered or missing, index entry missing or altered, not in the chain, file nobody indexed,
file planted, chain broken, audit log broken, signature invalid, hold missing from the index, hold
not in the chain, deleted while under legal hold, chain (or audit log) tail missing, chain (or
audit log) rewritten. Deleted calls (a `deleted` chain entry) are not missing. What could not be
compared (a witness out of reach) is a note, not a problem.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.evidence.audit import AuditLog
from callrec.evidence.chain import MUTABLE_FIELDS, Chain, file_sha256, record_sha256, sidecar_of
from callrec.evidence.heads import KIND_OF, Witness, compare, journal_witness
from callrec.evidence.keys import load_public, public_id
from callrec.evidence.ledger import parse_json, well_formed
from callrec.evidence.planted import Expected, unexpected_files
from callrec.store import CallIndex, Journal, StoreDamaged


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
    notes: list[str] = field(default_factory=list)

    def add(self, call_id: Any, kind: str, detail: str) -> None:
        self.problems.append(Problem(call_id if isinstance(call_id, str) else None, kind, detail))

    def document(self, **extra: Any) -> dict[str, Any]:
        """The report as `verify --json` prints it (local or from the archive)."""
        return {**extra, "ok": not self.problems, "calls": self.calls, "deleted": self.deleted,
                "chain_entries": self.chain_entries, "audit_entries": self.audit_entries,
                "device_public_key": self.public_key, "chain_head": self.head,
                "problems": [p.__dict__ for p in self.problems], "notes": self.notes}


def verify(data_dir: Path, *, since: str | None = None, pinned: Ed25519PublicKey | None = None,
           witnesses: Sequence[Witness] = ()) -> Report:
    """`since`: only calls started on or after this day (YYYY-MM-DD) are re-hashed; the chain
    and the audit log are always checked whole (they are small). `witnesses`: heads held outside
    the device (the archive's, the broker's), read by the caller before this is called; the event
    journal's is read here, first: a witness must not be newer than the ledgers it is compared with."""
    report = Report()
    read_at = time.time()   # files newer than this may be calls finalized while verify reads
    witnessed = [*_journal_witness(data_dir, report), *witnesses]
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
    by_seq = {e.get("seq"): e for e in entries if well_formed(e)}
    for problem in problems:
        entry = by_seq.get(problem.seq) or {}
        report.add(entry.get("call_id"), problem.kind,
                   f"chain line {problem.line} (seq {problem.seq}): {problem.message}")
    audit = AuditLog(data_dir).ledger
    audit_problems, report.audit_entries = audit.check(public)
    for problem in audit_problems:
        report.add(None, "audit log broken", f"audit line {problem.line} (seq {problem.seq}): {problem.message}")
    report.head = chain.head() if entries else None
    check_heads(witnessed, {"chain": entries, "audit": audit.entries()}, report)

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
    _check_holds(entries, index, report)
    expected = _expected(sealed, deleted, offloaded, index)
    for stray_id, kind, detail in unexpected_files(data_dir, expected, newer_than=read_at):
        report.add(stray_id, kind, detail)
    return report


def check_heads(witnesses: Sequence[Witness], ledgers: Mapping[str, Iterable[dict[str, Any]]], report: Report,
                where: str = "the log") -> None:
    """Each ledger against every witness: the furthest missing tail and the first rewrite are named.
    Only the hashes at witnessed seqs are kept while the entries stream by (an audit log is long)."""
    if not witnesses:
        report.notes.append("no witness of the ledgers' heads was found (no service journaled them, no archive "
                            "or broker holds them): a cut tail cannot be told from here")
    for witness in witnesses:
        seqs = {name: head.seq for name in ("chain", "audit") if (head := witness.heads.of(name))}
        report.notes.append(f"heads compared with {witness.source}" + (f" of {witness.at}" if witness.at else "")
                            + "".join(f", {KIND_OF[name]} seq {seq}" for name, seq in seqs.items()))
    for name, entries in ledgers.items():
        wanted = {head.seq for witness in witnesses if (head := witness.heads.of(name))}
        hashes, last = {}, 0
        for entry in entries:
            if well_formed(entry):
                last = max(last, int(entry["seq"]))
                if entry["seq"] in wanted:
                    hashes[int(entry["seq"])] = str(entry["hash"])
        found = [(head.seq, result) for witness in witnesses
                 if (head := witness.heads.of(name)) and (result := compare(witness, name, hashes, last, where))]
        tails = [(seq, result) for seq, result in found if result[0].endswith("tail missing")]
        rewrites = [result for _seq, result in found if result[0].endswith("rewritten")]
        if tails:
            report.add(None, *max(tails, key=lambda pair: pair[0])[1])   # the witness that saw furthest
        if rewrites:
            report.add(None, *rewrites[0])


def _journal_witness(data_dir: Path, report: Report) -> list[Witness]:
    path = data_dir / "journal.sqlite"
    if not path.exists():
        report.notes.append(f"no event journal at {path}: its witness of the heads could not be read")
        return []
    try:
        journal = Journal(path, readonly=True)
        try:
            witness = journal_witness(journal)
        finally:
            journal.close()
    except (StoreDamaged, sqlite3.Error, OSError, ValueError) as error:
        report.notes.append(f"the event journal {path} cannot be read ({error}): its witness was not compared")
        return []
    if witness is None:
        report.notes.append("the event journal holds no evidence.head (no service has run here since heads "
                            "are journaled)")
        return []
    return [witness]


def _check_holds(entries: list[dict[str, Any]], index: dict[str, dict[str, Any]] | None, report: Report) -> None:
    """Legal holds as the chain says them against the index's copy, and deletions that broke one."""
    held: dict[str, dict[str, Any]] = {}
    for entry in entries:
        call_id, kind = str(entry.get("call_id")), entry.get("kind")
        if kind == "hold":
            held[call_id] = entry
        elif kind == "release":
            held.pop(call_id, None)
        elif kind == "deleted" and call_id in held:
            broken = held.pop(call_id)
            report.add(call_id, "deleted while under legal hold",
                       f"chain seq {entry.get('seq')} deletes it ({entry.get('reason')}, by {entry.get('by')}) while "
                       f"the hold of seq {broken.get('seq')} ({broken.get('reason')}, by {broken.get('by')}) was "
                       "never released")
    if index is None:
        return
    for call_id, record in sorted(index.items()):
        hold = record.get("hold")
        if hold and call_id not in held:
            by = hold.get("by") if isinstance(hold, dict) else None
            report.add(call_id, "hold not in the chain",
                       f"the index marks it as held (by {by}) but the chain has no hold for it: a chain entry "
                       "cut or lost, or a hold written behind the device's back")
        elif call_id in held and not hold:
            entry = held[call_id]
            report.add(call_id, "hold missing from the index",
                       f"the chain holds it (seq {entry.get('seq')}, {entry.get('reason')}, by {entry.get('by')}) but "
                       "the index does not: the index was edited, or its update was lost (retention keeps it anyway)")


def _expected(sealed: dict[str, dict[str, Any]], deleted: set[str], offloaded: set[str],
              index: dict[str, dict[str, Any]] | None) -> Expected:
    """The files the chain and the index account for."""
    expected = Expected()
    for call_id, entry in sealed.items():
        relative = entry.get("recording")
        if call_id in deleted:
            expected.gone[call_id] = "deleted by policy"
        elif call_id in offloaded:
            expected.gone[call_id] = "offloaded to the archive (its local copy removed)"
        elif isinstance(relative, str) and relative:
            expected.expect(call_id, relative, str(sidecar_of(Path(relative))))
    for call_id in deleted - set(sealed):
        expected.gone[call_id] = "deleted by policy"
    for call_id, record in (index or {}).items():
        recording = record.get("recording")
        relative = recording.get("path") if isinstance(recording, dict) else None
        if isinstance(relative, str) and relative and call_id not in expected.gone:
            expected.expect(call_id, relative, str(sidecar_of(Path(relative))))
        elif not record.get("recording") and record.get("status") == "failed":
            expected.waiting.add(call_id)
    return expected


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
        sealed = parse_json(sidecar.read_bytes())
    except (OSError, ValueError):
        return []
    if not isinstance(sealed, dict):
        return []
    keys = (set(sealed) | set(record)) - MUTABLE_FIELDS
    return sorted(key for key in keys if sealed.get(key) != record.get(key))


def _read_index(data_dir: Path) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    path = data_dir / "index.sqlite"
    if not path.exists():
        return None, f"no call index at {path}"
    try:
        with CallIndex(path, readonly=True) as index:
            return {str(r.get("call_id")): r for r in index if isinstance(r, dict)}, None
    except (StoreDamaged, sqlite3.Error, OSError, ValueError, RecursionError) as error:
        return None, f"{path}: {error}"
