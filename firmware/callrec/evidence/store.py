"""The evidence of one data directory opened together: the device key, the chain, the audit log,
and what is done with them together (a legal hold is a chain entry, an index field and an audit
entry at once: `hold` and `release` here are the one place that knows it, for the command line,
the console and the viewer alike)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.errors import CallrecError
from callrec.evidence.audit import AuditLog
from callrec.evidence.chain import Chain
from callrec.evidence.keys import DeviceKey
from callrec.store import CallIndex


class UnknownCall(CallrecError, LookupError):
    """A call id the index does not hold; nothing was changed."""


@dataclass
class Evidence:
    key: DeviceKey | None
    chain: Chain
    audit: AuditLog

    @classmethod
    def open(cls, data_dir: Path) -> Evidence:
        """Made on first use (the key owner-only); raises OSError or DeviceKeyError."""
        key = DeviceKey.load_or_create(data_dir)
        return cls(key, Chain(data_dir, key), AuditLog(data_dir, key))

    @classmethod
    def unsigned(cls, data_dir: Path) -> Evidence:
        """Without the device key (it could not be made: a full disk): entries are still hashed
        and chained, but unsigned, and `verify` says so for each."""
        return cls(None, Chain(data_dir), AuditLog(data_dir))

    def hold(self, index: CallIndex, call_id: str, *, reason: str, by: str) -> dict[str, Any]:
        """Keep a call whatever retention says; returns the hold as the index now has it.

        The chain entry comes first: it is what retention and `verify` believe. Should the index
        update fail after it, the call is still kept (either saying held keeps it) and `verify`
        names the disagreement; the other order could leave a hold nobody signed."""
        if index.get(call_id) is None:
            raise UnknownCall(f"no call {call_id!r} in the index (nothing was held)")
        entry = self.chain.note("hold", call_id, by=by, reason=reason)
        hold = {"reason": reason, "by": by, "at": entry["at"]}
        index.update(call_id, {"hold": hold})
        self.audit.try_record("hold", by, {"call_id": call_id, "reason": reason})
        return hold

    def release(self, index: CallIndex, call_id: str, *, reason: str, by: str) -> bool:
        """End a call's legal hold; False when neither the chain nor the index held it."""
        record = index.get(call_id)
        if record is None:
            raise UnknownCall(f"no call {call_id!r} in the index (nothing was released)")
        if not record.get("hold") and call_id not in self.chain.holds():
            return False
        self.chain.note("release", call_id, by=by, reason=reason)
        index.update(call_id, {"hold": None})
        self.audit.try_record("release", by, {"call_id": call_id, "reason": reason})
        return True

    def note_config(self, effective: str, source: str, who: str) -> bool:
        """Audit the configuration in force when it differs from the last one audited."""
        digest = hashlib.sha256(effective.encode("utf-8")).hexdigest()
        last = None
        for entry in self.audit.entries():
            if entry.get("action") == "config.changed":
                what = entry.get("what")
                last = what.get("sha256") if isinstance(what, dict) else None
        if last == digest:
            return False
        self.audit.try_record("config.changed", who, {"sha256": digest, "source": source})
        return True
