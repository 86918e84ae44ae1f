"""Builds D-channel traces: Q.931 elements and messages, LAPD frames, whole calls, for the tests,
the benchmark and the simulator's demo (which needs an ISDN line without a real BRI).

Everything is built from the specification byte by byte (Q.931 §4, Q.921 §3), independently of the
decoder under test, so a test that round-trips through both checks the decoder against the spec;
the tshark cross-check then checks both against Wireshark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callrec.isdn.pcap import CapturedFrame, write_pcap
from callrec.isdn.q931 import MESSAGE_TYPES

T0 = 1_780_000_000.0     # an epoch time with a fractional-second-safe magnitude
SENDING_COMPLETE = b"\xa1"


def ie(ident: int, body: bytes) -> bytes:
    return bytes([ident, len(body)]) + body


def bearer_speech() -> bytes:
    return ie(0x04, b"\x80\x90\xa3")          # speech, circuit mode 64 kbit/s, G.711 A-law


def channel(b: int | str, exclusive: bool = True) -> bytes:
    sel = {1: 1, 2: 2, "any": 3, "none": 0}[b]
    return ie(0x18, bytes([0x80 | (0x08 if exclusive else 0) | sel]))


def calling(digits: str, ton: int = 2, npi: int = 1, presentation: int | None = None, screening: int = 3) -> bytes:
    if presentation is None:
        return ie(0x6C, bytes([0x80 | ton << 4 | npi]) + digits.encode())
    return ie(0x6C, bytes([ton << 4 | npi, 0x80 | presentation << 5 | screening]) + digits.encode())


def called(digits: str, ton: int = 0, npi: int = 1) -> bytes:
    return ie(0x70, bytes([0x80 | ton << 4 | npi]) + digits.encode())


def cause(value: int, location: int = 2, coding: int = 0) -> bytes:
    return ie(0x08, bytes([0x80 | coding << 5 | location, 0x80 | value]))


def progress(description: int = 8, location: int = 2) -> bytes:
    return ie(0x1E, bytes([0x80 | location, 0x80 | description]))


def keypad(digits: str) -> bytes:
    return ie(0x2C, digits.encode())


def display(text: str) -> bytes:
    return ie(0x28, text.encode())


def q931(message: str | int, call_ref: int, flag: bool, *ies: bytes, cr_len: int = 1) -> bytes:
    mtype = MESSAGE_TYPES[message] if isinstance(message, str) else message
    if cr_len == 0:
        ref = b""
    elif cr_len == 1:
        ref = bytes([(0x80 if flag else 0) | (call_ref & 0x7F)])
    else:
        ref = bytes([(0x80 if flag else 0) | (call_ref >> 8 & 0x7F), call_ref & 0xFF])
    return bytes([0x08, cr_len]) + ref + bytes([mtype]) + b"".join(ies)


def address(sapi: int, cr: bool, tei: int) -> bytes:
    return bytes([sapi << 2 | (2 if cr else 0), tei << 1 | 1])


def i_frame(payload: bytes, from_network: bool, tei: int = 64, ns: int = 0, nr: int = 0, sapi: int = 0) -> bytes:
    """An I frame: a command, so C/R = 1 from the network, 0 from the user (Q.921 §3.3.2)."""
    return address(sapi, from_network, tei) + bytes([ns << 1, nr << 1]) + payload


def ui_frame(payload: bytes, from_network: bool, tei: int = 127, sapi: int = 0) -> bytes:
    return address(sapi, from_network, tei) + b"\x03" + payload


def s_frame(kind: str, cr: bool, tei: int = 64, nr: int = 0) -> bytes:
    return address(0, cr, tei) + bytes([{"RR": 0x01, "RNR": 0x05, "REJ": 0x09}[kind], nr << 1 | 1])


def u_frame(kind: str, cr: bool, tei: int = 64) -> bytes:
    return address(0, cr, tei) + bytes([{"SABME": 0x7F, "UA": 0x73, "DISC": 0x53, "DM": 0x1F}[kind]])


@dataclass
class Trace:
    """A D-channel as it happens: frames appended in time order, I-frame numbers kept per link."""

    t: float = T0
    frames: list[CapturedFrame] = field(default_factory=list)
    _ns: dict[tuple[int, bool], int] = field(default_factory=dict)

    def raw(self, data: bytes, from_network: bool, dt: float = 0.05) -> None:
        self.t += dt
        self.frames.append(CapturedFrame(round(self.t, 6), data, from_network))

    def net(self, message: bytes, tei: int = 64, dt: float = 0.05, ui: bool = False) -> None:
        self.raw(ui_frame(message, True, tei) if ui else self._i(message, True, tei), True, dt)

    def user(self, message: bytes, tei: int = 64, dt: float = 0.05) -> None:
        self.raw(self._i(message, False, tei), False, dt)

    def _i(self, message: bytes, from_network: bool, tei: int) -> bytes:
        ns = self._ns.get((tei, from_network), 0)
        self._ns[(tei, from_network)] = (ns + 1) % 128
        nr = self._ns.get((tei, not from_network), 0)
        return i_frame(message, from_network, tei, ns, nr)

    def write(self, path: str, linktype: int = 177, nanosecond: bool = False, byte_order: str = "<") -> str:
        write_pcap(path, self.frames, linktype, nanosecond=nanosecond, byte_order=byte_order)  # type: ignore[arg-type]
        return path


# Whole calls. Flag: the originator of the call reference sends flag 0, the other side flag 1.

def inbound_call(tr: Trace, cr: int = 5, caller: str = "0312345678", callee: str = "0698765432", b: int = 1,
                 tei: int = 64, talk_s: float = 30.0) -> None:
    tr.net(q931("SETUP", cr, False, bearer_speech(), channel(b), calling(caller, presentation=0), called(callee)),
           ui=True, tei=127)
    tr.user(q931("ALERTING", cr, True), tei=tei)
    tr.user(q931("CONNECT", cr, True), tei=tei, dt=4.0)
    tr.net(q931("CONNECT ACK", cr, False), tei=tei)
    tr.net(q931("DISCONNECT", cr, False, cause(16)), tei=tei, dt=talk_s)
    tr.user(q931("RELEASE", cr, True), tei=tei)
    tr.net(q931("RELEASE COMPLETE", cr, False), tei=tei)


def outbound_call(tr: Trace, cr: int = 9, callee: str = "0451234567", b: int = 2, tei: int = 65,
                  talk_s: float = 20.0) -> None:
    tr.user(q931("SETUP", cr, False, bearer_speech(), channel("any", exclusive=False), called(callee),
                 SENDING_COMPLETE), tei=tei)
    tr.net(q931("CALL PROCEEDING", cr, True, channel(b)), tei=tei)
    tr.net(q931("ALERTING", cr, True, progress(8)), tei=tei, dt=0.5)
    tr.net(q931("CONNECT", cr, True), tei=tei, dt=6.0)
    tr.user(q931("CONNECT ACK", cr, False), tei=tei)
    tr.user(q931("DISCONNECT", cr, False, cause(16, location=0)), tei=tei, dt=talk_s)
    tr.net(q931("RELEASE", cr, True), tei=tei)
    tr.user(q931("RELEASE COMPLETE", cr, False), tei=tei)


def overlap_call(tr: Trace, cr: int = 12, parts: tuple[str, ...] = ("03", "1234", "5678"), tei: int = 66) -> None:
    tr.user(q931("SETUP", cr, False, bearer_speech(), channel("any", exclusive=False)), tei=tei)
    tr.net(q931("SETUP ACK", cr, True, channel(1), progress(8)), tei=tei)
    for part in parts:
        tr.user(q931("INFORMATION", cr, False, called(part)), tei=tei, dt=0.4)
    tr.user(q931("INFORMATION", cr, False, keypad("9")), tei=tei, dt=0.4)
    tr.net(q931("CALL PROCEEDING", cr, True), tei=tei)
    tr.net(q931("ALERTING", cr, True), tei=tei)
    tr.net(q931("CONNECT", cr, True), tei=tei, dt=3.0)
    tr.user(q931("CONNECT ACK", cr, False), tei=tei)
    tr.net(q931("DISCONNECT", cr, True, cause(16, location=4)), tei=tei, dt=10.0)
    tr.user(q931("RELEASE", cr, False), tei=tei)
    tr.net(q931("RELEASE COMPLETE", cr, True), tei=tei)


def rejected_call(tr: Trace, cr: int = 7, value: int = 17, tei: int = 64) -> None:
    tr.net(q931("SETUP", cr, False, bearer_speech(), channel(2), calling("0120000000"), called("0698765432")),
           ui=True, tei=127)
    tr.user(q931("RELEASE COMPLETE", cr, True, cause(value, location=0)), tei=tei)


def layer2_chatter(tr: Trace, tei: int = 64) -> None:
    """Link set-up and keep-alives: nothing for Q.931, all counted."""
    tr.raw(u_frame("SABME", False, tei), False)
    tr.raw(u_frame("UA", False, tei), True)
    tr.raw(s_frame("RR", True, tei), True)
    tr.raw(s_frame("RR", False, tei), False)
    tr.raw(s_frame("RNR", True, tei), True)
    tr.raw(s_frame("REJ", False, tei), False)


def merged(*parts: tuple[Trace, float]) -> Trace:
    """Calls built on their own traces, each shifted by its offset, as one D-channel: overlapping
    calls on both B-channels (their call references must differ)."""
    frames = sorted((CapturedFrame(round(f.t + offset, 6), f.data, f.from_network)
                     for trace, offset in parts for f in trace.frames), key=lambda f: f.t)
    return Trace(t=frames[-1].t if frames else T0, frames=frames)


def two_calls_on_a_bri(inbound_talk_s: float = 12.0, outbound_talk_s: float = 8.0) -> Trace:
    """The demo's BRI: an inbound call on B1, and while it lasts an outbound call on B2, then a
    call the office's phone rejects as busy (cause 17)."""
    inbound, outbound, rejected = Trace(), Trace(), Trace()
    inbound_call(inbound, cr=5, b=1, talk_s=inbound_talk_s)
    outbound_call(outbound, cr=9, b=2, talk_s=outbound_talk_s)
    rejected_call(rejected, cr=7)
    return merged((inbound, 0.0), (outbound, 3.0), (rejected, 4.0 + inbound_talk_s + 2.0))
