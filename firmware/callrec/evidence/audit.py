"""The audit log: who did what to the recordings, and when; append-only and hash-chained itself.

Every export, hold, release, deletion, decrypt done on the device, configuration change, console
session and state-changing command (console, control socket, MQTT) is an entry: `action`, `who`
(`console:/dev/ttyAMA0`, `mqtt:<topic>`, `cli:<user>(uid N)`, `device:retention`) and `what`.
It is a ledger like the chain (ledger.py): `callrec verify` checks it, `callrec audit` prints it.
Audit entries are written wherever the action happens (the service, a CLI tool, the console);
the ledger's lock serialises them.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callrec.evidence.keys import DeviceKey, evidence_dir
from callrec.evidence.ledger import Ledger

log = logging.getLogger(__name__)

ACTIONS = ("export", "hold", "release", "deleted", "decrypt", "config.changed", "console.session.started",
           "console.session.ended", "command", "prune", "verify")


def audit_path(data_dir: Path) -> Path:
    return evidence_dir(data_dir) / "audit.jsonl"


def cli_actor() -> str:
    """The local user running a `callrec` command."""
    uid = os.getuid()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"cli:{user}(uid {uid})"


class AuditLog:
    def __init__(self, data_dir: Path, key: DeviceKey | None = None) -> None:
        self.ledger = Ledger(audit_path(data_dir), key)

    def record(self, action: str, who: str, what: dict[str, Any] | None = None,
               *, at: float | None = None) -> dict[str, Any]:
        return self.ledger.append({"action": action, "who": who, "what": what or {}}, at=at)

    def try_record(self, action: str, who: str, what: dict[str, Any] | None = None) -> None:
        """Record, or log why not (a full disk must not stop the command that is being audited
        from having happened; the log line says the audit entry is missing)."""
        try:
            self.record(action, who, what)
        except OSError as error:
            log.error("audit entry %s by %s could not be written: %s", action, who, error)

    def entries(self, since: str | None = None) -> Iterator[dict[str, Any]]:
        for entry in self.ledger.entries():
            if since is None or str(entry.get("at", "")) >= since:
                yield entry
