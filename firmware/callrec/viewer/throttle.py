"""How often a client may fail to log in, and how many of those failures reach the audit log.

Both are pure bookkeeping on time passed in (monotonic seconds): no threads, no I/O, so the rules
are tested in milliseconds and the callers (users.py, app.py) own the lock and the clock.

- `Lockout` refuses logins after repeated failures per (user name, client address) pair, and
  more widely per address: a stranger guessing at an account locks only themselves out, never the
  account's owner at another address (docs/viewer.md says what that trades away).
- `FailureLog` decides which failed logins are audited one by one: the audit log is signed and
  fsync'd, so an anonymous flood must not grow it without bound; the rest are counted and written
  as one summary entry per window.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

WINDOW_S = 300.0
PAIR_MAX_FAILURES = 5        # one user name from one address
ADDRESS_MAX_FAILURES = 20    # any user names from one address
AUDIT_PER_KEY = 5            # failures audited one by one per address and per user name in a window
AUDIT_OVERALL = 100          # and in all, whatever the addresses and names
MAX_KEYS = 10_000            # names, addresses or pairs remembered at once: past that a new one counts as over


class Lockout:
    """Recent failures per (name, address) and per address; a login is refused once either is full.

    A try counts from the moment it is let through (`begin`) until its verdict (`end`): the password
    check takes tens of milliseconds in a worker thread, and were only finished failures counted, a
    hundred guesses sent at once would all be let through before the first failure was. So a try in
    flight takes a place under both limits like a failure; `end` turns it into one, or into a
    success (which clears the pair), or drops it (no verdict: an error).

    Memory is bounded: at most MAX_KEYS pairs and MAX_KEYS addresses with failures in the window.
    When a table is full of live entries, a pair or address not in it cannot be counted, so it is
    refused until old entries expire (fail closed: evicting the oldest instead would let a guesser
    with enough addresses wipe out the record of its own failures). Tries in flight are bounded by
    the worker threads that run them.
    """

    def __init__(self, window_s: float = WINDOW_S, pair_max: int = PAIR_MAX_FAILURES,
                 address_max: int = ADDRESS_MAX_FAILURES) -> None:
        self.window_s, self.pair_max, self.address_max = window_s, pair_max, address_max
        self._pairs: dict[tuple[str, str], list[float]] = {}
        self._addresses: dict[str, list[float]] = {}
        self._pending: Counter[tuple[str, str]] = Counter()
        self._pending_addresses: Counter[str] = Counter()

    def locked(self, name: str, address: str, now: float) -> bool:
        pair = (name, address)
        return (self._full(self._pairs, pair, now) or self._full(self._addresses, address, now)
                or len(self._recent(self._pairs, pair, now)) + self._pending[pair] >= self.pair_max
                or len(self._recent(self._addresses, address, now)) + self._pending_addresses[address]
                >= self.address_max)

    def begin(self, name: str, address: str, now: float) -> bool:
        """Let a try through (True: it now counts as in flight, `end` must follow) or refuse it."""
        if self.locked(name, address, now):
            return False
        self._pending[(name, address)] += 1
        self._pending_addresses[address] += 1
        return True

    def end(self, name: str, address: str, now: float, ok: bool | None) -> None:
        """The verdict on a try `begin` let through: True a success, False a failure, None neither."""
        _uncount(self._pending, (name, address))
        _uncount(self._pending_addresses, address)
        if ok is True:
            self.succeeded(name, address)
        elif ok is False:
            self.failed(name, address, now)

    def failed(self, name: str, address: str, now: float) -> None:
        self._note(self._pairs, (name, address), now)
        self._note(self._addresses, address, now)

    def succeeded(self, name: str, address: str) -> None:
        """The pair starts afresh; the address does not (one good account must not reset a guesser)."""
        self._pairs.pop((name, address), None)

    def _full(self, table: dict[Any, list[float]], key: Any, now: float) -> bool:
        """No room to count `key`: it is new and the table holds MAX_KEYS live entries."""
        if key in table or len(table) < MAX_KEYS:
            return False
        self._forget_old(table, now)
        return len(table) >= MAX_KEYS

    def _note(self, table: dict[Any, list[float]], key: Any, now: float) -> None:
        if self._full(table, key, now):
            return   # not counted, and refused by `locked` for as long as the table stays full
        table.setdefault(key, []).append(now)

    def _recent(self, table: dict[Any, list[float]], key: Any, now: float) -> list[float]:
        times = [t for t in table.get(key, []) if now - t < self.window_s]
        if times:
            table[key] = times
        else:
            table.pop(key, None)
        return times

    def _forget_old(self, table: dict[Any, list[float]], now: float) -> None:
        for key in [k for k, times in table.items() if not times or now - times[-1] >= self.window_s]:
            del table[key]


class FailureLog:
    """Which failed logins go to the audit log one by one.

    Windows of `window_s` start at the first failure after a quiet spell. Within one, a failure is
    audited while its address and its user name have each failed at most `per_key` times and fewer
    than `overall` entries were written; the others are counted. The count is handed back as a
    summary once the window has passed (`failed`, `due`), or at once by `flush` (at shutdown).
    Thread-safe: the viewer checks passwords in worker threads.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S,
                 per_key: int = AUDIT_PER_KEY, overall: int = AUDIT_OVERALL) -> None:
        self.clock, self.window_s, self.per_key, self.overall = clock, window_s, per_key, overall
        self._lock = threading.Lock()
        self._start: float | None = None
        self._by_address: Counter[str] = Counter()
        self._by_name: Counter[str] = Counter()
        self._written = 0
        self._suppressed = 0

    def failed(self, name: str, address: str) -> tuple[bool, dict[str, Any] | None]:
        """(audit this failure one by one?, the summary of a window that has just passed, or None)."""
        with self._lock:
            now = self.clock()
            summary = self._roll(now)
            if self._start is None:
                self._start = now
            by_address = _count(self._by_address, address)
            by_name = _count(self._by_name, name)
            audit = by_address <= self.per_key and by_name <= self.per_key and self._written < self.overall
            if audit:
                self._written += 1
            else:
                self._suppressed += 1
            return audit, summary

    def due(self) -> dict[str, Any] | None:
        """The summary of a window that has passed (None when none is owed)."""
        with self._lock:
            return self._roll(self.clock())

    def flush(self) -> dict[str, Any] | None:
        """The summary of the window so far, whether it has passed or not (at shutdown)."""
        with self._lock:
            summary = self._summary()
            self._reset()
            return summary

    def _roll(self, now: float) -> dict[str, Any] | None:
        if self._start is None or now - self._start < self.window_s:
            return None
        summary = self._summary()
        self._reset()
        return summary

    def _summary(self) -> dict[str, Any] | None:
        if not self._suppressed:
            return None
        return {"suppressed": self._suppressed, "addresses": len(self._by_address), "user_names": len(self._by_name),
                "window_s": self.window_s,
                "message": f"{self._suppressed} more failures suppressed: failed logins past the first "
                           f"{self.per_key} per client address and per user name (at most {self.overall} in all) "
                           f"within {self.window_s:.0f} s are counted here, not written one by one"}

    def _reset(self) -> None:
        self._start = None
        self._by_address.clear()
        self._by_name.clear()
        self._written = self._suppressed = 0


def _uncount(counter: Counter[Any], key: Any) -> None:
    """One fewer for `key`, which goes when none is left (so the counter holds only what is in flight)."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _count(counter: Counter[str], key: str) -> int:
    """One more for `key`; a new key beyond MAX_KEYS counts as over every limit."""
    if key not in counter and len(counter) >= MAX_KEYS:
        return MAX_KEYS
    counter[key] += 1
    return counter[key]
