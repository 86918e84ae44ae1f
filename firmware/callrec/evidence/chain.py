"""The tamper-evident chain over this device's calls: what was recorded, deleted, held, released.

One entry per finalized call (`kind: "call"`) holds the SHA-256 of its recording file, of its
sidecar and of its call record as sealed, plus the previous entry's hash and the device key's
signature (ledger.py). Deletions by policy, holds and releases are entries too, so `verify` tells
a deleted call (an entry says who deleted it, when and why) from a missing one (nothing does).

The hashes cover the files as they lie on the disk: with encryption on, the ciphertext, so
verifying needs no key. The record hash leaves out the fields that change by design after the
call (`tags` for training marks, `hold`, `missing_since`, and the `chain` link itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callrec.evidence.holds import ChainHolds
from callrec.evidence.keys import DeviceKey, evidence_dir, load_public
from callrec.evidence.ledger import Ledger, canonical

MUTABLE_FIELDS = frozenset({"tags", "hold", "missing_since", "chain", "archived_at", "offloaded_at",
                            "clock_correction"})
KINDS = ("call", "deleted", "hold", "release", "offloaded")


def chain_path(data_dir: Path) -> Path:
    return evidence_dir(data_dir) / "chain.jsonl"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def record_sha256(record: dict[str, Any]) -> str:
    """The hash of a call record's evidence: every field but those changed by design later."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k not in MUTABLE_FIELDS})).hexdigest()


def sidecar_of(audio: Path) -> Path:
    """`<call_id>.json` beside `<call_id>.flac` / `.flac.age` / `.pcm.age-frames`."""
    return audio.with_name(audio.name.split(".", 1)[0] + ".json")


class Chain:
    def __init__(self, data_dir: Path, key: DeviceKey | None = None) -> None:
        self.data_dir = data_dir
        self.ledger = Ledger(chain_path(data_dir), key)
        self._holds = ChainHolds(self.ledger.path, key.public if key is not None else load_public(data_dir))

    def seal_call(self, record: dict[str, Any], audio: Path | None, sidecar: Path) -> dict[str, Any]:
        """The chain entry of a finalized call; returns the `chain` link its index record carries."""
        body = {
            "kind": "call", "call_id": record["call_id"], "status": record.get("status"),
            "recording": str(audio.relative_to(self.data_dir)) if audio is not None else None,
            "recording_sha256": file_sha256(audio) if audio is not None else None,
            "recording_bytes": audio.stat().st_size if audio is not None else None,
            "sidecar_sha256": file_sha256(sidecar),
            "record_sha256": record_sha256(record),
        }
        entry = self.ledger.append(body)
        return link(entry)

    def note(self, kind: str, call_id: str, *, by: str, reason: str, **fields: Any) -> dict[str, Any]:
        """A deletion, hold or release of a call, as its own chain entry."""
        if kind not in KINDS[1:]:
            raise ValueError(f"unknown chain entry kind {kind!r}")
        return self.ledger.append({"kind": kind, "call_id": call_id, "by": by, "reason": reason, **fields})

    def head(self) -> str:
        return self.ledger.head()

    def entries(self) -> Iterator[dict[str, Any]]:
        return self.ledger.entries()

    def holds(self) -> dict[str, dict[str, Any]]:
        """call_id -> its hold as the chain says it is now: what retention keeps, and what an index
        rebuilt from sidecars gets back. Read incrementally (holds.py), so asking often is cheap."""
        return self._holds.held()

    def rewritten(self) -> str | None:
        """Why this process found the chain rewritten behind its back (holds.py), or None."""
        return self._holds.rewritten

    def sealed(self) -> dict[str, dict[str, Any]]:
        """call_id -> its (last) `call` entry."""
        return {str(e.get("call_id")): e for e in self.entries() if e.get("kind") == "call"}


def link(entry: dict[str, Any]) -> dict[str, Any]:
    """What an index record keeps of its chain entry."""
    return {"seq": entry["seq"], "hash": entry["hash"], "prev": entry["prev"],
            "sidecar_sha256": entry.get("sidecar_sha256")}
