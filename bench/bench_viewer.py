"""Search and page times of the viewer over 100,000 call records, next to a full scan of the same
records in the same run (what a viewer without the catalog's indexes would do).

Run from the repository root:

    .venv/bin/python bench/bench_viewer.py                  # 100,000 calls, 4 lines, a year
    .venv/bin/python bench/bench_viewer.py --calls 20000 --samples 50

The records are generated (4 lines, a few thousand customer numbers of which some call often, a
year of dates) into a real call index (TinyDB on sqlite3), then the viewer's catalog loads them and
each search is timed `--samples` times: median and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.events import utc_iso
from callrec.store import CallIndex
from callrec.viewer.annotations import Annotations
from callrec.viewer.catalog import Catalog, Query

log = logging.getLogger("bench_viewer")


class IndexSource:
    name = "bench"
    can_hold = False

    def __init__(self, index: CallIndex) -> None:
        self.index = index

    def records(self, after: str = "") -> Any:
        return self.index.after(after)


def generate(count: int, rng: random.Random) -> list[dict[str, Any]]:
    numbers = [f"03{rng.randrange(10**7, 10**8)}" for _ in range(3000)]
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
    records = []
    for n in range(count):
        at = start + n * (365 * 86400 / count)
        inbound = rng.random() < 0.6
        number = rng.choice(numbers[:50]) if rng.random() < 0.3 else rng.choice(numbers)
        moment = dt.datetime.fromtimestamp(at, tz=dt.UTC)
        records.append({
            "call_id": f"{moment:%Y%m%dT%H%M%S}{n % 1000:03d}Z-L{n % 4 + 1}-{n:06x}", "line": n % 4 + 1,
            "direction": "inbound" if inbound else "outbound", "started_at": utc_iso(at),
            "duration_s": round(rng.uniform(5, 600), 1), "status": "complete",
            "caller_number": number if inbound else None, "dialed_number": None if inbound else number,
            "recording": {"path": f"recordings/{n}.flac", "format": "flac", "bytes": 1000, "sample_rate": 8000}})
    return records


def timed(samples: int, action: Callable[[], Any]) -> tuple[float, float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = random.Random(1)
    records = generate(args.calls, rng)
    with tempfile.TemporaryDirectory() as tmp:
        index = CallIndex(Path(tmp) / "index.sqlite", synchronous="OFF")
        index.add_many(records)
        start = time.perf_counter()
        catalog = Catalog(IndexSource(index), Annotations(Path(tmp) / "notes.sqlite"))  # type: ignore[arg-type]
        log.info("%d calls; catalog loaded in %.2f s", catalog.count(), time.perf_counter() - start)
        frequent = records[0]["caller_number"] or records[0]["dialed_number"]
        cases: dict[str, Query] = {
            "latest 50 (first page)": Query(),
            "page 100 (offset 4950)": Query(offset=4950),
            "number prefix (4 digits)": Query(number=str(frequent)[:4]),
            "exact frequent number": Query(number=str(frequent)),
            "one week, line 2": Query(since="2025-06-01", until="2025-06-08", line=2),
            "inbound in March": Query(since="2025-03-01", until="2025-04-01", direction="inbound"),
        }
        for label, query in cases.items():
            median, p99 = timed(args.samples, lambda q=query: catalog.search(q))
            found = catalog.search(query).total
            log.info("  %-28s median %7.2f ms  p99 %7.2f ms  (%d found)", label, median, p99, found)
        scan_median, scan_p99 = timed(max(3, args.samples // 20), lambda: [
            r for r in index if str(frequent) in (r.get("caller_number"), r.get("dialed_number"))])
        log.info("  reference: full scan of the index for one number: median %.1f ms, p99 %.1f ms",
                 scan_median, scan_p99)
        median, _ = timed(args.samples, lambda: catalog.search(Query(number=str(frequent))))
        log.info("  ratio full scan / catalog for one number: %.0fx", scan_median / median if median else 0)
        index.close()


if __name__ == "__main__":
    main()
