"""From captured D-channel frames to Q.931 messages, counting everything that was not one.

A live D-channel mixes call control with layer-2 chatter (RR every few seconds, SABME/UA on link
set-up, TEI management), and a tap on a noisy bus adds broken frames. `DChannelDecoder` never
raises on any of it: each frame either becomes a `Q931Message` or adds one to `counts` under a
fixed reason. Bad frames are logged at WARNING once per reason, then at most once per
`log_interval_s` per reason as a count of what was suppressed, so a flood of garbage (a loose
wire, a wrong baud rate) cannot flood the log. Expected skips (RR, SABME, other SAPIs) only count.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

from callrec.isdn.errors import FrameError, FrameSkipped
from callrec.isdn.lapd import call_control_payload, parse_lapd
from callrec.isdn.pcap import CapturedFrame
from callrec.isdn.q931 import Q931Message, decode_q931

log = logging.getLogger(__name__)


class DChannelDecoder:
    """Stateless per frame, but keeps the counts and the log throttle; one per D-channel."""

    def __init__(self, *, log_interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: Counter[str] = Counter()
        self._log_interval_s = log_interval_s
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self.frames = 0
        self.messages = 0

    @property
    def counts(self) -> Mapping[str, int]:
        """Frames that gave no message, by reason (a read-only view)."""
        return MappingProxyType(self._counts)

    def decode(self, frame: CapturedFrame) -> Q931Message | None:
        """The Q.931 message in `frame`, or None (counted) if it carries none or is broken."""
        self.frames += 1
        try:
            lapd = parse_lapd(frame.data)
            payload = call_control_payload(lapd)
            from_network = frame.from_network if frame.from_network is not None else lapd.from_network
            message = decode_q931(payload, frame.t, from_network, lapd.tei)
        except FrameSkipped as skipped:
            self._counts[skipped.reason] += 1
            return None
        except FrameError as bad:
            self._counts[bad.reason] += 1
            self._warn(bad.reason, frame)
            return None
        self.messages += 1
        return message

    def feed(self, frames: Iterable[CapturedFrame]) -> Iterator[Q931Message]:
        """The messages of `frames`, in their order."""
        for frame in frames:
            message = self.decode(frame)
            if message is not None:
                yield message

    def _warn(self, reason: str, frame: CapturedFrame) -> None:
        now = self._clock()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self._log_interval_s:
            self._suppressed[reason] += 1
            return
        self._last_logged[reason] = now
        more = self._suppressed.pop(reason, 0)
        suffix = f" ({more} more since the last report)" if more else ""
        log.warning("D-channel frame skipped: %s%s; frame at t=%.3f: %s", reason, suffix, frame.t,
                    frame.data[:32].hex(" "))
