"""Benchmark of the D-channel decoder: frames per second, ours next to tshark, on the same capture.

    .venv/bin/python bench/bench_q931.py [--frames N] [--quick]

Builds a capture of N frames (default 200,000: whole calls, layer-2 keep-alives and some garbage,
in the proportions of a busy BRI), then times our reader and decoder (`read_pcap` +
`DChannelDecoder`, CPU time) and `tshark -r FILE -T fields -e q931.message_type` (wall time of the
process) on that file, and prints both and the ratio in markdown. A BRI D-channel carries at most
16 kbit/s, about 60 frames a second at full load, so the figure that matters is the margin; a
Raspberry Pi is several times slower per core than this machine. Needs tshark for the comparison.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from callrec.isdn import CapturedFrame, DChannelDecoder, read_pcap, write_pcap  # noqa: E402
from callrec.isdn.trace import Trace, inbound_call, layer2_chatter, outbound_call, overlap_call, rejected_call  # noqa: E402


def build(n: int) -> list[CapturedFrame]:
    tr = Trace()
    cr = 1
    while len(tr.frames) < n:
        cr = cr % 127 + 1
        layer2_chatter(tr)
        inbound_call(tr, cr=cr, talk_s=1.0)
        outbound_call(tr, cr=cr, talk_s=1.0)
        overlap_call(tr, cr=cr)
        rejected_call(tr, cr=cr)
        tr.raw(b"\x02\x81\xff\x00\x00", True)
    return tr.frames[:n]


def ours(path: str) -> tuple[float, int, int]:
    t = time.process_time()
    decoder = DChannelDecoder()
    messages = sum(1 for _ in decoder.feed(read_pcap(path)))
    return time.process_time() - t, decoder.frames, messages


def tshark(path: str) -> tuple[float, int]:
    t = time.perf_counter()
    res = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "q931.message_type"],
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - t, sum(1 for line in res.stdout.splitlines() if line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="20,000 frames")
    args = ap.parse_args()
    n = 20_000 if args.quick else args.frames
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.pcap")
        write_pcap(path, build(n), 177)
        size = Path(path).stat().st_size
        s, frames, messages = ours(path)
        rows = ["| Decoder | frames | Q.931 messages | seconds | frames/s |", "|---|---|---|---|---|",
                f"| callrec (read_pcap + DChannelDecoder, CPU) | {frames} | {messages} | {s:.2f} | {frames / s:,.0f} |"]
        if shutil.which("tshark"):
            ts, tmessages = tshark(path)
            rows.append(f"| tshark -T fields -e q931.message_type (wall) | {frames} | {tmessages} | {ts:.2f} | "
                        f"{frames / ts:,.0f} |")
            rows.append("")
            rows.append(f"Ratio: callrec is {ts / s:.1f}x tshark's speed on this file ({size / 1e6:.1f} MB).")
        else:
            rows.append("\n(tshark not installed: no comparison)")
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
