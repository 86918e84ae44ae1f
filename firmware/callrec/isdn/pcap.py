"""Classic pcap files of a D-channel: the traces the analyzer reads and the simulator and tests write.

Two link types carry LAPD (see https://www.tcpdump.org/linktypes.html):

- 177 LINUX_LAPD: each packet starts with a 16-byte, big-endian pseudo-header laid out like Linux's
  cooked header: `pkttype` (2), `hatype` (2), `halen` (2), `addr` (8), `protocol` (2, ETH_P_LAPD =
  0x0030). mISDN writes it, and Wireshark (wiretap `pcap_read_lapd_pseudoheader` and packet-lapd.c)
  reads the direction from it: `we_network = addr[0] != 0`; pkttype 4 (OUTGOING) was sent by the
  capturing side (network->user if we_network, else user->network); pkttype 3 (OTHERHOST) is
  another TE's frame, user->network; any other pkttype was received (user->network if we_network,
  else network->user).
- 203 LAPD: the packet is the LAPD frame from its address field, no pseudo-header, no direction;
  the LAPD decoder infers it from the C/R bit.

Only the classic format is read (pcapng is refused with a hint to convert it): it is what mISDN,
`text2pcap` and our own writer produce, and it is simple enough to read robustly here, without a
dependency. A capture cut off while being written (a power loss on the Pi) ends with a partial
record: that is counted and logged, never a crash; a file whose global header is wrong is refused
with a `PcapFormatError` naming file and offset.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from callrec.isdn.errors import PcapFormatError

log = logging.getLogger(__name__)

LINKTYPE_LINUX_LAPD = 177
LINKTYPE_LAPD = 203
LINKTYPES = (LINKTYPE_LINUX_LAPD, LINKTYPE_LAPD)
ETH_P_LAPD = 0x0030
PKTTYPE_HOST = 0
PKTTYPE_OTHERHOST = 3
PKTTYPE_OUTGOING = 4
# Larger than any LAPD frame (N201 = 260 octets plus header) with room for odd capture tools, and the
# line past which a record length is certainly garbage: reading on would misalign every later record.
MAX_RECORD = 65535

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG = b"\x0a\x0d\x0d\x0a"


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One D-channel frame as captured: `t` seconds since the epoch, `data` from the LAPD address
    field on (no flags, no FCS), `from_network` True for NT->TE, False for TE->NT, None if unknown."""

    t: float
    data: bytes
    from_network: bool | None = None


def direction_of_pseudo_header(pkttype: int, addr0: int) -> bool:
    """From-network for a LINUX_LAPD pseudo-header, by the rules Wireshark's packet-lapd.c applies."""
    we_network = addr0 != 0
    if pkttype == PKTTYPE_OUTGOING:
        return we_network
    if pkttype == PKTTYPE_OTHERHOST:
        return False
    return not we_network


class PcapReader:
    """Iterates the frames of one classic pcap file; `counts` holds what was skipped and why.

    The global header is read on construction, so a wrong file fails before anything is decoded.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self.frames = 0
        with open(path, "rb") as f:
            head = f.read(24)
        if head[:4] == _PCAPNG:
            raise PcapFormatError(path, 0, "a pcapng file; convert it with `editcap -F pcap IN OUT`")
        if len(head) < 24:
            raise PcapFormatError(path, len(head), f"not a pcap file: {len(head)} bytes, a global header has 24")
        if head[:4] not in _MAGICS:
            raise PcapFormatError(path, 0, f"not a pcap file: magic 0x{head[:4].hex()}")
        self._order, self._tick = _MAGICS[head[:4]]
        major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(self._order + "HHiIII", head[4:])
        if major != 2:
            raise PcapFormatError(path, 4, f"pcap version {major} is not 2")
        self.linktype = network & 0xFFFF  # the upper bits may carry an FCS length, which LAPD traces do not use
        if self.linktype not in LINKTYPES:
            raise PcapFormatError(path, 20, f"link type {self.linktype} is not LAPD (177 LINUX_LAPD or 203 LAPD)")

    def __iter__(self) -> Iterator[CapturedFrame]:
        with open(self.path, "rb") as f:
            f.seek(24)
            yield from self._records(f)

    def _records(self, f: BinaryIO) -> Iterator[CapturedFrame]:
        header = struct.Struct(self._order + "IIII")
        offset = 24
        pseudo = self.linktype == LINKTYPE_LINUX_LAPD
        while True:
            raw = f.read(16)
            if not raw:
                return
            if len(raw) < 16:
                self._truncated(offset, "record header")
                return
            sec, frac, incl, _orig = header.unpack(raw)
            if incl > MAX_RECORD:
                self.counts["pcap record length impossible"] += 1
                log.warning("%s: record at byte offset %d claims %d bytes; the rest of the file is not read",
                            self.path, offset, incl)
                return
            data = f.read(incl)
            if len(data) < incl:
                self._truncated(offset, "record data")
                return
            offset += 16 + incl
            self.frames += 1
            t = sec + frac * self._tick
            if not pseudo:
                yield CapturedFrame(t, data, None)
                continue
            if len(data) < 16:
                self.counts["pcap pseudo-header short"] += 1
                continue
            pkttype, protocol = struct.unpack_from(">H", data, 0)[0], struct.unpack_from(">H", data, 14)[0]
            if protocol != ETH_P_LAPD:
                self.counts["pcap pseudo-header not lapd"] += 1
                continue
            yield CapturedFrame(t, data[16:], direction_of_pseudo_header(pkttype, data[6]))

    def _truncated(self, offset: int, what: str) -> None:
        self.counts["pcap truncated record"] += 1
        log.warning("%s: the last record (byte offset %d) is cut off in its %s; it is skipped",
                    self.path, offset, what)


def read_pcap(path: str) -> Iterator[CapturedFrame]:
    """The frames of a pcap file (see `PcapReader` for the skip counts)."""
    return iter(PcapReader(path))


def write_pcap(path: str, frames: Iterable[CapturedFrame], linktype: int = LINKTYPE_LINUX_LAPD, *,
               nanosecond: bool = False, byte_order: Literal["<", ">"] = "<", we_network: bool = False) -> int:
    """Write `frames` as a classic pcap file; returns the number of records written.

    For 177 the pseudo-header is written as a TE-side monitor would (`we_network` False): frames
    from the network as received (pkttype 0), the user's as sent (pkttype 4); a frame of unknown
    direction cannot be expressed there and is refused. For 203 the direction is simply not stored.
    """
    if linktype not in LINKTYPES:
        raise ValueError(f"link type {linktype} is not LAPD (177 or 203)")
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    scale = 1_000_000_000 if nanosecond else 1_000_000
    record = struct.Struct(byte_order + "IIII")
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, MAX_RECORD, linktype))
        for frame in frames:
            data = frame.data
            if linktype == LINKTYPE_LINUX_LAPD:
                if frame.from_network is None:
                    raise ValueError("LINUX_LAPD (177) cannot store a frame of unknown direction")
                sent_by_us = frame.from_network == we_network
                pkttype = PKTTYPE_OUTGOING if sent_by_us else PKTTYPE_HOST
                addr = bytes([1 if we_network else 0]) + bytes(7)
                data = struct.pack(">HHH", pkttype, 0, 1) + addr + struct.pack(">H", ETH_P_LAPD) + data
            ticks = round(frame.t * scale)
            sec, frac = divmod(ticks, scale)
            f.write(record.pack(sec, frac, len(data), len(data)))
            f.write(data)
            n += 1
    return n
