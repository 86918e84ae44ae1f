"""Benchmark of the call index (callrec.store.index) against stock TinyDB, measured in one run.

Run from the repository root:

    .venv/bin/python bench/bench_index.py                 # 100,000 calls; stock reference at 10,000
    .venv/bin/python bench/bench_index.py --calls 20000 --reference-calls 5000 --samples 100

The target (issue: call index) is that with 100,000 calls in the index, adding a call and listing
the latest 20 each stay under 50 ms. The index is filled with realistic records (4 lines, a few
thousand customer numbers of which some call often, recordings, announcements, tags) in bulk,
then each operation is timed `--samples` times and reported as median and p99 in milliseconds.

The reference is stock TinyDB (JSONStorage) with the same records, measured in the same run at a
smaller size (`--reference-calls`, 10,000 by default, because every stock insert rewrites the whole
file) next to the sqlite index at that same size, so the ratio compares like with like.
Files go to a temporary directory on the same filesystem as /tmp unless `--dir` says otherwise;
adds are fsynced (synchronous=FULL) as in service.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.store import CallIndex
from tinydb import Query, TinyDB
from tinydb.storages import JSONStorage

START = dt.datetime(2025, 1, 6, 0, 0, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CallMaker:
    """Realistic call records in time order: office hours, 4 lines, a skewed set of customers."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.customers = [
            f"0{self.rng.randint(3, 9)}{self.rng.randint(10**8, 10**9 - 1)}" for _ in range(5000)
        ]
        self.weights = [1.0 / (rank + 1) for rank in range(len(self.customers))]  # Zipf: some call a lot
        self.moment = START
        self.serial = 0

    def number(self) -> str:
        return self.rng.choices(self.customers, self.weights)[0]

    def next(self) -> dict[str, Any]:
        rng = self.rng
        self.moment += dt.timedelta(seconds=rng.randint(30, 400))
        if not 8 <= self.moment.hour < 18:
            self.moment = self.moment.replace(hour=8, minute=0) + dt.timedelta(
                days=1 if self.moment.hour >= 18 else 0
            )
        self.serial += 1
        line = rng.randint(1, 4)
        inbound = rng.random() < 0.7
        rings = rng.randint(1, 6) if inbound else 0
        answered = self.moment + dt.timedelta(seconds=rings * 4)
        duration = round(rng.expovariate(1 / 180), 2)
        stamp = self.moment.strftime("%Y%m%dT%H%M%SZ")
        call_id = f"{stamp}-L{line}-{self.serial & 0xFFFF:04x}"
        status = rng.choices(["complete", "recovered", "discarded", "failed"], [95, 2, 2, 1])[0]
        record: dict[str, Any] = {
            "call_id": call_id,
            "line": line,
            "direction": "in" if inbound else "out",
            "started_at": _iso(self.moment),
            "answered_at": _iso(answered),
            "ended_at": _iso(answered + dt.timedelta(seconds=duration)),
            "duration_s": duration,
            "rings": rings,
            "flashes": rng.choices([0, 1, 2], [90, 8, 2])[0],
            "caller_number": self.number() if inbound else None,
            "dialed_number": None if inbound else self.number(),
            "recording": {
                "path": f"recordings/{self.moment:%Y/%m/%d}/{call_id}.flac",
                "format": "flac",
                "bytes": int(duration * 9000),
                "sha256": f"{rng.getrandbits(256):064x}",
                "sample_rate": 8000,
            },
            "announcement": {
                "file": "notice_ja.wav",
                "sha256": "3f" * 32,
                "started_s": 0.42,
                "ended_s": 3.91,
            },
            "status": status,
            "errors": [] if status == "complete" else ["capture overrun at 41.2 s"],
        }
        if rng.random() < 0.1:
            record["tags"] = rng.sample(["follow-up", "complaint", "order", "見積", "training"], 2)
        if rng.random() < 0.05:
            record["marks"] = [{"at_s": round(rng.uniform(0, duration), 1), "note": "price quoted"}]
        return record


def measure(operation: Callable[[], object], samples: int) -> list[float]:
    """Milliseconds per call of `operation`, one figure per sample."""
    figures = []
    for _ in range(samples):
        began = time.perf_counter()
        operation()
        figures.append((time.perf_counter() - began) * 1000)
    return figures


def summary(figures: list[float]) -> tuple[float, float]:
    ordered = sorted(figures)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def bench_index(path: Path, calls: int, samples: int, seed: int) -> dict[str, list[float]]:
    maker = CallMaker(seed)
    index = CallIndex(path)
    began = time.perf_counter()
    filled = 0
    while filled < calls:
        batch = [maker.next() for _ in range(min(5000, calls - filled))]
        index.add_many(batch)
        filled += len(batch)
    print(f"  filled sqlite index with {calls:,} calls in {time.perf_counter() - began:.1f} s")
    ids = [r["call_id"] for r in index]
    rng = random.Random(seed + 1)
    today = maker.moment.replace(hour=0, minute=0)
    calls_table = index.db.table("calls")

    def uncached_search(cond: Any) -> object:
        calls_table.clear_cache()
        return calls_table.search(cond)

    results = {
        "add one call": measure(lambda: index.add(maker.next()), samples),
        "latest 20": measure(lambda: index.latest(20), samples),
        "latest 20 of line 2": measure(lambda: index.latest(20, line=2), samples),
        "find by number (exact)": measure(lambda: index.find_by_number(maker.number()), samples),
        "find by number (last 4)": measure(
            lambda: index.find_by_number(maker.number()[-4:], match="suffix"), max(5, samples // 10)
        ),
        "get by call_id": measure(lambda: index.get(rng.choice(ids)), samples),
        "update one call": measure(lambda: index.update(rng.choice(ids), {"tags": ["reviewed"]}), samples),
        "count by status": measure(index.count_by_status, samples),
        "calls since today": measure(lambda: index.calls_since(_iso(today)), samples),
        "TinyDB search, uncached": measure(lambda: uncached_search(Query().rings == 6), 3),
    }
    index.close()
    return results


def bench_stock(path: Path, calls: int, samples: int, seed: int) -> dict[str, list[float]]:
    """The same operations written the way stock TinyDB allows; the query cache is cleared before
    each lookup so repeated numbers do not measure a dictionary hit."""
    maker = CallMaker(seed)
    db = TinyDB(path, storage=JSONStorage)
    table = db.table("calls")
    table.insert_multiple(maker.next() for _ in range(calls))
    call = Query()
    rng = random.Random(seed + 1)
    ids = [doc["call_id"] for doc in table.all()]

    def latest() -> list[dict[str, Any]]:
        return sorted(table.all(), key=lambda d: d["call_id"], reverse=True)[:20]

    def by_number() -> list[dict[str, Any]]:
        number = maker.number()
        table.clear_cache()
        found = table.search((call.caller_number == number) | (call.dialed_number == number))
        return sorted(found, key=lambda d: d["call_id"], reverse=True)[:100]

    def get() -> object:
        table.clear_cache()
        return table.get(call.call_id == rng.choice(ids))

    results = {
        "add one call": measure(lambda: table.insert(maker.next()), samples),
        "latest 20": measure(latest, samples),
        "find by number (exact)": measure(by_number, samples),
        "get by call_id": measure(get, samples),
    }
    db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls in the measured index")
    parser.add_argument("--reference-calls", type=int, default=10_000, help="calls for stock TinyDB")
    parser.add_argument("--samples", type=int, default=200, help="timed repetitions per operation")
    parser.add_argument("--reference-samples", type=int, default=20, help="repetitions for stock TinyDB")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: temp)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"call index benchmark in {work}")
        big = bench_index(work / "big.sqlite", args.calls, args.samples, args.seed)
        small = bench_index(work / "small.sqlite", args.reference_calls, args.samples, args.seed)
        print(f"  filling stock TinyDB JSONStorage with {args.reference_calls:,} calls")
        stock = bench_stock(work / "stock.json", args.reference_calls, args.reference_samples, args.seed)

    big_n, small_n = f"{args.calls:,}", f"{args.reference_calls:,}"
    header = (
        f"{'operation':26} {'sqlite @' + big_n:>19} {'sqlite @' + small_n:>19} "
        f"{'stock TinyDB @' + small_n:>24} {'stock/sqlite':>13}"
    )
    print()
    print("milliseconds, median / p99")
    print(header)
    print("-" * len(header))
    for name, figures in big.items():
        b_med, b_p99 = summary(figures)
        s_med, s_p99 = summary(small[name])
        row = f"{name:26} {b_med:9.3f} / {b_p99:7.3f} {s_med:9.3f} / {s_p99:7.3f}"
        if name in stock:
            r_med, r_p99 = summary(stock[name])
            row += f" {r_med:13.2f} / {r_p99:8.2f} {r_med / s_med:12.0f}x"
        print(row)
    print()
    for name in ("add one call", "latest 20"):
        _, p99 = summary(big[name])
        verdict = "meets" if p99 < 50 else "MISSES"
        print(f"target: {name} at {big_n} calls under 50 ms: p99 {p99:.2f} ms, {verdict} the target")


if __name__ == "__main__":
    main()
