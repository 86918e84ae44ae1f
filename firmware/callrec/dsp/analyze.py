"""`callrec analyze FILE`: run every line detector over a recording and list what it heard.

Offline analysis uses the very objects the live pipeline uses (LineDsp), fed in 20 ms periods, so a
recording that confuses the device can be replayed here and give the same answer. Any WAV (or other
libsndfile format) of any rate, width and channel count is read; one channel is resampled to 8 kHz.
Output: one JSON object per line, in time order (the shapes are documented in docs/dsp.md), or a
table for people.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from callrec.config import PROFILES
from callrec.errors import CallrecError

from .detection import SAMPLE_RATE, Detection
from .gen import saturate
from .pipeline import LineDsp

PERIOD = 160


class AnalyzeError(CallrecError, ValueError):
    """The input cannot be analysed (unreadable, empty, no such channel)."""


def load(path: str, channel: int = 0) -> np.ndarray:
    """`path` as int16 8 kHz mono (channel `channel`, counted from 0)."""
    from callrec.audio import SoundError, read_mono  # the one audio file reader

    try:
        x = read_mono(Path(path), SAMPLE_RATE, channel)
    except SoundError as exc:
        raise AnalyzeError(f"cannot read {str(exc).replace(' asked for', f'; --channel {channel} does not exist')}") \
            from None
    return saturate(x * 32768.0)


def analyze(samples: np.ndarray, region: str = "JP") -> list[Detection]:
    """Every final detection (tones once, with their end), sorted by start time."""
    dsp = LineDsp(region)
    found: list[Detection] = []
    for i in range(0, len(samples), PERIOD):
        found += dsp.feed(samples[i:i + PERIOD], i / SAMPLE_RATE)
    found += dsp.flush()
    final = [d for d in found if not (d.type == "tone" and d.end is None)]
    return sorted(final, key=lambda d: (d.start, d.type))


def _row(d: dict[str, Any]) -> str:
    start = f"{d['start']:9.3f}"
    end = f"{d['end']:9.3f}" if d.get("end") is not None else " " * 9
    if d["type"] == "dtmf":
        what = f"DTMF      {d['digit']}"
    elif d["type"] == "tone":
        what = f"tone      {d['kind']}"
    else:
        if d["valid"]:
            who = " ".join(str(v) for v in (d["number"], d["name"]) if v) or d["reason"] or "?"
        else:
            who = "INVALID (checksum/CRC failed)"
        what = f"caller ID {d['standard']:8s} {who}"
    return f"{start} {end}  {what}"


# classic pcap (both byte orders, us and ns) and pcapng, which the trace reader names and refuses clearly
PCAP_MAGICS = {bytes.fromhex(m) for m in ("a1b2c3d4", "d4c3b2a1", "a1b23c4d", "4d3cb2a1", "0a0d0d0a")}


def _is_capture(path: str) -> bool:
    """A D-channel trace: a pcap, told by its magic number whatever its name, or a raw dump of the
    tap's UART, told by its name (*.hdlc: the byte stream has no header to tell it by)."""
    if path.lower().endswith(".hdlc"):
        return True
    try:
        with open(path, "rb") as file:
            return file.read(4) in PCAP_MAGICS
    except OSError:
        return path.endswith((".pcap", ".cap"))


def run(args: argparse.Namespace) -> int:
    """Entry point for `callrec analyze`; returns the exit status (2 for unusable input).

    A recording gives its DTMF, caller ID and tones; an ISDN D-channel trace (pcap, or the tap's
    UART as FILE.hdlc) its Q.931 messages, one JSON line each with --json (callrec.isdn.analyze),
    streamed: memory does not grow with the file."""
    if _is_capture(args.file):
        from callrec.isdn import run_analyze

        return run_analyze(args.file, args.json, sys.stdout)
    try:
        samples = load(args.file, args.channel)
    except AnalyzeError as exc:
        print(f"callrec analyze: {exc}", file=sys.stderr)
        return 2
    found = [d.as_dict() for d in analyze(samples, args.region)]
    if args.json:
        for d in found:
            print(json.dumps(d, ensure_ascii=False))
    else:
        print(f"{'start s':>9} {'end s':>9}  detection")
        for d in found:
            print(_row(d))
        if not found:
            print("(nothing detected)")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="audio file (WAV or anything libsndfile reads), any rate/width/channels; "
                                     "or a pcap of an ISDN D-channel (link type 177 or 203), or a raw dump "
                                     "of the tap's UART named *.hdlc")
    parser.add_argument("--region", choices=sorted(PROFILES), default="JP",
                        help="tone plan and DTMF acceptance limits (default JP)")
    parser.add_argument("--json", action="store_true", help="one JSON object per detection")
    parser.add_argument("--channel", type=int, default=0, help="channel to analyse, from 0 (default 0)")


def register(subparsers: Any) -> None:
    """Add `analyze` to the CLI's subparsers (called from callrec.cli)."""
    parser = subparsers.add_parser("analyze", help="list DTMF, caller ID and tones heard in a recording, or the "
                                                   "Q.931 messages of an ISDN D-channel trace (pcap)",
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callrec analyze", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
