"""Which calls are under legal hold, as the signed chain says: the authority retention decides by.

The index's `hold` field is a convenience copy anyone with the card can edit; the chain's `hold` and
`release` entries are signed and linked. A call is held when its last hold/release entry is a hold
(a `deleted` entry ends it too: the call is gone). Retention asks every hour and after every call,
so the chain is followed incrementally (follow.py): only the bytes appended since the last question.

Only what the device wrote can end a hold: a `release` or `deleted` counts when its entry is
linked (its hash, its place after the entry before, its signature), while a `hold` counts from any
line that says so — a planted line can make the device keep more, never less. A chain rewritten
behind the device's back (shorter, replaced, edited) is read again from its start, and the holds
known before it stay: cutting the file cannot release a call while this process runs.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.evidence.follow import Followed, LedgerFollower, LedgerRewritten

log = logging.getLogger(__name__)


class ChainHolds:
    """The chain's current holds, kept up to date by reading only what was appended."""

    def __init__(self, path: Path, public: Ed25519PublicKey | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, Any]] = {}
        self._follower = LedgerFollower(path, public)
        self.rewritten: str | None = None   # why the chain was last found rewritten, if it was

    @property
    def bytes_read(self) -> int:
        return self._follower.bytes_read

    def held(self) -> dict[str, dict[str, Any]]:
        """call_id -> its hold (`reason`, `by`, `at`) as the chain says now."""
        with self._lock:
            try:
                self._catch_up()
            except LedgerRewritten as error:
                self.rewritten = str(error)
                log.error("%s; the holds known before stay, and the chain is read again from its start "
                          "(`callrec verify` names what changed)", error)
                kept = dict(self._held)
                self._follower.restart()
                self._catch_up()
                for call_id, hold in kept.items():
                    self._held.setdefault(call_id, hold)
            return dict(self._held)

    def _catch_up(self) -> None:
        for followed in self._follower.follow():
            self._apply(followed)

    def _apply(self, followed: Followed) -> None:
        entry, kind = followed.entry, followed.entry.get("kind")
        call_id = str(entry.get("call_id"))
        if kind == "hold":
            self._held[call_id] = {"reason": entry.get("reason"), "by": entry.get("by"), "at": entry.get("at")}
        elif kind in ("release", "deleted") and followed.linked:
            self._held.pop(call_id, None)
        elif kind in ("release", "deleted") and call_id in self._held:
            log.error("chain entry seq %s (%s of %s) is not linked to the chain the device wrote: the call stays "
                      "held (`callrec verify` names the entry)", entry.get("seq"), kind, call_id)
