"""`callrec analyze FILE.pcap`: the Q.931 messages of a D-channel capture, as JSON lines or a table.

One dict per message, in time order, keys in a fixed order so the JSON lines can be diffed:
type, message, call_ref, from_network, calling, called, channel, cause, t (seconds from the
earliest frame, to the millisecond), then cause_text, call_ref_flag, digits, tei. Frames that gave
no message are summed up by reason at the end on the error stream, never among the JSON lines.

A capture is streamed: frames are read, decoded and printed as they come, so memory stays the
same for a 1 MB and a 1 GB file (bench/bench_analyze.py). Records out of time order (captures
merged from two taps) are put back in order within a window of `REORDER_WINDOW` messages, which
is far more than any tap's disorder; `t` counts from the earliest frame seen before the first
message leaves that window.

Besides pcap, a raw dump of the tap's UART (`FILE.hdlc`, the byte stream hw/isdn-tap.md
describes) is read the same way, its times from the tap's millisecond counter.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TextIO

from callrec.isdn.dchannel import DChannelDecoder
from callrec.isdn.errors import PcapFormatError
from callrec.isdn.hdlc import HdlcCapture
from callrec.isdn.pcap import CapturedFrame, PcapReader
from callrec.isdn.q931 import Q931Message

log = logging.getLogger(__name__)


def message_dict(msg: Q931Message, t0: float) -> dict[str, Any]:
    """The analyzer's record of one message."""
    return {
        "type": "q931",
        "message": msg.message,
        "call_ref": msg.call_ref,
        "from_network": msg.from_network,
        "calling": msg.calling.digits if msg.calling else None,
        "called": msg.called.digits if msg.called else None,
        "channel": msg.channel.b_channel if msg.channel else None,
        "cause": msg.cause.value if msg.cause else None,
        "t": round(msg.t - t0, 3),
        "cause_text": msg.cause.text if msg.cause else None,
        "call_ref_flag": msg.call_ref_flag,
        "digits": msg.keypad,
        "tei": msg.tei,
    }


REORDER_WINDOW = 4096
# json.dumps' shared encoder checks for circular references: twice the cost, on flat dicts of ours.
_JSON = json.JSONEncoder(check_circular=False)
HDLC_SUFFIXES = (".hdlc",)


class Capture(Protocol):
    """A capture file read as a stream of frames, with what it skipped by reason."""

    @property
    def counts(self) -> Mapping[str, int]: ...

    def __iter__(self) -> Iterator[CapturedFrame]: ...


def open_capture(path: str) -> Capture:
    """The reader for `path`: a raw dump of the tap's UART when it is named *.hdlc, else a pcap.

    Raises `PcapFormatError` or `OSError` for a file that cannot be read, before any frame."""
    if path.lower().endswith(HDLC_SUFFIXES):
        return HdlcCapture(path)
    return PcapReader(path)


def analyze(path: str, counts: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """The messages of a capture file, as they are read; `counts`, if given, receives the skipped
    frames by reason once the iterator is exhausted (or closed).

    Raises `PcapFormatError` (or `OSError`) for a file that cannot be read, before yielding anything.
    """
    return _in_time_order(open_capture(path), counts)


def _in_time_order(capture: Capture, counts: Counter[str] | None) -> Iterator[dict[str, Any]]:
    decoder = DChannelDecoder()
    window: list[tuple[float, int, Q931Message]] = []   # a heap; the sequence keeps equal times in file order
    earliest = math.inf
    t0: float | None = None
    try:
        for sequence, frame in enumerate(capture):
            earliest = min(earliest, frame.t)
            message = decoder.decode(frame)
            if message is None:
                continue
            if len(window) < REORDER_WINDOW:
                heapq.heappush(window, (message.t, sequence, message))
                continue
            t0 = earliest if t0 is None else t0
            yield message_dict(heapq.heappushpop(window, (message.t, sequence, message))[2], t0)
        t0 = earliest if t0 is None else t0
        while window:
            yield message_dict(heapq.heappop(window)[2], t0)
    finally:
        if counts is not None:
            counts.update(capture.counts)
            counts.update(decoder.counts)


def _drain(records: Iterator[dict[str, Any]], as_json: bool, out: TextIO) -> tuple[int, OSError | None]:
    """Write each record as it comes; (records written, the read error that ended it early or None).
    Only reading is guarded: a reader that went away (`| head`) is the caller's BrokenPipeError."""
    n = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return n, None
        except OSError as error:   # the disk or the USB stick under the capture failed part-way
            return n, error
        out.write(_JSON.encode(record) + "\n" if as_json else _row(record) + "\n")
        n += 1


def _row(d: dict[str, Any]) -> str:
    arrow = {True: "N->U", False: "U->N", None: " ?  "}[d["from_network"]]
    ref = f"{d['call_ref']}{'*' if d['call_ref_flag'] else ''}"
    parts = [f"{d['t']:10.3f}", arrow, f"cr {ref:<6}", f"{d['message']:<17}"]
    if d["calling"] is not None:
        parts.append(f"from {d['calling']}")
    if d["called"] is not None:
        parts.append(f"to {d['called']}")
    if d["digits"]:
        parts.append(f"keypad {d['digits']}")
    if d["channel"] is not None:
        parts.append(f"B{d['channel']}")
    if d["cause"] is not None:
        parts.append(f"cause {d['cause']} ({d['cause_text']})")
    return "  ".join(parts)


def run_analyze(path: str, as_json: bool, out: TextIO, *, err: TextIO | None = None) -> int:
    """Print the messages of `path` to `out`; returns the exit code (0, or 2 for an unreadable file).

    Errors and the skip summary go to `err` (standard error by default) and to the log.
    """
    err = err if err is not None else sys.stderr
    counts: Counter[str] = Counter()
    try:
        records = analyze(path, counts)
    except PcapFormatError as exc:
        err.write(f"callrec analyze: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"callrec analyze: {path}: {exc.strerror or exc}\n")
        return 2
    if not as_json:
        out.write(f"{'t (s)':>10}  dir   call ref   message\n")
    n, failed = _drain(records, as_json, out)
    if failed is not None:
        err.write(f"callrec analyze: {path}: {failed.strerror or failed} after {n} messages (while reading; "
                  "those above were read before)\n")
        return 2
    skipped = sum(counts.values())
    summary = ", ".join(f"{reason}: {k}" for reason, k in sorted(counts.items())) or "none"
    err.write(f"callrec analyze: {n} Q.931 messages; {skipped} frames skipped ({summary})\n")
    log.info("analyzed %s: %d messages, skipped %s", path, n, dict(counts))
    return 0
