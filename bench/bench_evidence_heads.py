"""What the witnessed heads and the chain's holds cost (issue 22 items 3 and 4).

Run from the repository root:

    .venv/bin/python bench/bench_evidence_heads.py                  # 20,000 chain entries, journal events
    .venv/bin/python bench/bench_evidence_heads.py --entries 100000  # (each append is fsync'd: minutes)

Measured: retention's question "which calls are held?" on a long chain, first (the whole file) and
then after one more entry (only the new bytes, as every hourly prune after the first); the head
watcher's poll (two stat calls) and its read of both heads when one moved; `verify`'s look-up of
the newest `evidence.head` in a journal of that many events, with the newest head near its end (as
in service) and far from it (the worst case: one head at the journal's start).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from callrec.events import Event, EventBus
from callrec.evidence import Evidence, HeadWatcher, latest_head
from callrec.store import Journal


def timed(what: str, action: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        action()
    seconds = (time.perf_counter() - start) / repeat
    print(f"{what:<62} {seconds * 1000:10.3f} ms")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        evidence = Evidence.open(data)
        chain = evidence.chain
        start = time.perf_counter()
        for n in range(args.entries):
            chain.ledger.append({"kind": "call" if n % 50 else "hold", "call_id": f"2026010{n:09d}Z-L1-ab",
                                 "recording_sha256": "ab" * 32, "sidecar_sha256": "cd" * 32, "by": "bench"})
        size = (data / "evidence" / "chain.jsonl").stat().st_size
        print(f"chain of {args.entries} entries, {size / 1e6:.1f} MB, written in {time.perf_counter() - start:.1f} s")
        timed("holds: first read (whole chain)", chain.holds)
        chain.note("release", "x", by="bench", reason="bench")
        timed("holds: after one more entry (only the new bytes)", chain.holds)
        timed("holds: nothing new (one stat, one short read)", chain.holds, repeat=100)

        journal = Journal(data / "journal.sqlite")
        bus = EventBus(journal)
        for _ in range(args.entries):
            bus.emit(Event("line.ring", 1, None, time.time(), {"state": "on"}))
        watcher = HeadWatcher(data, bus)
        watcher.check()
        timed("head watcher: poll, nothing moved (two stats)", watcher.check, repeat=1000)
        chain.note("release", "y", by="bench", reason="bench")
        timed("head watcher: a head moved (read both heads, journal it)", watcher.check)
        for _ in range(100):
            bus.emit(Event("line.ring", 1, None, time.time(), {"state": "on"}))
        timed(f"journal of {args.entries} events: newest head 100 events from its end", lambda: latest_head(journal))
        fresh = Journal(data / "far.sqlite")
        far_bus = EventBus(fresh)
        far_bus.emit(Event("evidence.head", None, None, time.time(), {"chain": None, "audit": None}))
        for _ in range(args.entries):
            far_bus.emit(Event("line.ring", 1, None, time.time(), {"state": "on"}))
        timed(f"journal of {args.entries} events: the only head at its start", lambda: latest_head(fresh))
        journal.close()
        fresh.close()


if __name__ == "__main__":
    main()
