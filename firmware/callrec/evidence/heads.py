"""The heads of the chain and the audit log, witnessed outside the ledgers.

A ledger proves that nothing inside it was altered, not that nothing was cut from its end: drop
the last lines and what is left still links and verifies. So the heads are handed out as they
move: the service's `HeadWatcher` journals an `evidence.head` event whenever either ledger's head
changes (appends by CLI tools beside the service too: it polls the files' size and time), MQTT
publishes it retained (`B/evidence/head`), and the archive uploader writes a signed witness
document with every ledger segment (`witness_document`). `verify` compares the ledgers with the
newest witness it can reach (`compare`) and names a missing tail or a rewritten head.

A witness only ever lags the ledger (it is read before the ledger, and ledgers only grow), so a
witnessed seq the ledger lacks is a cut, and a witnessed hash that differs is a rewrite.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec.errors import CallrecError
from callrec.events import Event, EventBus, utc_iso
from callrec.evidence.audit import audit_path
from callrec.evidence.chain import chain_path
from callrec.evidence.follow import LedgerFollower, LedgerRewritten
from callrec.evidence.keys import DeviceKey, signature_valid
from callrec.evidence.ledger import Ledger, LedgerHead, canonical, parse_json
from callrec.store import Journal

log = logging.getLogger(__name__)

HEAD_EVENT = "evidence.head"
POLL_S = 2.0
REFRESH_S = 6 * 3600.0   # how often the journal is checked to still hold the newest head
LEDGERS = {"chain": "the chain", "audit": "the audit log"}
KIND_OF = {"chain": "chain", "audit": "audit log"}   # the problem kinds: "chain tail missing", …


@dataclass(frozen=True)
class Heads:
    """Both ledgers' heads at one moment (None: that ledger was empty)."""

    chain: LedgerHead | None
    audit: LedgerHead | None

    def fields(self) -> dict[str, Any]:
        """As the `evidence.head` event and the retained MQTT message carry them."""
        return {"chain": self.chain.fields() if self.chain else None,
                "audit": self.audit.fields() if self.audit else None}

    def of(self, name: str) -> LedgerHead | None:
        return self.chain if name == "chain" else self.audit

    @classmethod
    def from_fields(cls, data: Any) -> Heads | None:
        """From an event, a retained message or a witness document; None when it is not one."""
        if not isinstance(data, dict):
            return None
        heads = {}
        for name in LEDGERS:
            part = data.get(name)
            head = LedgerHead.of(part) if isinstance(part, dict) else None
            if part is not None and head is None:
                return None
            heads[name] = head
        return cls(heads["chain"], heads["audit"])


def read_heads(data_dir: Path) -> Heads:
    """The ledgers' heads as the files are now."""
    return Heads(Ledger(chain_path(data_dir)).head_entry(), Ledger(audit_path(data_dir)).head_entry())


@dataclass(frozen=True)
class Witness:
    """Heads someone else holds: `source` names who (for people), `at` when it was witnessed."""

    source: str
    at: str | None
    heads: Heads


class WitnessUnavailable(CallrecError, OSError):
    """A witness could not be asked (unreachable, refused, unreadable): a note, not a problem."""


WitnessLookup = Callable[[float], Witness | None]   # asks one outside witness, given a timeout in seconds
WITNESS_TIMEOUT_S = 10.0   # each outside witness (archive, broker) is asked at most this long


def ask_witnesses(lookups: dict[str, WitnessLookup]) -> tuple[list[Witness], list[str]]:
    """The newest heads each outside witness holds, each asked at once on a thread of its own and
    given at most WITNESS_TIMEOUT_S: a witness out of reach is a note, not a problem."""
    answers: dict[str, Witness | None | str] = {}

    def ask(name: str, lookup: WitnessLookup) -> None:
        try:
            answers[name] = lookup(WITNESS_TIMEOUT_S)
        except (CallrecError, OSError) as error:   # WitnessUnavailable among them
            answers[name] = f"{name} could not be asked for its witness of the heads: {error}"
        except Exception as error:   # a witness is extra evidence: never a reason for verify to fail
            log.debug("witness lookup failed", exc_info=True)
            answers[name] = f"{name} could not be asked for its witness of the heads: {error!r}"

    threads = [threading.Thread(target=ask, args=item, daemon=True) for item in lookups.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WITNESS_TIMEOUT_S + 2
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    witnesses, notes = [], []
    for name in lookups:
        answer = answers.get(name, f"{name} did not answer within {WITNESS_TIMEOUT_S:g} s: its witness was not "
                                   "compared")
        if isinstance(answer, str):
            notes.append(answer)
        elif answer is None:
            notes.append(f"{name} holds no witness of the heads yet")
        else:
            witnesses.append(answer)
    return witnesses, notes


def latest_head(journal: Journal) -> Heads | None:
    """The newest `evidence.head` in the event journal (read backwards a page at a time)."""
    found = latest_head_event(journal)
    return Heads.from_fields(found.event.fields) if found is not None else None


def journal_witness(journal: Journal) -> Witness | None:
    found = latest_head_event(journal)
    heads = Heads.from_fields(found.event.fields) if found is not None else None
    if found is None or heads is None:
        return None
    return Witness(f"the event journal (event seq {found.seq})", utc_iso(found.event.wall), heads)


def latest_head_event(journal: Journal) -> Any:
    """The newest `evidence.head` StampedEvent, or None."""
    return journal.latest(HEAD_EVENT)


# ---- comparing a ledger with a witness --------------------------------------------------------------


def compare(witness: Witness, name: str, hashes: dict[int, str], last_seq: int,
            where: str = "the log") -> tuple[str, str] | None:
    """(problem kind, detail) when the ledger `name` (its entries' hashes by seq; `last_seq` its
    end) lacks or differs from what `witness` saw; None when it holds it."""
    head = witness.heads.of(name)
    if head is None:
        return None
    when = f" at {witness.at}" if witness.at else ""
    if head.seq > last_seq:
        missing = f"seq {last_seq + 1}" + (f"–{head.seq}" if head.seq > last_seq + 1 else "")
        return (f"{KIND_OF[name]} tail missing",
                f"{missing} witnessed{when} by {witness.source}, {where} ends at seq {last_seq}")
    found = hashes.get(head.seq)
    if found != head.hash:
        return (f"{KIND_OF[name]} rewritten",
                f"entry seq {head.seq} is not the one witnessed{when} by {witness.source} (witnessed "
                f"{head.hash[:16]}…, found {str(found)[:16] if found else 'no readable entry'}…)")
    return None


# ---- the signed witness document the archive keeps ---------------------------------------------------


def witness_document(heads: Heads, device_id: str, key: DeviceKey | None) -> dict[str, Any]:
    """Both heads (with the time of each head entry), signed with the device key: deterministic,
    so putting it again after a crash is the same object (write-once storage takes it)."""
    body: dict[str, Any] = {"v": 1, "device_id": device_id, "device_key": key.public_id if key else None}
    for name in LEDGERS:
        head = heads.of(name)
        body[name] = {**head.fields(), "at": head.at} if head else None
    digest = hashlib.sha256(canonical(body)).digest()
    body["sig"] = key.sign(digest) if key is not None else None
    return body


def read_witness_document(raw: bytes, public: Ed25519PublicKey | None) -> tuple[Heads, str | None, bool]:
    """(heads, when, signature valid) of a witness document; ValueError when it is not one."""
    document = parse_json(raw)
    heads = Heads.from_fields(document) if isinstance(document, dict) else None
    if heads is None:
        raise ValueError("not a witness document (no chain/audit heads)")
    body = {k: v for k, v in document.items() if k != "sig"}
    sig = document.get("sig")
    signed = (public is not None and isinstance(sig, str)
              and signature_valid(public, hashlib.sha256(canonical(body)).digest(), sig))
    times = [str(part.get("at")) for part in (document.get("chain"), document.get("audit"))
             if isinstance(part, dict) and isinstance(part.get("at"), str)]
    return heads, max(times) if times else None, signed


# ---- the service's watcher --------------------------------------------------------------------------


class HeadWatcher:
    """Journals `evidence.head` whenever a ledger's head moves, whoever appended (the service, or a
    CLI tool beside it): polls both files' size and time every `poll_s`, follows them (follow.py)
    only when one changed, and emits only when the heads differ from the last ones journaled.

    Only a head that extends the one witnessed before is witnessed: a ledger cut or rewritten behind
    the device's back (shorter, replaced, the witnessed entry gone or changed) raises the critical
    alarm `evidence.rewritten:<chain|audit>`, and that ledger's witness stays at its last trusted
    head for as long as the service runs, so `verify` names the cut instead of a witness vouching
    for it. The journaled head is the anchor after a restart."""

    def __init__(self, data_dir: Path, bus: EventBus, *, poll_s: float = POLL_S, refresh_s: float = REFRESH_S) -> None:
        self.data_dir = data_dir
        self.bus = bus
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self._paths = {"chain": chain_path(data_dir), "audit": audit_path(data_dir)}
        self._followers = {name: LedgerFollower(path) for name, path in self._paths.items()}
        self._seen: tuple[tuple[int, int, int], ...] | None = None
        self._last: Heads | None = None
        self._trusted: dict[str, LedgerHead | None] = {name: None for name in LEDGERS}
        self._anchor: dict[str, LedgerHead | None] = {name: None for name in LEDGERS}
        self._rewritten: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """The first look is one poll later (or at stop): by then the core has read the clock, so
        the event says whether its `ts` can be believed, like every other."""
        try:
            self._last = latest_head(self.bus.journal)
        except Exception:   # an unreadable journal: witness again, a repeat costs one event
            log.exception("the last journaled evidence head cannot be read")
        if self._last is not None:
            self._anchor = {name: self._last.of(name) for name in LEDGERS}
            self._trusted = dict(self._anchor)
        self._thread = threading.Thread(target=self._run, name="evidence-heads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, after witnessing the heads once more (the last appends of the service)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.check()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> bool:
        """Emit `evidence.head` if a head moved since the last one journaled; True when it did."""
        seen = tuple(_stat(path) for path in self._paths.values())
        if seen == self._seen:
            return False
        self._seen = seen
        for name in LEDGERS:
            if name not in self._rewritten:
                self._follow(name)
        heads = Heads(self._trusted["chain"], self._trusted["audit"])
        if heads == self._last or (heads.chain is None and heads.audit is None):
            return False
        self._last = heads
        self.bus.emit(Event(HEAD_EVENT, None, None, time.time(), heads.fields()))
        return True

    def _follow(self, name: str) -> None:
        """Read what was appended to one ledger; its head becomes trusted unless the file no longer
        holds what was witnessed."""
        follower, anchor = self._followers[name], self._anchor[name]
        try:
            for followed in follower.follow():
                head = LedgerHead.of(followed.entry)
                if anchor is not None and head is not None and head.seq == anchor.seq:
                    if head.hash != anchor.hash:
                        raise LedgerRewritten(f"entry seq {anchor.seq} is not the one witnessed ({anchor.hash[:16]}…)")
                    self._anchor[name] = anchor = None   # found as witnessed: what follows extends it
        except LedgerRewritten as error:
            self._rewritten_behind_our_back(name, str(error))
            return
        last = follower.last
        if anchor is not None and (last is None or last.seq < anchor.seq):
            self._rewritten_behind_our_back(name, f"it ends at seq {last.seq if last else 0}, but seq {anchor.seq} "
                                                  "was witnessed")
            return
        if anchor is None:
            self._trusted[name] = last

    def _rewritten_behind_our_back(self, name: str, why: str) -> None:
        self._rewritten.add(name)
        trusted = self._trusted[name]
        message = (f"{LEDGERS[name]} ({self._paths[name]}) was cut or rewritten behind the device's back: {why}. "
                   f"Its witness stays at seq {trusted.seq if trusted else 0}; `callrec verify` names what changed")
        log.error("%s", message)
        self.bus.emit(Event("alarm.raised", None, None, time.time(),
                            {"id": f"evidence.rewritten:{name}", "kind": "evidence", "severity": "critical",
                             "message": message}))

    def refresh(self) -> bool:
        """Witness the heads again when the journal no longer holds them: its bound
        (`mqtt.journal_max_days`/`_events`) drops old events, and on a quiet line the newest
        `evidence.head` is old. True when it emitted."""
        self._last = latest_head(self.bus.journal)
        self._seen = None
        return self.check()

    def _run(self) -> None:
        next_refresh = time.monotonic() + self.refresh_s
        while not self._stop.wait(self.poll_s):
            try:
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_s
                    self.refresh()
                else:
                    self.check()
            except Exception:   # a ledger being written under us: try again at the next poll
                log.exception("reading the evidence heads failed")


def _stat(path: Path) -> tuple[int, int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

