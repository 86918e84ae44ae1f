"""The tap board's UART framing of D-channel frames (documented in hw/isdn-tap.md).

A byte stream in the style of PPP's HDLC-like framing (RFC 1662): frames between 0x7E flags,
0x7E and 0x7D inside a frame sent as 0x7D followed by the byte XOR 0x20, and a FCS-16 (CRC-16/X.25)
at the end, low byte first. Unescaped, a frame is:

    header (1) | tap time, ms, uint32 little-endian (4) | LAPD frame from its address field (n) | FCS (2)

Header bits: bit 0 direction (1 = NT->TE, from the network; 0 = TE->NT); bit 1 the S0 receiver
found the D-channel frame's own FCS wrong; bit 2 the frame was aborted on the bus (seven ones);
bit 3 the receiver's FIFO overran; bits 4-5 reserved (0); bits 6-7 format version (0).

The deframer must survive anything a UART can deliver: noise before the first flag, a wrong baud
rate (every frame fails its FCS), breaks (0x00 bytes), a board reset in mid-frame. It resynchronises
on every flag, never raises, and counts each dropped frame under a fixed reason in `counts`.
Frames the receiver itself marked bad are dropped too: a D-channel frame with a bad FCS on the bus
is discarded by the real terminals, so it must not change our view of a call.
"""

from __future__ import annotations

import math
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator

from callrec.isdn.pcap import CapturedFrame

FLAG, ESCAPE, XOR = 0x7E, 0x7D, 0x20
HDR_FROM_NETWORK, HDR_BUS_FCS_BAD, HDR_BUS_ABORT, HDR_OVERRUN = 0x01, 0x02, 0x04, 0x08
HDR_RESERVED = 0xF0
# Header + time + the shortest LAPD frame (address 2, control 1) + FCS.
MIN_FRAME = 1 + 4 + 3 + 2
# Header + time + the longest LAPD frame (address 2, control 2, N201 = 260) + FCS, with slack.
MAX_FRAME = 1 + 4 + 300 + 2
FCS_GOOD = 0xF0B8     # the FCS-16 residue of a frame with its FCS appended (RFC 1662 §C.2)


def _table() -> list[int]:
    table = []
    for byte in range(256):
        v = byte
        for _ in range(8):
            v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
        table.append(v)
    return table


_FCS_TABLE = _table()


def fcs16(data: bytes, fcs: int = 0xFFFF) -> int:
    """The running FCS-16 register (reflected poly 0x1021, init 0xFFFF) before the final inversion."""
    table = _FCS_TABLE
    for byte in data:
        fcs = (fcs >> 8) ^ table[(fcs ^ byte) & 0xFF]
    return fcs


def crc16_x25(data: bytes) -> int:
    """CRC-16/X.25 of `data` (check value of b"123456789" is 0x906E)."""
    return fcs16(data) ^ 0xFFFF


def encode_frame(lapd: bytes, from_network: bool, tap_ms: int, status: int = 0) -> bytes:
    """One frame as the tap board sends it, flags included (the simulator's and the tests' encoder)."""
    body = bytes([(HDR_FROM_NETWORK if from_network else 0) | status]) + struct.pack("<I", tap_ms & 0xFFFFFFFF) + lapd
    body += struct.pack("<H", crc16_x25(body))
    out = bytearray([FLAG])
    for byte in body:
        if byte in (FLAG, ESCAPE):
            out += bytes([ESCAPE, byte ^ XOR])
        else:
            out.append(byte)
    out.append(FLAG)
    return bytes(out)


class HdlcDeframer:
    """Streaming decoder of the tap's byte stream into `CapturedFrame`s.

    The tap's millisecond counter orders frames of both directions exactly; `clock` (wall time
    by default) anchors it: `t = anchor + (tap_ms - anchor_ms) / 1000`, with the 32-bit counter
    unwrapped, re-anchored when it strays more than `resync_s` from `clock` (a board reset).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, resync_s: float = 2.0) -> None:
        self._clock = clock
        self._resync_s = resync_s
        self._buf = bytearray()
        self._in_frame = False
        self._escaped = False
        self._anchor: tuple[float, int] | None = None
        self._last_ms = 0
        self._wraps = 0
        self.counts: Counter[str] = Counter()
        self.frames = 0

    def feed(self, data: bytes) -> list[CapturedFrame]:
        """Consume bytes; returns the complete, good frames they finished."""
        out: list[CapturedFrame] = []
        for byte in data:
            if byte == FLAG:
                if self._in_frame and (self._buf or self._escaped):
                    frame = self._finish()
                    if frame is not None:
                        out.append(frame)
                self._in_frame, self._escaped = True, False
                self._buf.clear()
            elif not self._in_frame:
                continue    # hunting for the first flag
            elif self._escaped:
                self._escaped = False
                self._buf.append(byte ^ XOR)
            elif byte == ESCAPE:
                self._escaped = True
            else:
                self._buf.append(byte)
                if len(self._buf) > MAX_FRAME:
                    self.counts["uart frame too long"] += 1
                    self._in_frame = False
                    self._buf.clear()
        return out

    def _finish(self) -> CapturedFrame | None:
        buf = bytes(self._buf)
        if self._escaped:
            self.counts["uart escape before flag"] += 1
            return None
        if len(buf) < MIN_FRAME:
            self.counts["uart frame too short"] += 1
            return None
        if fcs16(buf) != FCS_GOOD:
            self.counts["uart fcs bad"] += 1
            return None
        header = buf[0]
        if header & HDR_RESERVED:
            self.counts["uart header unknown"] += 1
            return None
        if header & HDR_BUS_FCS_BAD:
            self.counts["s0 frame fcs bad"] += 1
            return None
        if header & HDR_BUS_ABORT:
            self.counts["s0 frame aborted"] += 1
            return None
        if header & HDR_OVERRUN:
            self.counts["s0 receiver overrun"] += 1
            return None
        self.frames += 1
        (tap_ms,) = struct.unpack_from("<I", buf, 1)
        return CapturedFrame(self._time_of(tap_ms), buf[5:-2], bool(header & HDR_FROM_NETWORK))

    def _time_of(self, tap_ms: int) -> float:
        if self._anchor is not None and tap_ms < self._last_ms and self._last_ms - tap_ms > 0x80000000:
            self._wraps += 1
        self._last_ms = tap_ms
        ms = tap_ms + (self._wraps << 32)
        now = self._clock()
        if self._anchor is not None:
            t = self._anchor[0] + (ms - self._anchor[1]) / 1000
            if abs(t - now) <= self._resync_s:
                return t
        self._anchor = (now, ms)
        return now


class HdlcCapture:
    """A raw dump of the tap's UART read as a stream of frames, a chunk at a time (memory does not
    grow with the file): what `stty -F /dev/ttyAMA2 raw 115200; cat /dev/ttyAMA2 > d.hdlc` keeps.

    The file does not say when it was made, so times come from the tap's millisecond counter alone:
    the first frame is at 0.0 and the others after it (the counter's wraps unwrapped).
    """

    CHUNK = 65536

    def __init__(self, path: str) -> None:
        self.path = path
        self._deframer = HdlcDeframer(clock=lambda: 0.0, resync_s=math.inf)
        with open(path, "rb"):   # missing, a directory, unreadable: OSError now, before any frame
            pass

    @property
    def counts(self) -> Counter[str]:
        """Dropped frames by reason, so far."""
        return self._deframer.counts

    @property
    def frames(self) -> int:
        return self._deframer.frames

    def __iter__(self) -> Iterator[CapturedFrame]:
        with open(self.path, "rb") as f:
            while chunk := f.read(self.CHUNK):
                yield from self._deframer.feed(chunk)
