"""Q.921 LAPD frames: the address and control fields around a Q.931 message.

Address (2 octets): SAPI (6 bits), C/R, EA0 = 0 | TEI (7 bits), EA1 = 1. Control: I frames
(bit 1 = 0, 2 octets, N(S)/N(R)), S frames (bits 2-1 = 01, 2 octets: RR, RNR, REJ), U frames
(bits 2-1 = 11, 1 octet: SABME, DM, UI, DISC, UA, FRMR, XID).

Only I and UI frames carry layer-3 data, and only SAPI 0 is call control: everything else (layer 2
management on SAPI 63, X.25 on SAPI 16, the link set-up and acknowledgements) is skipped with a
fixed reason, so the skip counts say what the line was doing.

Direction without a pseudo-header (link type 203): Q.921 §3.3.2 sets C/R = 1 in commands from the
network and C/R = 0 in commands from the user, the reverse in responses. I and UI frames are
always commands, so their C/R gives the direction; SABME/DISC are commands and UA/DM/FRMR
responses; RR/RNR/REJ can be either, so their direction stays unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from callrec.isdn.errors import FrameError, FrameSkipped

SAPI_CALL_CONTROL = 0
TEI_BROADCAST = 127

_S_NAMES = {0: "RR", 1: "RNR", 2: "REJ"}
# U-frame control octets with the P/F bit (0x10) masked off.
_U_NAMES = {0x6F: "SABME", 0x0F: "DM", 0x03: "UI", 0x43: "DISC", 0x63: "UA", 0x87: "FRMR", 0xAF: "XID"}
_U_COMMANDS = {"SABME", "UI", "DISC"}
_U_RESPONSES = {"UA", "DM", "FRMR"}

FrameKind = Literal["I", "S", "U"]


@dataclass(frozen=True, slots=True)
class LapdFrame:
    """One decoded LAPD frame; `info` is the layer-3 payload (empty for S and most U frames)."""

    sapi: int
    cr: bool
    tei: int
    kind: FrameKind
    name: str           # "I", "RR", "RNR", "REJ", "UI", "SABME", "UA", "DM", "DISC", "FRMR", "XID"
    pf: bool
    ns: int | None
    nr: int | None
    info: bytes

    @property
    def from_network(self) -> bool | None:
        """The direction implied by C/R (Q.921 §3.3.2), or None where the frame type leaves it open."""
        if self.kind == "I" or self.name in _U_COMMANDS:
            return self.cr
        if self.name in _U_RESPONSES:
            return not self.cr
        return None


def parse_lapd(data: bytes) -> LapdFrame:
    """Decode a LAPD frame from its address field (no flags, no FCS); raises `FrameError`."""
    if len(data) < 3:
        raise FrameError("lapd frame too short")
    a0, a1, c0 = data[0], data[1], data[2]
    if a0 & 1 or not a1 & 1:
        raise FrameError("lapd address extension bits wrong")
    sapi, cr, tei = a0 >> 2, bool(a0 & 2), a1 >> 1
    if not c0 & 1:
        if len(data) < 4:
            raise FrameError("lapd frame too short")
        c1 = data[3]
        return LapdFrame(sapi, cr, tei, "I", "I", bool(c1 & 1), c0 >> 1, c1 >> 1, data[4:])
    if c0 & 3 == 1:
        if len(data) < 4:
            raise FrameError("lapd frame too short")
        c1 = data[3]
        name = _S_NAMES.get((c0 >> 2) & 3)
        if name is None or c0 & 0xF0:
            raise FrameError("lapd supervisory function unknown")
        return LapdFrame(sapi, cr, tei, "S", name, bool(c1 & 1), None, c1 >> 1, data[4:])
    uname = _U_NAMES.get(c0 & 0xEF)
    if uname is None:
        raise FrameError("lapd unnumbered function unknown")
    return LapdFrame(sapi, cr, tei, "U", uname, bool(c0 & 0x10), None, None, data[3:])


def call_control_payload(frame: LapdFrame) -> bytes:
    """The Q.931 bytes of an I or UI frame on SAPI 0; raises `FrameSkipped` for any other frame."""
    if frame.kind == "S":
        raise FrameSkipped("lapd supervisory")
    if frame.kind == "U" and frame.name != "UI":
        raise FrameSkipped("lapd unnumbered")
    if frame.sapi != SAPI_CALL_CONTROL:
        raise FrameSkipped("lapd sapi 63 management" if frame.sapi == 63 else "lapd sapi not call control")
    if not frame.info:
        raise FrameSkipped("lapd empty information field")
    return frame.info
