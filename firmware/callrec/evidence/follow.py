"""Following a ledger as it grows: only what was appended since the last read, each entry checked
against the one before it, and the file checked to still hold what was read.

Two things decide security from a ledger while the device runs — whether a call is still held, and
which heads the device hands out as its witness — and both must believe only what the device wrote:
- an entry is *linked* when its hash recomputes, its `prev` is the hash of the last linked entry,
  its `seq` follows it, and (with the device's public key) its signature verifies. A line planted
  by hand is not linked, and neither is anything appended after it (appends follow the last
  well-formed line), so whatever such lines say can only make the device keep more, never less;
- a file that got shorter, was replaced (another inode) or no longer holds the bytes last read was
  rewritten behind the device's back: `LedgerRewritten`. Ledgers only ever grow (the one exception,
  a torn last line cut by the next append, lies past what was read: only whole lines are read).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.errors import CallrecError
from callrec.evidence.keys import signature_valid
from callrec.evidence.ledger import GENESIS, LedgerHead, entry_hash, parse_line, well_formed


class LedgerRewritten(CallrecError, ValueError):
    """The ledger no longer holds what was read from it: cut, edited or replaced."""


@dataclass(frozen=True)
class Followed:
    entry: dict[str, Any]
    linked: bool


class LedgerFollower:
    """Reads one ledger incrementally; see the module docstring."""

    def __init__(self, path: Path, public: Ed25519PublicKey | None = None) -> None:
        self.path = path
        self.public = public
        self.last: LedgerHead | None = None   # the last well-formed entry read: where the file ends
        self.bytes_read = 0                   # what the reads cost, for the tests and the curious
        self.restart()

    def restart(self) -> None:
        """Forget what was read: the next `follow` reads the file from its start."""
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._last_line = b""
        self._prev = GENESIS
        self._seq = 0
        self.last = None

    def follow(self) -> Iterator[Followed]:
        """The whole entries appended since the last call, in order (lines that are no entry are
        passed over: `verify` names them). Raises LedgerRewritten before yielding anything when the
        file does not hold what was read; a missing file is an empty ledger, unless something was read."""
        try:
            handle = open(self.path, "rb")   # noqa: SIM115 - a generator's file
        except FileNotFoundError:
            if self._offset:
                raise LedgerRewritten(f"{self.path} is gone (it held {self._offset} bytes)") from None
            return
        with handle:
            self._check_still_holds(handle)
            handle.seek(self._offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return   # a line being written (or torn): it waits for its newline
                self._offset += len(raw)
                self._last_line = raw
                self.bytes_read += len(raw)
                try:
                    entry = parse_line(raw)
                except ValueError:
                    continue
                if not well_formed(entry):
                    continue
                self.last = LedgerHead.of(entry)
                yield Followed(entry, self._link(entry))

    def _check_still_holds(self, handle: BinaryIO) -> None:
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is not None and identity != self._identity:
            raise LedgerRewritten(f"{self.path} was replaced by another file")
        self._identity = identity
        if stat.st_size < self._offset:
            raise LedgerRewritten(f"{self.path} got shorter: {stat.st_size} bytes, {self._offset} were read")
        if self._last_line:
            handle.seek(self._offset - len(self._last_line))
            if handle.read(len(self._last_line)) != self._last_line:
                raise LedgerRewritten(f"{self.path} no longer holds the entry read last (at byte "
                                      f"{self._offset - len(self._last_line)})")

    def _link(self, entry: dict[str, Any]) -> bool:
        digest = str(entry["hash"])
        linked = (entry_hash(entry) == digest and entry.get("prev") == self._prev and entry["seq"] == self._seq + 1
                  and (self.public is None or (isinstance(entry.get("sig"), str)
                                               and signature_valid(self.public, bytes.fromhex(digest),
                                                                   str(entry["sig"])))))
        if linked:
            self._prev, self._seq = digest, int(entry["seq"])
        return linked
