"""Q.931 call-control messages (protocol discriminator 0x08) as a passive recorder needs them.

What is decoded: the call reference, the message type (the twelve messages of a basic call, see
`MESSAGE_NAMES`) and the information elements that say who calls whom, on which B-channel, and
why the call ended. Everything else is stepped over by its length: other codesets (after a
locking or non-locking shift), elements we do not interpret (their ids are kept in
`unknown_ies`), single-octet elements.

Every length is checked against the message end before a byte is read: an element that claims
more octets than the message has, or a number digit that is not an IA5 dialling character, raises
`FrameError`. A recorder must show no number rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

from callrec.isdn.errors import FrameError, FrameSkipped
from callrec.isdn.q850 import cause_text

PROTOCOL_Q931 = 0x08

MESSAGE_NAMES: dict[int, str] = {
    0x05: "SETUP", 0x0D: "SETUP ACK", 0x02: "CALL PROCEEDING", 0x01: "ALERTING", 0x03: "PROGRESS",
    0x07: "CONNECT", 0x0F: "CONNECT ACK", 0x7B: "INFORMATION", 0x45: "DISCONNECT", 0x4D: "RELEASE",
    0x5A: "RELEASE COMPLETE", 0x7D: "STATUS",
}
MESSAGE_TYPES: dict[str, int] = {name: value for value, name in MESSAGE_NAMES.items()}
# Defined by Q.931 but not needed to follow a basic call: skipped under their own reason.
OTHER_MESSAGES = frozenset({0x20, 0x21, 0x22, 0x25, 0x26, 0x2D, 0x2E, 0x46, 0x4E, 0x60, 0x62, 0x6E, 0x75, 0x79})

IE_BEARER, IE_CAUSE, IE_CHANNEL, IE_PROGRESS, IE_DISPLAY = 0x04, 0x08, 0x18, 0x1E, 0x28
IE_KEYPAD, IE_CALLING, IE_CALLED = 0x2C, 0x6C, 0x70
SINGLE_SENDING_COMPLETE = 0xA1
# Codeset 0 elements a recorder has no use for: skipped by length, not reported as unknown.
_PASSED_OVER = frozenset({0x00, 0x10, 0x14, 0x1C, 0x20, 0x27, 0x29, 0x34, 0x40, 0x42, 0x43, 0x44, 0x4C, 0x4D,
                          0x6D, 0x71, 0x74, 0x76, 0x78, 0x79, 0x7C, 0x7D, 0x7E, 0x7F})
DIAL_CHARS = frozenset(b"0123456789*#ABCDabcd+,")
_BRI_CHANNELS = {0: "none", 1: "B1", 2: "B2", 3: "any"}


@dataclass(frozen=True, slots=True)
class PartyNumber:
    """Calling or called party number. `presentation`/`screening` only where octet 3a was sent."""

    digits: str
    type_of_number: int
    numbering_plan: int
    presentation: int | None = None
    screening: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelId:
    """Channel identification. `b_channel` is 1 or 2 (BRI), the channel number (PRI), else None."""

    selection: str          # BRI: "none", "B1", "B2", "any"; other interfaces: "indicated", "reserved"
    exclusive: bool
    d_channel: bool
    b_channel: int | None
    basic: bool = True


@dataclass(frozen=True, slots=True)
class Cause:
    value: int
    location: int
    coding_standard: int
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    location: int
    description: int
    coding_standard: int


@dataclass(frozen=True, slots=True)
class Q931Message:
    """One decoded message; `t`, `from_network` and `tei` come from the frame that carried it."""

    message: str
    message_type: int
    call_ref: int
    call_ref_flag: bool
    call_ref_len: int
    t: float = 0.0
    from_network: bool | None = None
    tei: int | None = None
    calling: PartyNumber | None = None
    called: PartyNumber | None = None
    channel: ChannelId | None = None
    cause: Cause | None = None
    progress: tuple[Progress, ...] = ()
    keypad: str | None = None
    display: str | None = None
    sending_complete: bool = False
    bearer_capability: int | None = None   # information transfer capability: 0 speech, 0x10 3.1 kHz audio
    unknown_ies: tuple[int, ...] = ()       # codeset 0 element ids we did not recognise
    other_codeset_ies: int = 0              # elements in codesets 1-7, skipped


def _dial_string(body: bytes, what: str) -> str:
    if not DIAL_CHARS.issuperset(body):
        raise FrameError(f"q931 {what} has a character that is not an IA5 digit")
    return body.decode("ascii")


def _number(body: bytes, calling: bool) -> PartyNumber:
    if not body:
        raise FrameError("q931 number ie empty")
    o3 = body[0]
    ton, npi = (o3 >> 4) & 7, o3 & 0x0F
    if o3 & 0x80:
        return PartyNumber(_dial_string(body[1:], "number"), ton, npi)
    # Octet 3a (presentation and screening) is defined for the calling number only.
    if not calling or len(body) < 2 or not body[1] & 0x80:
        raise FrameError("q931 number octet 3 extension wrong")
    o3a = body[1]
    return PartyNumber(_dial_string(body[2:], "number"), ton, npi, (o3a >> 5) & 3, o3a & 3)


def _channel(body: bytes) -> ChannelId:
    if not body or not body[0] & 0x80:
        raise FrameError("q931 channel identification malformed")
    o3 = body[0]
    exclusive, d_channel, sel = bool(o3 & 0x08), bool(o3 & 0x04), o3 & 3
    if o3 & 0x40:
        # An explicit interface identifier: not a BRI with one interface, and nothing a recorder can map.
        return ChannelId("indicated", exclusive, d_channel, None, basic=not o3 & 0x20)
    if not o3 & 0x20:
        return ChannelId(_BRI_CHANNELS[sel], exclusive, d_channel, sel if sel in (1, 2) else None)
    # Primary rate: selection 01 means "as indicated in the following octets" (3.2 type, 3.3 number).
    if sel != 1:
        return ChannelId(_BRI_CHANNELS[sel] if sel != 2 else "reserved", exclusive, d_channel, None, basic=False)
    if len(body) < 3:
        raise FrameError("q931 channel identification malformed")
    number = body[2] & 0x7F if not body[1] & 0x10 else None   # 0x10: a slot map, not a number
    return ChannelId("indicated", exclusive, d_channel, number, basic=False)


def _cause(body: bytes) -> Cause:
    if len(body) < 2:
        raise FrameError("q931 cause ie too short")
    o3, i = body[0], 1
    if not o3 & 0x80:
        i = 2          # octet 3a: recommendation
        if len(body) < 3:
            raise FrameError("q931 cause ie too short")
    coding, location, value = (o3 >> 5) & 3, o3 & 0x0F, body[i] & 0x7F
    return Cause(value, location, coding, cause_text(value, coding))


def _progress(body: bytes) -> Progress:
    if len(body) < 2:
        raise FrameError("q931 progress indicator too short")
    return Progress(body[0] & 0x0F, body[1] & 0x7F, (body[0] >> 5) & 3)


def decode_q931(data: bytes, t: float = 0.0, from_network: bool | None = None,
                tei: int | None = None) -> Q931Message:
    """Decode one Q.931 message (the information field of a LAPD I or UI frame)."""
    if not data:
        raise FrameError("q931 message empty")
    if data[0] != PROTOCOL_Q931:
        raise FrameSkipped("q931 other protocol discriminator")
    if len(data) < 2:
        raise FrameError("q931 message truncated")
    if data[1] & 0xF0:
        raise FrameError("q931 call reference length octet malformed")
    cr_len = data[1] & 0x0F
    if cr_len > 2:
        raise FrameError("q931 call reference longer than 2 octets")
    pos = 2 + cr_len
    if len(data) < pos + 1:
        raise FrameError("q931 message truncated")
    flag, ref = False, 0
    if cr_len:
        flag = bool(data[2] & 0x80)
        ref = data[2] & 0x7F
        if cr_len == 2:
            ref = (ref << 8) | data[3]
    mtype = data[pos]
    if mtype & 0x80:
        raise FrameError("q931 message type bit 8 set")
    name = MESSAGE_NAMES.get(mtype)
    if name is None:
        if mtype == 0x00:
            raise FrameSkipped("q931 national message type")
        if mtype in OTHER_MESSAGES:
            raise FrameSkipped("q931 message type not decoded")
        raise FrameSkipped("q931 unknown message type")
    ies = _Elements()
    ies.parse(data, pos + 1)
    return Q931Message(name, mtype, ref, flag, cr_len, t, from_network, tei, ies.calling, ies.called, ies.channel,
                       ies.cause, tuple(ies.progress), ies.keypad, ies.display, ies.sending_complete, ies.bearer,
                       tuple(ies.unknown), ies.other_codeset)


class _Elements:
    """The information elements of one message, filled by `parse`; the first of each kind wins."""

    def __init__(self) -> None:
        self.calling: PartyNumber | None = None
        self.called: PartyNumber | None = None
        self.channel: ChannelId | None = None
        self.cause: Cause | None = None
        self.progress: list[Progress] = []
        self.keypad: str | None = None
        self.display: str | None = None
        self.sending_complete = False
        self.bearer: int | None = None
        self.unknown: list[int] = []
        self.other_codeset = 0

    def parse(self, data: bytes, pos: int) -> None:
        end = len(data)
        locked = 0          # the codeset a locking shift selected
        once: int | None = None   # the codeset a non-locking shift selected for the next element
        while pos < end:
            ie = data[pos]
            codeset = locked if once is None else once
            once = None
            if ie & 0x80:
                pos += 1
                if ie & 0xF0 == 0x90:
                    if ie & 0x08:
                        once = ie & 7
                    else:
                        locked = ie & 7
                elif codeset == 0 and ie == SINGLE_SENDING_COMPLETE:
                    self.sending_complete = True
                continue
            if pos + 1 >= end:
                raise FrameError("q931 ie length missing")
            length = data[pos + 1]
            start = pos + 2
            if start + length > end:
                raise FrameError("q931 ie runs past message end")
            pos = start + length
            if codeset != 0:
                self.other_codeset += 1
                continue
            self._element(ie, data[start:pos])

    def _element(self, ie: int, body: bytes) -> None:
        if ie == IE_CALLING:
            number = _number(body, calling=True)
            self.calling = self.calling or number
        elif ie == IE_CALLED:
            number = _number(body, calling=False)
            self.called = self.called or number
        elif ie == IE_CHANNEL:
            self.channel = self.channel or _channel(body)
        elif ie == IE_CAUSE:
            self.cause = self.cause or _cause(body)
        elif ie == IE_PROGRESS:
            self.progress.append(_progress(body))
        elif ie == IE_KEYPAD:
            self.keypad = (self.keypad or "") + _dial_string(body, "keypad facility")
        elif ie == IE_DISPLAY:
            text = body[1:] if body and body[0] & 0x80 else body   # ETSI's optional display-type octet
            self.display = self.display or text.decode("ascii", errors="replace")
        elif ie == IE_BEARER:
            if body:
                self.bearer = self.bearer if self.bearer is not None else body[0] & 0x1F
        elif ie not in _PASSED_OVER:
            self.unknown.append(ie)
