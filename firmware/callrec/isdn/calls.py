"""The calls on one BRI, followed message by message: what a recorder needs to know of each.

Pure logic on the messages' own time `t` (no clock, no threads, no I/O), in the style of
`line/monitor.py`: feed it every Q.931 message of the D-channel in order, get back the line-level
signals (frozen dataclasses) the core turns into call events.

Keying: a call reference is chosen by the side that originates the call, and the flag bit tells
the receiver which side that was (0: sent by the originator). So the originator is the network
exactly when `from_network != call_ref_flag`, and `CallId(call_ref, network_side)` separates an
inbound and an outbound call that happen to use the same number at once, as two calls on B1 and B2.

Point-to-multipoint buses: an inbound SETUP is broadcast (TEI 127), several phones may answer
with ALERTING under the same call reference; the network connects the first CONNECT and clears
the others (cause 26, non-selected user clearing) on their own TEIs. So once a call is answered
only messages on the answering TEI (or the broadcast TEI) can end it, and before the answer a
phone that declines ends the call only if it was the last phone that responded.

What ends a call: the first DISCONNECT, RELEASE or RELEASE COMPLETE (B-channel audio stops
there). Rejected before answer (RELEASE COMPLETE cause 17 to a SETUP) is an unanswered end with
its cause. An unanswered call that goes quiet for `unanswered_timeout_s` (a lost clearing
message) is ended by `advance(now)` with reason "timeout"; answered calls never time out,
since a conversation sends nothing on the D-channel for hours.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from callrec.isdn.lapd import TEI_BROADCAST
from callrec.isdn.q931 import Q931Message

Direction = Literal["inbound", "outbound"]
_CLEARING = frozenset({"DISCONNECT", "RELEASE", "RELEASE COMPLETE"})
_PROCEEDING = frozenset({"CALL PROCEEDING", "ALERTING", "CONNECT", "PROGRESS"})


@dataclass(frozen=True, slots=True)
class CallId:
    """One call on the BRI: its call reference and whether the network chose it (an inbound call)."""

    call_ref: int
    network_side: bool


@dataclass(frozen=True)
class BriSignal:
    """Something that happened to one call; `b_channel` (1, 2, or None if not yet known) carries its audio."""

    t: float
    call: CallId
    b_channel: int | None


@dataclass(frozen=True)
class BriOffered(BriSignal):
    """A SETUP: inbound (from the network: the phones ring) or outbound (a phone on the bus dials)."""

    direction: Direction
    calling: str | None
    called: str | None
    sending_complete: bool


@dataclass(frozen=True)
class BriDigits(BriSignal):
    """Digits in an INFORMATION message; during overlap dialling they extend the called number."""

    digits: str
    called: str | None
    overlap: bool


@dataclass(frozen=True)
class BriChannelAssigned(BriSignal):
    """The B-channel of the call became known or changed (channel identification in a response)."""


@dataclass(frozen=True)
class BriAlerting(BriSignal):
    """ALERTING: inbound, a phone on the bus rings; outbound, the far end rings."""


@dataclass(frozen=True)
class BriAnswered(BriSignal):
    """CONNECT: the call is answered, audio on `b_channel` is the conversation."""


@dataclass(frozen=True)
class BriEnded(BriSignal):
    """The call is over: cleared (with the Q.850 cause if one was sent) or timed out."""

    answered: bool
    cause: int | None
    cause_text: str | None
    cleared_by_network: bool | None
    reason: Literal["cleared", "timeout"] = "cleared"


@dataclass
class BriCall:
    """The tracker's record of one call (copies are handed out by `BriCalls.calls`)."""

    call: CallId
    direction: Direction
    calling: str | None
    called: str | None
    offered_at: float
    b_channel: int | None = None
    alerting_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    cause: int | None = None
    overlap: bool = True
    last_t: float = 0.0
    tei: int | None = None                          # the TE that placed or answered the call
    responders: set[int] = field(default_factory=set)  # inbound: TEs that responded to the SETUP


class BriCalls:
    """Tracks every call on one BRI from its Q.931 messages; `ignored` counts messages that fit no call."""

    def __init__(self, *, unanswered_timeout_s: float = 300.0, linger_s: float = 60.0) -> None:
        self._calls: dict[CallId, BriCall] = {}
        self._unanswered_timeout_s = unanswered_timeout_s
        self._linger_s = linger_s
        self.ignored: Counter[str] = Counter()

    @property
    def calls(self) -> tuple[BriCall, ...]:
        """Copies of the calls not yet ended, oldest first."""
        return tuple(BriCall(**{**vars(c), "responders": set(c.responders)})
                     for c in self._calls.values() if c.ended_at is None)

    def feed(self, msg: Q931Message) -> list[BriSignal]:
        """Apply one message; returns the signals it causes (often none)."""
        if msg.from_network is None:
            self.ignored["direction unknown"] += 1
            return []
        if msg.call_ref_len == 0 or msg.call_ref == 0:
            self.ignored["global or dummy call reference"] += 1
            return []
        key = CallId(msg.call_ref, msg.from_network != msg.call_ref_flag)
        call = self._calls.get(key)
        if msg.message == "SETUP":
            if call is not None and call.ended_at is None:
                self.ignored["setup repeated"] += 1
                return []
            return [self._offer(key, msg)]
        if call is None:
            self.ignored["no such call"] += 1
            return []
        call.last_t = msg.t
        if call.ended_at is not None:
            if msg.message in ("RELEASE COMPLETE", "RELEASE"):
                del self._calls[key]
            return []
        if not self._concerns(call, msg):
            self.ignored["for another terminal"] += 1
            return []
        signals: list[BriSignal] = []
        channel = msg.channel.b_channel if msg.channel is not None else None
        if channel is not None and channel != call.b_channel:
            call.b_channel = channel
            signals.append(BriChannelAssigned(msg.t, key, channel))
        if msg.message in _PROCEEDING:
            call.overlap = False
        if msg.message == "INFORMATION":
            digits = (msg.called.digits if msg.called else "") + (msg.keypad or "")
            if digits:
                if call.overlap:
                    call.called = (call.called or "") + digits
                signals.append(BriDigits(msg.t, key, call.b_channel, digits, call.called, call.overlap))
        elif msg.message == "ALERTING" and call.alerting_at is None:
            call.alerting_at = msg.t
            signals.append(BriAlerting(msg.t, key, call.b_channel))
        elif msg.message == "CONNECT" and call.answered_at is None:
            call.answered_at = msg.t
            if msg.tei is not None and msg.tei != TEI_BROADCAST:
                call.tei = msg.tei
            signals.append(BriAnswered(msg.t, key, call.b_channel))
        elif msg.message in _CLEARING:
            signals += self._clear(call, msg)
        return signals

    def advance(self, now: float) -> list[BriSignal]:
        """End unanswered calls silent for too long; forget ended calls whose RELEASE never came."""
        signals: list[BriSignal] = []
        for key, call in list(self._calls.items()):
            if call.ended_at is not None:
                if now - call.last_t >= self._linger_s:
                    del self._calls[key]
            elif call.answered_at is None and now - call.last_t >= self._unanswered_timeout_s:
                call.ended_at = now
                signals.append(BriEnded(now, key, call.b_channel, False, None, None, None, "timeout"))
        return signals

    def next_due(self) -> float | None:
        """When `advance` next has something to do, or None."""
        due = [c.last_t + (self._linger_s if c.ended_at is not None else self._unanswered_timeout_s)
               for c in self._calls.values() if c.ended_at is not None or c.answered_at is None]
        return min(due, default=None)

    def _offer(self, key: CallId, msg: Q931Message) -> BriSignal:
        inbound = msg.from_network is True
        called = msg.called.digits if msg.called else None
        if msg.keypad:
            called = (called or "") + msg.keypad
        # A user's SETUP only asks for a channel; the network's answer assigns it.
        channel = msg.channel.b_channel if inbound and msg.channel is not None else None
        call = BriCall(key, "inbound" if inbound else "outbound", msg.calling.digits if msg.calling else None, called,
                       msg.t, b_channel=channel, overlap=not msg.sending_complete, last_t=msg.t,
                       tei=None if inbound else msg.tei)
        self._calls[key] = call
        return BriOffered(msg.t, key, channel, call.direction, call.calling, called, msg.sending_complete)

    def _concerns(self, call: BriCall, msg: Q931Message) -> bool:
        """Whether a message on this call reference belongs to the TE that has the call."""
        if msg.tei is None or msg.tei == TEI_BROADCAST:
            return True
        if call.direction == "inbound" and call.answered_at is None:
            if not msg.from_network:
                call.responders.add(msg.tei)
            return True
        return call.tei is None or msg.tei == call.tei

    def _clear(self, call: BriCall, msg: Q931Message) -> list[BriSignal]:
        if (call.direction == "inbound" and call.answered_at is None and not msg.from_network
                and msg.tei is not None and msg.tei != TEI_BROADCAST):
            call.responders.discard(msg.tei)
            if call.responders:
                return []   # one phone declined; others still ring
        call.ended_at = msg.t
        cause = msg.cause
        call.cause = cause.value if cause else None
        if msg.message == "RELEASE COMPLETE":
            del self._calls[call.call]
        return [BriEnded(msg.t, call.call, call.b_channel, call.answered_at is not None, call.cause,
                         cause.text if cause else None, msg.from_network)]
