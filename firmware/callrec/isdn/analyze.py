"""`callrec analyze FILE.pcap`: the Q.931 messages of a D-channel capture, as JSON lines or a table.

One dict per message, in time order, keys in a fixed order so the JSON lines can be diffed:
type, message, call_ref, from_network, calling, called, channel, cause, t (seconds from the
first frame, to the millisecond), then cause_text, call_ref_flag, digits, tei. Frames that gave no
message are summed up by reason at the end on the error stream, never among the JSON lines.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from callrec.isdn.dchannel import DChannelDecoder
from callrec.isdn.errors import PcapFormatError
from callrec.isdn.pcap import PcapReader
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


def analyze(path: str, counts: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """The messages of a pcap file; `counts`, if given, receives the skipped frames by reason.

    Raises `PcapFormatError` (or `OSError`) for a file that cannot be read, before yielding anything.
    """
    reader = PcapReader(path)
    decoder = DChannelDecoder()
    frames = list(reader)
    messages = list(decoder.feed(frames))
    if counts is not None:
        counts.update(reader.counts)
        counts.update(decoder.counts)
    if not frames:
        return iter(())
    t0 = min(frame.t for frame in frames)
    # Stable: messages stamped alike keep the order of the file.
    messages.sort(key=lambda m: m.t)
    return (message_dict(m, t0) for m in messages)


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
    n = 0
    if not as_json:
        out.write(f"{'t (s)':>10}  dir   call ref   message\n")
    for record in records:
        out.write(json.dumps(record) + "\n" if as_json else _row(record) + "\n")
        n += 1
    skipped = sum(counts.values())
    summary = ", ".join(f"{reason}: {k}" for reason, k in sorted(counts.items())) or "none"
    err.write(f"callrec analyze: {n} Q.931 messages; {skipped} frames skipped ({summary})\n")
    log.info("analyzed %s: %d messages, skipped %s", path, n, dict(counts))
    return 0
