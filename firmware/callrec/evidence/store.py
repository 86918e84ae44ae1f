"""The evidence of one data directory opened together: the device key, the chain, the audit log."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from callrec.evidence.audit import AuditLog
from callrec.evidence.chain import Chain
from callrec.evidence.keys import DeviceKey


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

    def note_config(self, effective: str, source: str, who: str) -> bool:
        """Audit the configuration in force when it differs from the last one audited."""
        digest = hashlib.sha256(effective.encode("utf-8")).hexdigest()
        last = None
        for entry in self.audit.entries():
            if entry.get("action") == "config.changed":
                last = entry.get("what", {}).get("sha256")
        if last == digest:
            return False
        self.audit.try_record("config.changed", who, {"sha256": digest, "source": source})
        return True
