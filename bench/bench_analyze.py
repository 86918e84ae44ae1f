"""Benchmark of `callrec analyze` on a large D-channel capture: peak memory and time, next to reading
the same file.

    .venv/bin/python bench/bench_analyze.py [--mb 150] [--quick] [--tshark] [--keep FILE]

Writes a classic pcap (link type 177) of about `--mb` megabytes (default 150, about 3.5 million
frames of whole calls, layer-2 keep-alives and some garbage, as bench_q931.py builds them), then
runs, each as its own process so its peak RSS is its own (wait4's ru_maxrss):

- `cat FILE` to /dev/null: the floor of reading the file at all;
- `python -c 'for frame in read_pcap(FILE)'`: our reader alone, no decoding;
- `callrec analyze FILE --json` to /dev/null: the command under test;
- with --tshark, `tshark -r FILE -T fields -e q931.message_type` (slow on a file this size).

It prints one markdown row per run (wall seconds, CPU seconds, peak RSS) and the ratios of analyze
to the reader alone. What matters is that analyze's peak RSS stays flat as the file grows (it reads,
decodes and prints as it goes), and that its time stays proportional to the file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_q931 import build  # noqa: E402  (bench/ is on sys.path when run as a script)
from callrec.isdn import LINKTYPE_LINUX_LAPD, write_pcap

CYCLE_FRAMES = 20_000


@dataclass(frozen=True)
class Run:
    name: str
    wall_s: float
    cpu_s: float
    rss_mb: float
    status: int


def write_large_capture(path: Path, megabytes: float) -> int:
    """A pcap of about `megabytes`: one cycle of frames written again and again, later each time.
    Returns the number of frames written."""
    cycle_path = path.with_suffix(".cycle.pcap")
    write_pcap(str(cycle_path), build(CYCLE_FRAMES), LINKTYPE_LINUX_LAPD)
    raw = cycle_path.read_bytes()
    cycle_path.unlink()
    header, records = raw[:24], _records(raw[24:])
    span_us = records[-1][0] - records[0][0] + 50_000
    target = int(megabytes * 1e6)
    written, frames, shift = len(header), 0, 0
    with open(path, "wb") as out:
        out.write(header)
        while written < target:
            chunk = bytearray()
            for at_us, data in records:
                sec, usec = divmod(at_us + shift, 1_000_000)
                chunk += struct.pack("<IIII", sec, usec, len(data), len(data)) + data
            out.write(chunk)
            written += len(chunk)
            frames += len(records)
            shift += span_us
    return frames


def _records(body: bytes) -> list[tuple[int, bytes]]:
    records, offset = [], 0
    while offset < len(body):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", body, offset)
        records.append((sec * 1_000_000 + usec, body[offset + 16:offset + 16 + incl]))
        offset += 16 + incl
    return records


def measure(name: str, argv: list[str]) -> Run:
    """Run `argv` with its output to /dev/null; its wall time, CPU time and peak RSS.

    Through GNU time where it is installed: a child forked from this Python process would count
    this process's pages in its ru_maxrss (Linux records the forked copy's high-water mark at exec);
    forked from `time` it counts a megabyte or two of `time` at most."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with tempfile.NamedTemporaryFile("r") as report, open(os.devnull, "wb") as sink:
        wrapped = [gnu_time, "-f", "%e %U %S %M", "-o", report.name, *argv] if gnu_time else argv
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=sink, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        fields = report.read().split()
    if gnu_time and len(fields) >= 4:
        return Run(name, float(fields[-4]), float(fields[-3]) + float(fields[-2]), int(fields[-1]) / 1024, code)
    return Run(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=150.0, help="size of the capture in MB (default 150)")
    ap.add_argument("--quick", action="store_true", help="a 15 MB capture")
    ap.add_argument("--tshark", action="store_true", help="also time tshark on the file (slow)")
    ap.add_argument("--keep", type=Path, metavar="FILE", help="write the capture here and keep it")
    args = ap.parse_args()
    megabytes = 15.0 if args.quick else args.mb
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "large.pcap"
        t = time.perf_counter()
        frames = write_large_capture(path, megabytes)
        made_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        python = sys.executable
        runs = [measure("cat FILE", ["cat", str(path)]),
                measure("read_pcap alone (python)", [python, "-c", "import sys\nfrom callrec.isdn import read_pcap\n"
                                                     "for _ in read_pcap(sys.argv[1]): pass", str(path)]),
                measure("callrec analyze FILE --json", [python, "-m", "callrec", "analyze", str(path), "--json"])]
        if args.tshark and shutil.which("tshark"):
            runs.append(measure("tshark -T fields -e q931.message_type",
                                ["tshark", "-r", str(path), "-T", "fields", "-e", "q931.message_type"]))
    rows = [f"Capture: {size_mb:.1f} MB, {frames:,} frames (written in {made_s:.1f} s).", "",
            "| run | wall s | CPU s | peak RSS MB | exit |", "|---|---|---|---|---|"]
    rows += [f"| {r.name} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.rss_mb:.0f} | {r.status} |" for r in runs]
    reader, analyze = runs[1], runs[2]
    rows += ["", f"analyze / reader alone: {analyze.wall_s / reader.wall_s:.1f}x the time, "
                 f"{analyze.rss_mb / reader.rss_mb:.1f}x the peak RSS; "
                 f"{frames / analyze.wall_s:,.0f} frames/s"]
    sys.stdout.write("\n".join(rows) + "\n")
    return 0 if all(r.status == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
