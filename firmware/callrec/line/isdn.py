"""The ISDN BRI backend of the line port: the D-channel's calls as the edges and facts of two lines.

On ISDN there is no hook voltage: the whole life of a call is in the D-channel (Q.931), and one BRI
carries two calls at once on its B-channels. Each B-channel is configured as a line of its own (its
capture and playback channel carry that B-channel), so two calls on one BRI are two calls of the
core with their own recordings, announcements and records, and nothing in the core is ISDN-shaped
but the facts it keeps. `BriLines` turns `callrec.isdn` call signals into what the line monitor
already understands, at the message's time:

- an inbound SETUP rings its B-channel's line (ringing until CONNECT, or the end), CONNECT is the
  off-hook, the release the on-hook: the monitor sees "rang, then answered": an inbound call;
- an outbound call goes off-hook when the network assigns its B-channel (SETUP ACK, CALL
  PROCEEDING, or the SETUP's exclusive channel): off-hook with no ring: an outbound call;
- numbers, call reference, B-channel and cause go along as `IsdnInfo`, which the core stores in the
  call record's `isdn` (and as the caller's number for an inbound call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callrec.line.port import EdgeSink, IsdnInfo, LedState, LineInput, RawEdge

log = logging.getLogger(__name__)


@dataclass
class _Tracked:
    line: int
    direction: str
    fields: dict[str, Any] = field(default_factory=dict)
    ringing: bool = False
    offhook: bool = False


class BriLines:
    """Pure: one BRI's call signals in, line inputs out. `lines` maps B-channel (1, 2) to line id."""

    def __init__(self, lines: dict[int, int]) -> None:
        self.lines = dict(lines)
        self._calls: dict[Any, _Tracked] = {}
        self._pending: dict[Any, dict[str, Any]] = {}   # offered, no B-channel yet
        self.unmapped = 0   # calls on a B-channel no line is configured for

    def feed(self, signal: Any) -> list[LineInput]:
        from callrec.isdn import BriAlerting, BriAnswered, BriChannelAssigned, BriDigits, BriEnded, BriOffered

        key, t = signal.call, signal.t
        out: list[LineInput] = []
        if isinstance(signal, BriOffered):
            facts = {"call_ref": key.call_ref, "direction": signal.direction, "calling": signal.calling,
                     "called": signal.called, "b_channel": signal.b_channel, "cause": None}
            self._pending[key] = facts
            if signal.b_channel is not None and (signal.direction == "inbound" or signal.sending_complete):
                out += self._assign(key, signal.b_channel, t)
            return out
        if isinstance(signal, BriDigits):
            known = self._facts(key)
            if known is not None:
                known["called"] = signal.called
                out += self._inform(key, "digits", t)
            return out
        if isinstance(signal, BriChannelAssigned):
            if key in self._pending and signal.b_channel is not None:
                out += self._assign(key, signal.b_channel, t)
            elif key in self._calls and signal.b_channel is not None:
                out += self._move(key, signal.b_channel, t)
            return out
        if isinstance(signal, BriAlerting):
            return self._inform(key, "alerting", t)
        if isinstance(signal, BriAnswered):
            if key in self._pending and signal.b_channel is not None:
                out += self._assign(key, signal.b_channel, t)
            tracked = self._calls.get(key)
            if tracked is None:
                return out
            tracked.fields["answered"] = True
            out += self._inform(key, "answered", t)
            if tracked.ringing:
                tracked.ringing = False
                out.append(RawEdge(tracked.line, "ring", False, t))
            if not tracked.offhook:
                tracked.offhook = True
                out.append(RawEdge(tracked.line, "hook", True, t))
            return out
        if isinstance(signal, BriEnded):
            return self._end(key, signal, t)
        return out

    def _facts(self, key: Any) -> dict[str, Any] | None:
        tracked = self._calls.get(key)
        return tracked.fields if tracked is not None else self._pending.get(key)

    def _assign(self, key: Any, b_channel: int, t: float) -> list[LineInput]:
        facts = self._pending.pop(key)
        facts["b_channel"] = b_channel
        line = self.lines.get(b_channel)
        if line is None:
            self.unmapped += 1
            log.warning("ISDN: call %s on B%d, which no configured line records", key.call_ref, b_channel)
            return []
        tracked = self._calls[key] = _Tracked(line, facts["direction"], facts)
        out: list[LineInput] = [IsdnInfo(line, t, "offered", dict(facts))]
        if tracked.direction == "inbound":
            tracked.ringing = True
            out.append(RawEdge(line, "ring", True, t))
        else:
            tracked.offhook = True
            out.append(RawEdge(line, "hook", True, t))
        return out

    def _move(self, key: Any, b_channel: int, t: float) -> list[LineInput]:
        """A SETUP's channel was only preferred and the answer chose the other one: the ringing
        moves to that B-channel's line (before the answer nothing has been recorded there)."""
        tracked = self._calls[key]
        if tracked.fields.get("b_channel") == b_channel or tracked.offhook:
            return []
        out: list[LineInput] = []
        if tracked.ringing:
            out.append(RawEdge(tracked.line, "ring", False, t))
        del self._calls[key]
        facts = dict(tracked.fields, b_channel=None)
        self._pending[key] = facts
        return out + self._assign(key, b_channel, t)

    def _inform(self, key: Any, kind: str, t: float) -> list[LineInput]:
        tracked = self._calls.get(key)
        return [IsdnInfo(tracked.line, t, kind, dict(tracked.fields))] if tracked is not None else []

    def _end(self, key: Any, signal: Any, t: float) -> list[LineInput]:
        pending = self._pending.pop(key, None)
        tracked = self._calls.pop(key, None)
        cause = {"value": signal.cause, "text": signal.cause_text} if signal.cause is not None else None
        if tracked is None:
            if pending is None or not self.lines:
                return []
            # Refused before it had a B-channel (busy, no circuit): no call, but its trace, on the
            # line of the channel it asked for (or the BRI's first line).
            line = self.lines.get(pending.get("b_channel") or 0) or min(self.lines.values())
            return [IsdnInfo(line, t, "ended", {**pending, "cause": cause,
                                                "cleared_by_network": signal.cleared_by_network})]
        tracked.fields["cause"] = ({"value": signal.cause, "text": signal.cause_text}
                                   if signal.cause is not None else None)
        tracked.fields["cleared_by_network"] = signal.cleared_by_network
        out: list[LineInput] = [IsdnInfo(tracked.line, t, "ended", dict(tracked.fields))]
        if tracked.ringing:
            out.append(RawEdge(tracked.line, "ring", False, t))
        if tracked.offhook:
            out.append(RawEdge(tracked.line, "hook", False, t))
        return out


def trace_inputs(frames: Iterable[Any], lines: dict[int, int], start: float | None = None) -> list[LineInput]:
    """A recorded D-channel (CapturedFrames, e.g. from a pcap) as line inputs on the time of its
    first frame = `start` (default: the trace's own times); for the simulator."""
    from callrec.isdn import BriCalls, DChannelDecoder

    decoder, calls, bri = DChannelDecoder(), BriCalls(), BriLines(lines)
    out: list[LineInput] = []
    first: float | None = None
    for frame in frames:
        first = frame.t if first is None else first
        shift = 0.0 if start is None else start - first
        message = decoder.decode(frame)
        if message is None:
            continue
        for signal in calls.feed(message):
            out += _shifted(bri.feed(signal), shift)
    return out


def _shifted(inputs: list[LineInput], shift: float) -> list[LineInput]:
    if not shift:
        return inputs
    return [RawEdge(i.line, i.signal, i.active, i.t + shift) if isinstance(i, RawEdge)
            else IsdnInfo(i.line, i.t + shift, i.kind, i.fields) for i in inputs]


class IsdnLine:
    """The live backend: a tap's D-channel on a serial device, one BRI, its two B-channel lines.

    The frames are stamped on the core's clock (monotonic) by the deframer as they arrive; the
    calls' timers (an unanswered SETUP that never ends) are advanced once a second.
    """

    def __init__(self, device: str, lines: dict[int, int], *, clock: Callable[[], float] = time.monotonic) -> None:
        from callrec.isdn import BriCalls, DChannelDecoder, HdlcDeframer, SerialDChannel

        self.device = device
        self._clock = clock
        self._decoder = DChannelDecoder()
        self._calls = BriCalls()
        self._bri = BriLines(lines)
        self._serial = SerialDChannel(device, deframer=HdlcDeframer(clock=clock))
        self._sink: EdgeSink | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self, sink: EdgeSink) -> None:
        self._sink = sink
        for line in self._bri.lines.values():   # as the port asks: the levels first (idle)
            sink(RawEdge(line, "hook", False, self._clock()))
            sink(RawEdge(line, "ring", False, self._clock()))
        self._serial.start(self._frame)
        self._ticker = threading.Thread(target=self._tick, name=f"isdn:{self.device}", daemon=True)
        self._ticker.start()

    def _frame(self, frame: Any) -> None:
        message = self._decoder.decode(frame)
        if message is None:
            return
        with self._lock:   # delivered under the lock too: the timer's inputs never overtake a frame's
            self._deliver([i for s in self._calls.feed(message) for i in self._bri.feed(s)])

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._deliver([i for s in self._calls.advance(self._clock()) for i in self._bri.feed(s)])

    def _deliver(self, inputs: list[LineInput]) -> None:
        sink = self._sink
        if sink is not None:
            for item in inputs:
                sink(item)

    def set_led(self, line: int, state: LedState) -> None:
        """A BRI line has no LED of its own on the tap board."""

    def stop(self) -> None:
        self._stop.set()
        self._serial.stop()
        self._sink = None


class Lines:
    """Several line sources as one (analog pins and ISDN taps on one appliance)."""

    def __init__(self, sources: list[Any]) -> None:
        self.sources = sources

    def start(self, sink: EdgeSink) -> None:
        for source in self.sources:
            source.start(sink)

    def set_led(self, line: int, state: LedState) -> None:
        for source in self.sources:
            source.set_led(line, state)

    def stop(self) -> None:
        for source in self.sources:
            source.stop()


def hardware_lines(lines: tuple[Any, ...], gpio_line: Any) -> Any:
    """The appliance's line source: the GPIO backend for the pins, one IsdnLine per D-channel."""
    bris: dict[str, dict[int, int]] = {}
    for line in lines:
        if line.kind == "isdn_bri":
            bris.setdefault(line.dchannel, {})[line.b_channel] = line.id
    if not bris:
        return gpio_line
    return Lines([gpio_line, *(IsdnLine(device, mapping) for device, mapping in bris.items())])
