"""An append-only, hash-chained, signed log in JSON lines: the form of the chain and the audit log.

Each entry holds `seq` (1, 2, …), `at` (UTC), its body, `prev` (the previous entry's `hash`) and
`hash` (SHA-256 of the entry's canonical JSON without `hash` and `sig`), and `sig` (the device
key's Ed25519 signature of the hash). Editing an entry breaks its hash; removing or inserting one
breaks the next entry's `prev`; rewriting the whole tail needs the device key, and the chain head
was handed out in events (dashboards and brokers hold witness copies).

Several processes append (the service, `callrec hold` beside it): an exclusive flock on a lock
file serialises them, and each append re-reads the tail under it. A line torn by a crash while
it was written (no newline at the end) is cut off by the next append, and said so in the log.

Every line is outside input to whoever reads it (anyone with the card can write one): `parse_line`
turns whatever a line holds — deep nesting that makes `json` raise RecursionError, a number too
long to convert, bad UTF-8, a list — into a ValueError saying why, and appends chain to the last
well-formed entry, so a planted line is reported by `check`, never a traceback or a stuck ledger.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.events import utc_iso
from callrec.evidence.keys import DeviceKey, signature_valid

log = logging.getLogger(__name__)

GENESIS = "0" * 64
TAIL_BYTES = 64 * 1024


def canonical(data: Any) -> bytes:
    """The bytes a hash is taken of: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k not in ("hash", "sig")})).hexdigest()


ALTERED, BROKEN, UNSIGNED = "chain entry altered", "chain broken", "signature invalid"


def parse_json(raw: bytes | str) -> Any:
    """`json.loads` for text from outside: every failure is a ValueError (json raises RecursionError
    on deep nesting, and a UnicodeDecodeError or a too-long integer are ValueErrors already)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply to be a ledger entry or a record") from None


def parse_line(raw: bytes) -> dict[str, Any]:
    """One ledger line as an object, or ValueError saying why it is not one."""
    entry = parse_json(raw)
    if not isinstance(entry, dict):
        raise ValueError(f"a JSON {type(entry).__name__}, not an object")
    return entry


def well_formed(entry: dict[str, Any]) -> bool:
    """An entry an append can follow: an integer `seq` and a hex `hash` (the rest is `check`'s)."""
    seq, digest = entry.get("seq"), entry.get("hash")
    return isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 and _is_hex(digest)


@dataclass(frozen=True)
class LedgerHead:
    """Where a ledger ends: its last entry's `seq` and `hash` (what two heads are compared by) and
    `at` (when it was written, where known)."""

    seq: int
    hash: str
    at: str | None = field(default=None, compare=False)

    def fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def of(cls, entry: dict[str, Any] | None) -> LedgerHead | None:
        if entry is None or not well_formed(entry):
            return None
        at = entry.get("at")
        return cls(int(entry["seq"]), str(entry["hash"]), at if isinstance(at, str) else None)


@dataclass(frozen=True)
class LedgerProblem:
    seq: int | None
    line: int
    message: str
    kind: str = ALTERED   # ALTERED, BROKEN or UNSIGNED: what `verify` calls it


class Ledger:
    def __init__(self, path: Path, key: DeviceKey | None = None) -> None:
        self.path = path
        self.key = key
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, body: dict[str, Any], *, at: float | None = None) -> dict[str, Any]:
        """Add one entry after the current head; returns it (with seq, prev, hash, sig)."""
        with self._locked():
            last = self._last_entry(repair=True)
            entry: dict[str, Any] = {"seq": (int(last["seq"]) + 1) if last else 1,
                                     "at": utc_iso(time.time() if at is None else at), **body,
                                     "prev": str(last["hash"]) if last else GENESIS}
            entry["hash"] = entry_hash(entry)
            entry["sig"] = self.key.sign(bytes.fromhex(entry["hash"])) if self.key is not None else None
            line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                data = line.encode("utf-8")
                written = os.write(fd, data)
                if written != len(data):
                    os.ftruncate(fd, os.fstat(fd).st_size - written)   # no torn entry left by a full disk
                    raise OSError(28, "No space left on device")
                os.fsync(fd)
            finally:
                os.close(fd)
            return entry

    def head(self) -> str:
        last = self._last_entry()
        return str(last["hash"]) if last else GENESIS

    def head_entry(self) -> LedgerHead | None:
        """The last well-formed entry's seq and hash (None for an empty ledger)."""
        return LedgerHead.of(self._last_entry())

    def hash_at(self, seq: int) -> str | None:
        """The hash of the well-formed entry `seq`, or None when there is none. Read from the end
        in growing windows: the entry asked for is usually among the last (a witnessed head)."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                window = TAIL_BYTES
                while True:
                    start = max(0, size - window)
                    handle.seek(start)
                    lines = _window_lines(handle.read(size - start), start)
                    lowest = None
                    for raw in reversed(lines):
                        with contextlib.suppress(ValueError):
                            entry = parse_line(raw)
                            if well_formed(entry):
                                lowest = int(entry["seq"])
                                if lowest == seq:
                                    return str(entry["hash"])
                    if start == 0 or (lowest is not None and lowest < seq):
                        return None
                    window *= 4
        except FileNotFoundError:
            return None

    def _last_entry(self, *, repair: bool = False) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return None
                start = max(0, size - TAIL_BYTES)
                handle.seek(start)
                tail = handle.read()
        except FileNotFoundError:
            return None
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            if repair:
                keep = start + cut + 1 if cut >= 0 else (0 if start == 0 else size)
                log.warning("%s: the last entry was torn (a crash while it was written); cut at byte %d",
                            self.path, keep)
                os.truncate(self.path, keep)
            tail = tail[: cut + 1] if cut >= 0 else b""
        lines = _window_lines(tail, start)
        while lines:
            with contextlib.suppress(ValueError):
                entry = parse_line(lines[-1])
                if well_formed(entry):
                    return entry
            lines.pop()
        if start > 0:   # no whole entry in the tail window (a long planted line): read it all
            last = None
            for entry in self.entries():
                if well_formed(entry):
                    last = entry
            return last
        return None

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every readable entry, in file order (unreadable lines are `check`'s to report)."""
        try:
            handle = open(self.path, "rb")   # noqa: SIM115 - a generator's file
        except FileNotFoundError:
            return
        with handle:
            for raw in handle:
                with contextlib.suppress(ValueError):
                    yield parse_line(raw)

    def check(self, public: Ed25519PublicKey | None) -> tuple[list[LedgerProblem], int]:
        """Every break in the chain: unreadable lines, edited entries, removed or inserted ones,
        bad signatures. Returns (problems, entries read)."""
        try:
            handle = open(self.path, "rb")   # noqa: SIM115
        except FileNotFoundError:
            return [], 0
        with handle:
            return check_lines(handle, public)


def check_lines(lines: Iterable[bytes], public: Ed25519PublicKey | None) -> tuple[list[LedgerProblem], int]:
    """`Ledger.check` over any lines of a ledger: a local file, or its segments from the archive."""
    problems: list[LedgerProblem] = []
    prev, expected_seq, count = GENESIS, 1, 0
    for number, raw in enumerate(lines, start=1):
        try:
            entry = parse_line(raw)
            digest = entry_hash(entry)
        except (ValueError, RecursionError) as error:
            problems.append(LedgerProblem(None, number, f"line is not a ledger entry (edited or damaged: {error})"))
            continue
        count += 1
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(LedgerProblem(None, number, f"entry has no integer seq ({str(seq)[:40]!r}: edited or "
                                                        "planted)"))
            seq = None
        if digest != entry.get("hash"):
            problems.append(LedgerProblem(seq, number, "entry was altered (its hash does not match it)"))
        if entry.get("prev") != prev:
            problems.append(LedgerProblem(seq, number, "chain broken: 'prev' is not the hash of the entry "
                                          "before (an entry was removed, inserted or reordered)", BROKEN))
        if seq != expected_seq:
            problems.append(LedgerProblem(seq, number, f"sequence broken: expected seq {expected_seq}", BROKEN))
        sig = entry.get("sig")
        if public is not None:
            if not isinstance(sig, str):
                problems.append(LedgerProblem(seq, number, "entry is not signed", UNSIGNED))
            elif not signature_valid(public, bytes.fromhex(str(entry.get("hash")))
                                     if _is_hex(entry.get("hash")) else b"", sig):
                problems.append(LedgerProblem(seq, number, "signature does not verify with the device key", UNSIGNED))
        prev = str(entry.get("hash"))
        expected_seq = (seq + 1) if seq is not None else expected_seq + 1
    return problems, count


def _window_lines(data: bytes, start: int) -> list[bytes]:
    """The lines of bytes read from `start` to the end; a window that begins inside a line (not at
    the file's start) drops that cut first line."""
    lines = data.splitlines()
    if start > 0 and lines:
        lines.pop(0)
    return lines


def _is_hex(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True
